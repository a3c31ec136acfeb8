"""The curriculum: scenario files under scenarios/, found by name, grouped by topic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from socklab import scenario as scenario_file
from socklab.constants import CATALOGUE_DIR
from socklab.errors import UsageError
from socklab.model import Scenario
from socklab.scenario import TOPICS


def paths(directory: Path = CATALOGUE_DIR) -> list[Path]:
    return sorted(directory.glob("*.toml"))


def names(directory: Path = CATALOGUE_DIR) -> list[str]:
    return [p.stem for p in paths(directory)]


def locate(name: str, directory: Path = CATALOGUE_DIR) -> Path:
    """A catalogue name (``tcp-echo``) or a path to any scenario file."""
    if name.endswith(".toml") or "/" in name:
        return Path(name)
    path = directory / f"{name}.toml"
    if not path.exists():
        known = names(directory)
        raise UsageError(name, "is not a scenario of the catalogue",
                         scenario_file.suggest(name, known) + "; `invoke list` shows them all")
    return path


def load(selection: Iterable[str] = (), directory: Path = CATALOGUE_DIR) -> list[Scenario]:
    """The scenarios named (all of them if none is), every file validated before any is run."""
    chosen = [locate(name, directory) for name in selection] if selection else paths(directory)
    return scenario_file.load_all(chosen)


def by_topic(scenarios: Sequence[Scenario]) -> dict[str, list[Scenario]]:
    """Topics in teaching order; scenarios within a topic by name."""
    grouped: dict[str, list[Scenario]] = {topic: [] for topic in TOPICS}
    for scenario in sorted(scenarios, key=lambda s: s.name):
        grouped.setdefault(scenario.topic, []).append(scenario)
    return {topic: found for topic, found in grouped.items() if found}


README_START, README_END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


def markdown(scenarios: Sequence[Scenario]) -> str:
    """The README's catalogue table, made from the files so that it cannot drift from them."""
    rows = ["| Topic | Scenario | What it shows | Checks |", "|---|---|---|---|"]
    for topic, found in by_topic(scenarios).items():
        for scenario in found:
            title = scenario.title.replace("|", "/")
            rows.append(f"| {topic} | `{scenario.name}` | {title} | {len(scenario.checks)} |")
    return "\n".join(rows)
