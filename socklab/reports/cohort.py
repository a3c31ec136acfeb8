"""A class's views: class.csv and class.html (a row per student, a column per check), and results.json per student.

A teacher grading a class wants three things a student's own report cannot
give: every student's points in one sheet to paste into a gradebook
(class.csv), one page to see who was caught by what and to open any
student's report from (class.html), and which checks caught the most
students, since those say what to teach again (``commonest_lines``, for the
page and the console alike). The class folder holds one folder per student,
each written by ``reports.write`` and ``write_student``; the class views only
link to them.

Everything here reads a ``ClassResult`` and changes nothing but files. The
page is rendered with report.html's Jinja environment: autoescape on, nothing
marked safe, so student folder names and check names are escaped wherever
they are shown, and links are URL-quoted. Its few lines of script (sorting
by a column) are inline, so the page works offline, as report.html does.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import quote

from socklab.errors import EXIT_INTERRUPTED, EXIT_OK
from socklab.reports import gradescope
from socklab.reports.files import atomic_write
from socklab.reports.html import TEMPLATES, _duration, _when
from socklab.results import ClassResult, Mark, StudentResult

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula: a CSV cell of text starting so is quoted to stay text."""


def write_class(result: ClassResult, folder: Path) -> None:
    """class.csv and class.html in the class folder, beside the students' own folders."""
    folder.mkdir(parents=True, exist_ok=True)
    sheet = io.StringIO(newline="")
    csv.writer(sheet).writerows(csv_rows(result))
    atomic_write(folder / "class.csv", sheet.getvalue().encode())
    atomic_write(folder / "class.html", render(result, folder).encode())


def write_student(student: StudentResult, folder: Path) -> Path:
    """The student's results.json (Gradescope's format) in its own folder, beside report.html; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    atomic_write(path, (json.dumps(gradescope.render(student), indent=2, ensure_ascii=False) + "\n").encode())
    return path


# -- what each student earned, check by check ---------------------------------


def marks_by_check(student: StudentResult) -> dict[str, list[Mark]]:
    """A student's marks under their ``scenario / check`` name; a name made twice keeps both, so totals still add up."""
    found: dict[str, list[Mark]] = {}
    for mark in student.grade.marks:
        found.setdefault(mark.name, []).append(mark)
    return found


def counted_for(result: ClassResult) -> dict[str, int]:
    """For each check, how many students it counted for: a sentence's ``of 30``."""
    counts: dict[str, int] = {}
    for student in result.students:
        for name in marks_by_check(student):
            counts[name] = counts.get(name, 0) + 1
    return counts


def _points(value: float) -> str:
    """Points as a gradebook reads them: ``2``, ``0.5``, never ``2.0``."""
    return f"{value:g}"


# -- class.csv ----------------------------------------------------------------


def csv_rows(result: ClassResult) -> list[list[str]]:
    """The header (student, each check in the class's order, score, possible), then a row per student.

    A cell is the points that student earned on that check, or empty when the
    check did not count for them: a blank says "not graded", a 0 says "caught".
    """
    checks = result.checks
    rows = [[_text("student"), *(_text(name) for name in checks), "score", "possible"]]
    for student in result.students:
        by_check = marks_by_check(student)
        cells = [_points(sum(m.earned for m in by_check[name])) if name in by_check else "" for name in checks]
        rows.append([_text(student.student), *cells, _points(student.grade.score), _points(student.grade.possible)])
    return rows


