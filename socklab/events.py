"""What a run reports while it works; the console (or anything else) listens.

The core never prints: it calls a listener with these events, as Kathara's
manager emits events for its progress display. A listener must be quick and
thread-safe, since scenarios run side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from socklab.results import CheckResult, ScenarioResult

PHASES = ("hosts", "setup", "services", "checks", "teardown")  # hosts: created, started and prepared


@dataclass(frozen=True)
class Note:
    """Something worth telling the user that belongs to no scenario (an image build, say)."""

    text: str


@dataclass(frozen=True)
class RunStarted:
    """The image is ready and this many scenarios are about to run (a class's grading: every student's)."""

    scenarios: int


@dataclass(frozen=True)
class PhaseStarted:
    scenario: str
    phase: str  # one of PHASES


@dataclass(frozen=True)
class CheckFinished:
    scenario: str
    result: CheckResult


@dataclass(frozen=True)
class ScenarioFinished:
    result: ScenarioResult


Event = Note | RunStarted | PhaseStarted | CheckFinished | ScenarioFinished
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener of a caller who wants no progress (the pytest plugin, --quiet)."""


def both(first: Listener, second: Listener) -> Listener:
    """One listener that tells two: the console's progress and the results' journal, say."""

    def tell(event: Event) -> None:
        first(event)
        second(event)

    return tell
