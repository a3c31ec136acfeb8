"""A catalogue: scenario files in a folder, found by name, grouped by topic.

socklab's own curriculum is scenarios/; any folder of one's own can be the
catalogue instead (``--scenarios DIR``, or ``SOCKLAB_SCENARIOS``), for
list, explain, run, up and docs alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from socklab import scenario as scenario_file
from socklab.constants import CATALOGUE_DIR
from socklab.errors import UsageError
from socklab.model import Scenario
from socklab.scenario import TOPICS

SCENARIOS_ENV = "SOCKLAB_SCENARIOS"


def folder(option: str = "") -> Path:
    """The catalogue to use: ``--scenarios DIR``, else ``$SOCKLAB_SCENARIOS``, else socklab's own."""
    chosen = option or os.environ.get(SCENARIOS_ENV, "")
    if not chosen:
        return CATALOGUE_DIR
    path = Path(chosen)
    if not path.is_dir():
        where = "--scenarios" if option else SCENARIOS_ENV
        raise UsageError(f"{where} {chosen}", "is not a folder", "name a folder of scenario files (*.toml)")
    if not list(path.glob("*.toml")):
        where = "--scenarios" if option else SCENARIOS_ENV
        raise UsageError(f"{where} {chosen}", "holds no scenario file (*.toml)", "name the folder that holds them")
    return path


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
        raise UsageError(name, f"is not a scenario of the catalogue ({directory})",
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
