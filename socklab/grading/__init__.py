"""Grading: the catalogue's checks, run against somebody else's programs.

``submission`` says what a submission is and how it starts; ``plan`` which
checks count in its grade and for how much; ``marking`` makes the checks of
a graded scenario; ``rubric`` reads a ``grading.toml``; ``cohort`` grades a
class, a folder per student.
"""

from __future__ import annotations

from collections.abc import Sequence

from socklab.grading.marking import Budget
from socklab.grading.plan import Plan, select
from socklab.grading.rubric import Rubric
from socklab.grading.submission import Submission, parse
from socklab.model import Scenario


def prepare(scenarios: Sequence[Scenario], specs: Sequence[str],
            rubric: Rubric | None = None) -> tuple[list[Scenario], dict[str, Plan]]:
    """The scenarios that grade the submissions ``specs`` (``ROLE=SPEC``), ready to run, and their plans."""
    rubric = rubric or Rubric()
    submissions = [parse(spec, rubric.commands) for spec in specs]
    if rubric.scenarios:
        scenarios = [s for s in scenarios if s.name in rubric.scenarios]
    rubric.check_names(scenarios)
    pairs = select(scenarios, submissions, rubric.points)
    return [scenario for scenario, _ in pairs], {plan.scenario: plan for _, plan in pairs}


__all__ = ["Budget", "Plan", "Rubric", "Submission", "prepare"]