def _text(value: str) -> str:
    """A text cell a spreadsheet will not run: one that would start a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_START) else value


# -- the commonest failures ---------------------------------------------------


def commonest_lines(result: ClassResult, limit: int = 5) -> list[str]:
    """``14 of 30 fail 'a request split byte by byte' (app-protocol)``: the checks that caught most, commonest first.

    The count is out of the students the check counted for, which is the
    whole class unless some were not graded on it.
    """
    counted = counted_for(result)
    labels = _labels(result)
    return [f"{caught} of {counted[name]} {'fails' if caught == 1 else 'fail'} {labels[name]}"
            for name, caught in result.commonest_failures()[:limit]]


def _labels(result: ClassResult) -> dict[str, str]:
    """Each check as a sentence names it: the check in quotes, then its scenario, since two scenarios may share one."""
    labels: dict[str, str] = {}
    for student in result.students:
        for mark in student.grade.marks:
            labels.setdefault(mark.name, f"'{mark.check}' ({mark.scenario})")
    return labels


# -- class.html: the view model -------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A check that counted for somebody: its header, and how many it caught, for the page's last row."""

    name: str  # scenario / check
    scenario: str
    check: str
    caught: int
    counted: int


@dataclass(frozen=True)
class Cell:
    """One student on one check: ``pass`` (held), ``fail`` (caught) or ``none`` (did not count for them)."""

    tone: str
    text: str
    sort: str  # what the column sorts by: the points, or "" to sort last
    why: str  # shown on hover: why it was caught


@dataclass(frozen=True)
class Row:
    student: StudentResult
    href: str  # the student's report.html, relative to class.html
    cells: tuple[Cell, ...]
    tone: str  # pass when every check held


@dataclass(frozen=True)
class ClassView:
    headline: str
    tone: str  # of the whole class: pass, fail, or skip when interrupted
    started: str
    took: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    failures: tuple[str, ...]


def render(result: ClassResult, folder: Path) -> str:
    """class.html, as text; links to students' reports are made relative to ``folder``, where it will be written."""
    return TEMPLATES.get_template("class.html").render(page=class_view(result, folder), result=result)


def class_view(result: ClassResult, folder: Path) -> ClassView:
    """What the page shows of a class: the headline, a row per student, a column per check, the commonest failures."""
    columns = _columns(result)
    return ClassView(
        headline=headline(result),
        tone={EXIT_OK: "pass", EXIT_INTERRUPTED: "skip"}.get(result.exit_status, "fail"),
        started=_when(result.started),
        took=_duration(result.seconds),
        columns=columns,
        rows=tuple(_row(student, columns, folder) for student in result.students),
        failures=tuple(commonest_lines(result, limit=len(columns))),
    )


def headline(result: ClassResult) -> str:
    """One sentence for the top of the page: how many students held every check."""
    if result.interrupted:
        return "Interrupted before every student was graded"
    if not result.students:
        return "No student was graded"
    clean = sum(student.grade.clean for student in result.students)
    return f"{clean} of {len(result.students)} students held every check"


def _columns(result: ClassResult) -> tuple[Column, ...]:
    counted = counted_for(result)
    caught = dict(result.commonest_failures())
    first: dict[str, Mark] = {}
    for student in result.students:
        for mark in student.grade.marks:
            first.setdefault(mark.name, mark)
    return tuple(Column(name, first[name].scenario, first[name].check, caught.get(name, 0), counted[name])
                 for name in result.checks)


def _row(student: StudentResult, columns: tuple[Column, ...], folder: Path) -> Row:
    by_check = marks_by_check(student)
    return Row(student, student_href(student, folder), tuple(cell(by_check.get(c.name, [])) for c in columns),
               "pass" if student.grade.clean else "fail")


def cell(marks: list[Mark]) -> Cell:
    """A student's cell for one check: held, caught (with why), or empty when the check did not count for them."""
    if not marks:
        return Cell("none", "–", "", "")  # the dash is for the eye; the sheet's cell stays empty
    earned = _points(sum(m.earned for m in marks))
    if all(m.held for m in marks):
        return Cell("pass", f"✓ {earned}", earned, "")
    return Cell("fail", f"✗ {earned}", earned, "; ".join(m.why for m in marks if not m.held))


def student_href(student: StudentResult, folder: Path) -> str:
    """The student's report.html from the class folder: its results_dir made relative, else ``<student>/``."""
    if student.results_dir:
        relative = PurePath(os.path.relpath(student.results_dir, folder)).as_posix()
    else:
        relative = student.student
    return quote(f"{relative}/report.html")
