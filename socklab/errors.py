"""Errors that end a run, each with the exit status it deserves.

The statuses are the same everywhere (README, "Exit status"): 0 every check
held, 1 a check failed, 2 the input or the environment was wrong. Anything
raised here is a 2 (or 1 for a lab that could not be readied, 130 for an
interruption) and carries a message meant for the user, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class SocklabError(Exception):
    exit_status = EXIT_BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one key of one file, and how to fix it."""

    path: Path | str
    key: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else str(self.path)
        return f"{where}: {self.problem}" + (f". Fix: {self.fix}" if self.fix else "")


class ScenarioError(SocklabError):
    """A scenario file is wrong; nothing has been created."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(SocklabError):
    """A command-line mistake: an argument missing, unknown or malformed. Nothing has been created."""

    def __init__(self, argument: str, problem: str, fix: str = "") -> None:
        self.argument, self.problem, self.fix = argument, problem, fix
        super().__init__(f"{argument}: {problem}" + (f". Fix: {fix}" if fix else ""))


class EnvironmentProblem(SocklabError):
    """The machine cannot run a lab: no engine, no image and no way to build one, no free subnet."""


class LabError(SocklabError):
    """The lab came up but could not be readied: a setup command or a service failed.

    That is the scenario failing, not bad input: its checks cannot hold.
    """

    exit_status = EXIT_CHECK_FAILED


class Interrupted(SocklabError):
    """SIGINT or SIGTERM arrived; everything created has been torn down."""

    exit_status = EXIT_INTERRUPTED
