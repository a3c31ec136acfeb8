"""Grading a class: a folder of submissions, one subfolder per student, all against the same checks.

Every student's submission is read and checked before anything runs (a
folder with no way to start its program is exit 2, naming the folder and
the fix). Then every student's scenarios run side by side, ``jobs`` labs
at a time, each student in labs of its own that hold its files and nobody
else's; each student's checks spend its own time budget, so a submission
that hangs never costs another student anything. Each student gets a
results folder of its own (report.html, report.json, junit.xml and a
Gradescope results.json) inside the class's, next to the class's views.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from socklab import events, runner
from socklab.backend import Backend
from socklab.errors import UsageError
from socklab.grading import prepare
from socklab.grading.marking import Budget
from socklab.grading.plan import Plan
from socklab.grading.rubric import Rubric
from socklab.model import Scenario
from socklab.results import ClassResult, Grade, RunResult, StudentResult


@dataclass(frozen=True)
class Student:
    """One student's submission, ready to run: the scenarios that grade it, and how."""

    name: str
    source: str
    scenarios: list[Scenario]
    plans: list[Plan]


def students(folder: Path) -> list[Path]:
    """The class: every subfolder of ``folder`` (hidden ones aside), by name."""
    if not folder.is_dir():
        raise UsageError(f"SUBMISSIONS {folder}", "is not a folder", "give the folder that holds a folder per student")
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise UsageError(f"SUBMISSIONS {folder}", "has no folder in it",
                         "put each student's submission in a folder of its own, named after the student")
    return found


def spec(student: Path, role: str, rubric: Rubric) -> str:
    """How a student's folder becomes a submission: the rubric's command, or its one Python file."""
    if role in rubric.commands:
        return f"{role}={student}/"
    programs = sorted(student.glob("*.py"))
    if len(programs) == 1:
        return f"{role}={programs[0]}"
    raise UsageError(f"{student}", f"holds {len(programs)} Python files: which one runs, and how?",
                     f"say it in a rubric (--rubric grading.toml): [roles.{role}] run = \"python3 server.py {{host}} "
                     "{port}\"")


def prepare_class(folder: Path, role: str, scenarios: Sequence[Scenario], rubric: Rubric) -> list[Student]:
    """Every student's submission, read and fitted to the scenarios; any problem stops it all (exit 2)."""
    prepared = []
    for student in students(folder):
        graded, plans = prepare(scenarios, [spec(student, role, rubric)], rubric)
        prepared.append(Student(student.name, str(student), graded, [plans[s.name] for s in graded]))
    return prepared


def grade(prepared: Sequence[Student], role: str, rubric: Rubric, backend: Backend, *, jobs: int,
          listener: events.Listener = events.ignore) -> ClassResult:
    """Run every student's scenarios, ``jobs`` labs at a time, and sort the results back by student."""
    started = datetime.datetime.now(datetime.UTC)
    budgets = [Budget(rubric.seconds) for _ in prepared]
    scenarios = [s for student in prepared for s in student.scenarios]
    run = runner.run(scenarios, backend, jobs=jobs, listener=listener,
                     plans=[p for student in prepared for p in student.plans],
                     budgets=[budgets[i] for i, student in enumerate(prepared) for _ in student.scenarios])
    results, at = [], 0
    for student in prepared:
        own = run.scenarios[at:at + len(student.scenarios)]
        at += len(own)
        student_run = RunResult(own, run.started, round(sum(s.seconds for s in own), 3), interrupted=run.interrupted)
        grades = [g for g in student_run.grades() if g.role == role]
        results.append(StudentResult(student.name, student_run, grades[0] if grades else Grade(role, student.source)))
    return ClassResult(role, results, started.isoformat(timespec="seconds"), run.seconds,
                       interrupted=run.interrupted)
