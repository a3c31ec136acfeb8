"""results.json for Gradescope: one student's grade in the autograder's own format.

A course that grades on Gradescope uploads this file (the autograder harness
reads ``/autograder/results/results.json``), so students see their grade
where they see every other one, with the same words as report.html: one test
per check that counted, named ``scenario / check``, worth the check's points,
and, when it was caught, why and what the program last said. Only the
documented fields are written (score, execution_time, output, tests with
name, score, max_score, status, output, visibility), so nothing in it can be
read two ways. The view reads the ``StudentResult`` and changes nothing.
"""

from __future__ import annotations

from typing import Any

from socklab.results import Mark, StudentResult

VISIBLE = "visible"  # every check is shown to the student at once: the lab's checks are no secret


def render(student: StudentResult) -> dict[str, Any]:
    """The whole results.json as a dict: the grade's score on top, then one test per mark, in the run's order."""
    grade = student.grade
    results: dict[str, Any] = {"score": grade.score}
    if student.run.seconds > 0:  # Gradescope takes whole seconds; a run that never started has no time to give
        results["execution_time"] = round(student.run.seconds)
    results["output"] = summary(student)
    results["tests"] = [case(mark) for mark in grade.marks]
    return results


def summary(student: StudentResult) -> str:
    """The submission's line above the tests: what was graded, the points, and how many checks held."""
    grade = student.grade
    lines = [f"Graded: {grade.role} = {grade.source}" if grade.source else f"Graded: {grade.role}",
             grade.score_line]
    if student.run.interrupted:
        lines.append("The run was interrupted before every check was made: the checks not made earned nothing.")
    return "\n".join(lines)


def case(mark: Mark) -> dict[str, Any]:
    """One check as a Gradescope test; ``status`` is set so a partial score still reads as not passed."""
    return {
        "name": mark.name,
        "score": mark.earned,
        "max_score": mark.points,
        "status": "passed" if mark.held else "failed",
        "output": output(mark),
        "visibility": VISIBLE,
    }


def output(mark: Mark) -> str:
    """For a caught check, what to fix: why it was caught, what the program last said, whether it was restarted."""
    if mark.held:
        return f"Held: observed {mark.expected}, as expected." if mark.expected else "Held."
    lines = [f"Caught: {mark.why}" if mark.why else "Caught."]
    if mark.program:
        lines.append(f"Your program last said: {mark.program}")
    if mark.restarted:
        lines.append("Your program died during this check, and was started again for the next one.")
    return "\n".join(lines)
