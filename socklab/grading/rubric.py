"""A rubric (``grading.toml``): how submissions start, which scenarios grade them, what each check is worth.

    # grading.toml
    scenarios = ["app-protocol"]              # default: every scenario with a check of the role

    [roles.app]                               # a submission's folder, and the command that runs it there
    run = "python3 app-server.py {host} {port}"

    [points]                                  # "SCENARIO / CHECK" = points (default: the check's own, 1)
    "app-protocol / search morpheus" = 2

    [limits]
    seconds = 600                             # for one submission's checks, all scenarios together

Every problem names the file, the key and the fix (exit 2), before anything runs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socklab.errors import UsageError
from socklab.model import Scenario

DEFAULT_SECONDS = 900.0  # one submission's checks, all scenarios together, when the rubric says nothing
KEYS = {"scenarios", "roles", "points", "limits"}


@dataclass(frozen=True)
class Rubric:
    path: Path | None = None
    scenarios: tuple[str, ...] = ()
    commands: dict[str, str] = field(default_factory=dict)  # role -> command template
    points: dict[str, float] = field(default_factory=dict)  # "scenario / check" -> points
    seconds: float = DEFAULT_SECONDS

    def check_names(self, scenarios: Sequence[Scenario]) -> None:
        """Refuse points for a check that none of the scenarios has (a typo would silently count 1)."""
        known = {f"{s.name} / {c.name}" for s in scenarios for c in s.checks}
        for name in self.points:
            if name not in known:
                raise UsageError(f"{self.path}: points.{name!r}", "names no check of the scenarios graded",
                                 "write it as \"SCENARIO / CHECK\", as `invoke explain SCENARIO` names them")


def load(path: Path) -> Rubric:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--rubric {path}", f"cannot be read: {exc.strerror}", "give the path of a grading.toml") \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(str(path), f"is not TOML: {exc}", "fix the syntax at the line named") from None
    where = str(path)
    for name in set(data) - KEYS:
        raise UsageError(f"{where}: {name}", "is not a rubric key", f"use one of: {', '.join(sorted(KEYS))}")
    scenarios = _strings(data.get("scenarios", []), f"{where}: scenarios", '["tcp-echo", "app-protocol"]')
    commands = {}
    for role, table in _table(data.get("roles", {}), f"{where}: roles").items():
        table = _table(table, f"{where}: roles.{role}")
        if set(table) != {"run"} or not isinstance(table["run"], str) or not table["run"].strip():
            raise UsageError(f"{where}: roles.{role}", "must hold one key, run, a command line",
                             'write run = "python3 server.py {host} {port}"')
        commands[role] = table["run"].strip()
    points = {}
    for name, value in _table(data.get("points", {}), f"{where}: points").items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UsageError(f"{where}: points.{name!r}", f"{value!r} is not a number of points",
                             "write a number, 0 or more")
        points[name] = float(value)
    limits = _table(data.get("limits", {}), f"{where}: limits")
    seconds = limits.get("seconds", DEFAULT_SECONDS)
    if set(limits) - {"seconds"} or isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise UsageError(f"{where}: limits", "holds one key, seconds, more than 0", "write seconds = 600")
    return Rubric(path, tuple(scenarios), commands, points, float(seconds))


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(where, f"must be a table, not {type(value).__name__}", "see the example in the README")
    return value


def _strings(value: Any, where: str, example: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(where, "must be an array of names", f"write {example}")
    return value
