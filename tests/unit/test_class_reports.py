"""A class's views, from hand-made records: class.csv, class.html, the commonest failures and Gradescope's results.json.

No engine: a class of four students is built from ``Mark``s as grading makes
them (one held everything, two were caught by the same check, one was not
graded on a whole scenario), and every view is read back as its reader
would: the CSV with the csv module, the JSON with json, the page as text or,
for its sorting script, in headless Chromium (marked ``browser``).
"""

from __future__ import annotations

import csv
import json
import re
from html import unescape
from pathlib import Path

import pytest

from socklab.reports import cohort, gradescope
from socklab.reports.html import TEMPLATES
from socklab.results import ClassResult, Grade, Mark, RunResult, ScenarioResult, StudentResult
from tests.unit.test_html_report import HOSTILE, browser, chromium  # noqa: F401 (browser: a fixture)

SPLIT = "a request split byte by byte"
GET = "a GET is answered"
ECHO = "another host gets the echo"
HEADER = ["student", f"app-protocol / {SPLIT}", f"app-protocol / {GET}", f"echo / {ECHO}", "score", "possible"]


def held(scenario: str, check: str, points: float) -> Mark:
    return Mark("server", scenario, check, points, points, expected="answered", observed="answered")


def caught(scenario: str, check: str, points: float, program: str = "", restarted: bool = False) -> Mark:
    return Mark("server", scenario, check, points, 0.0, expected="answered", observed="reset",
                detail="the connection was reset after 1 byte", program=program, restarted=restarted)


def student(name: str, marks: list[Mark], folder: Path | None = None, seconds: float = 42.4,
            interrupted: bool = False) -> StudentResult:
    """A student's run as grading leaves it: the marks in their scenarios, the grade over all of them."""
    scenarios = [ScenarioResult(s, s, "Grading", "", marks=[m for m in marks if m.scenario == s],
                                implementations={"server": f"{name}/server.py"})
                 for s in dict.fromkeys(m.scenario for m in marks)]
    run = RunResult(scenarios, started="2026-11-21T05:46:43+00:00", seconds=seconds, interrupted=interrupted)
    return StudentResult(name, run, Grade("server", f"{name}/server.py", marks),
                         results_dir=str(folder / name) if folder else "")


def a_class(folder: Path | None = None) -> ClassResult:
    students = [
        student("alice", [held("app-protocol", SPLIT, 2), held("app-protocol", GET, 1), held("echo", ECHO, 1)],
                folder),
        student("bob", [caught("app-protocol", SPLIT, 2, "Traceback: IndexError", restarted=True),
                        held("app-protocol", GET, 1), held("echo", ECHO, 1)], folder),
        student("carol", [caught("app-protocol", SPLIT, 2), held("app-protocol", GET, 1),
                          caught("echo", ECHO, 1, "exited with status 1")], folder),
        student("dave", [caught("app-protocol", SPLIT, 2), Mark("server", "app-protocol", GET, 1, 0.5)], folder),
    ]
    return ClassResult("server", students, started="2026-11-21T05:46:43+00:00", seconds=200.0,
                       results_dir=str(folder) if folder else "")


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as sheet:
        return list(csv.reader(sheet))


# -- class.csv ----------------------------------------------------------------


def test_the_sheet_has_a_column_per_check_in_the_class_order_and_a_row_per_student(tmp_path: Path) -> None:
    cohort.write_class(a_class(tmp_path), tmp_path)
    rows = read_csv(tmp_path / "class.csv")
    assert rows[0] == HEADER
    assert rows[1:] == [
        ["alice", "2", "1", "1", "4", "4"],
        ["bob", "0", "1", "1", "2", "4"],
        ["carol", "0", "1", "0", "1", "4"],
        ["dave", "0", "0.5", "", "0.5", "3"],  # echo did not count for dave: blank, not 0
    ]


def test_the_sheets_totals_are_the_grades_own(tmp_path: Path) -> None:
    result = a_class()
    rows = cohort.csv_rows(result)
    for row, graded in zip(rows[1:], result.students, strict=True):
        assert sum(float(cell) for cell in row[1:-2] if cell) == graded.grade.score == float(row[-2])
        assert float(row[-1]) == graded.grade.possible


def test_a_name_a_spreadsheet_would_run_stays_text_and_commas_and_quotes_survive(tmp_path: Path) -> None:
    result = a_class()
    result.students[0].student = "=HYPERLINK(\"x\")"
    result.students[1].student = 'bob, "the" builder'
    cohort.write_class(result, tmp_path)
    rows = read_csv(tmp_path / "class.csv")
    assert rows[1][0] == "'=HYPERLINK(\"x\")"
    assert rows[2][0] == 'bob, "the" builder' and len(rows[2]) == len(HEADER)


# -- the commonest failures ---------------------------------------------------


def test_the_commonest_failures_say_how_many_of_how_many_each_caught_commonest_first() -> None:
    assert cohort.commonest_lines(a_class()) == [
        f"3 of 4 fail '{SPLIT}' (app-protocol)",
        f"1 of 4 fails '{GET}' (app-protocol)",  # half the points is not held
        f"1 of 3 fails '{ECHO}' (echo)",  # out of the students it counted for
    ]
    assert cohort.commonest_lines(a_class(), limit=1) == [f"3 of 4 fail '{SPLIT}' (app-protocol)"]


def test_a_class_that_held_everything_has_no_failures_to_list() -> None:
    result = ClassResult("server", [a_class().students[0]], started="", seconds=1.0)
    assert cohort.commonest_lines(result) == []
    assert "Commonest failures" not in cohort.render(result, Path("."))


# -- results.json (Gradescope) ------------------------------------------------


def test_results_json_has_a_test_per_mark_whose_points_add_up_to_the_grade(tmp_path: Path) -> None:
    bob = a_class(tmp_path).students[1]
    path = cohort.write_student(bob, tmp_path / "bob")
    assert path == tmp_path / "bob" / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    assert set(results) == {"score", "execution_time", "output", "tests"}
    assert results["score"] == bob.grade.score == 2 and results["execution_time"] == 42
    assert "2 of 4 points: 2 of 3 checks held" in results["output"] and "bob/server.py" in results["output"]
    tests = results["tests"]
    assert [t["name"] for t in tests] == [f"app-protocol / {SPLIT}", f"app-protocol / {GET}", f"echo / {ECHO}"]
    assert sum(t["max_score"] for t in tests) == bob.grade.possible == 4
    assert sum(t["score"] for t in tests) == results["score"]
    assert [t["status"] for t in tests] == ["failed", "passed", "passed"]
    assert {t["visibility"] for t in tests} == {"visible"}
    assert all(set(t) == {"name", "score", "max_score", "status", "output", "visibility"} for t in tests)


def test_a_caught_checks_output_says_why_what_the_program_said_and_that_it_was_restarted() -> None:
    bob, carol = a_class().students[1:3]
    split = gradescope.render(bob)["tests"][0]["output"]
    assert "expected answered, observed reset: the connection was reset after 1 byte" in split
    assert "Traceback: IndexError" in split and "started again" in split
    echo = gradescope.render(carol)["tests"][2]["output"]
    assert "exited with status 1" in echo and "started again" not in echo
    assert gradescope.render(bob)["tests"][1]["output"] == "Held: observed answered, as expected."


def test_a_partial_score_is_failed_and_an_interrupted_run_says_so() -> None:
    dave = a_class().students[3]
    dave.run.interrupted, dave.run.seconds = True, 0.0
    results = gradescope.render(dave)
    assert results["tests"][1]["score"] == 0.5 and results["tests"][1]["status"] == "failed"
    assert "interrupted" in results["output"]
    assert "execution_time" not in results  # no time known: none claimed


# -- class.html ---------------------------------------------------------------


def row_of(page: str, name: str) -> str:
    found = re.search(rf"<tr class=\"\w+\"><td data-sort=\"{re.escape(name)}\">.*?</tr>", page, re.S)
    assert found, f"no row for {name}"
    return found.group(0)


def test_the_page_has_a_row_per_student_with_held_and_caught_cells_coloured(tmp_path: Path) -> None:
    cohort.write_class(a_class(tmp_path), tmp_path)
    page = (tmp_path / "class.html").read_text(encoding="utf-8")
    assert "<h1>1 of 4 students held every check</h1>" in page
    tones = {name: re.findall(r'class="cell (\w+)"', row_of(page, name)) for name in ("alice", "bob", "carol", "dave")}
    assert tones == {"alice": ["pass", "pass", "pass"], "bob": ["fail", "pass", "pass"],
                     "carol": ["fail", "pass", "fail"], "dave": ["fail", "fail", "none"]}
    assert 'title="expected answered, observed reset: the connection was reset after 1 byte"' in row_of(page, "bob")
    assert f"<li>3 of 4 fail &#39;{SPLIT}&#39; (app-protocol)</li>" in page


def test_each_name_links_to_that_students_report_relative_to_the_class_folder(tmp_path: Path) -> None:
    result = a_class(tmp_path / "class")
    result.students[1].results_dir = ""  # not written yet: the class folder's convention, <student>/
    result.students[2].results_dir = str(tmp_path / "elsewhere" / "carol 2")
    page = cohort.render(result, tmp_path / "class")
    links = re.findall(r'<a href="([^"]+)">(\w+)</a>', page)
    assert links == [("alice/report.html", "alice"), ("bob/report.html", "bob"),
                     ("../elsewhere/carol%202/report.html", "carol"), ("dave/report.html", "dave")]


def test_hostile_student_and_check_names_are_escaped_in_text_and_attributes(tmp_path: Path) -> None:
    h = HOSTILE
    marks = [caught(f"scenario{h}", f"check{h}", 1, program=f"program{h}")]
    result = ClassResult(f"role{h}", [student(f"student{h}", marks, tmp_path)], started=f"started{h}", seconds=1.0,
                         results_dir=f"folder{h}")
    result.students[0].grade.marks[0].detail = f"detail{h}"
    cohort.write_class(result, tmp_path)
    page = (tmp_path / "class.html").read_text(encoding="utf-8")
    assert "<i>" not in page and "\"'&" not in page
    escaped = "&lt;i&gt;&#34;&#39;&amp;"
    assert page.count(escaped) >= 10, f"only {page.count(escaped)} hostile values on the page"
    assert f'data-sort="student{escaped}"' in page and f'title="scenario{escaped} / check{escaped}"' in page
    assert 'href="student%3Ci%3E%22%27%26/report.html"' in page  # a link, URL-quoted
    assert f"1 of 1 fails &#39;check{escaped}&#39; (scenario{escaped})" in page


def test_the_page_sorts_by_a_clicked_header_with_its_own_script_and_fetches_nothing() -> None:
    page = cohort.render(a_class(), Path("."))
    assert '<table class="sortable">' in page
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", page)
    assert len(headers) == len(HEADER) and all(h.startswith('<button type="button">') for h in headers)
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(script) == 1 and 'addEventListener("click"' in script[0] and "dataset.sort" in script[0]
    assert not re.search(r"<link|\bsrc=|url\(|@import|https?://", page)


def test_the_class_template_is_package_data_and_marks_nothing_safe() -> None:
    assert "class.html" in TEMPLATES.list_templates()
    assert TEMPLATES.loader is not None
    source = TEMPLATES.loader.get_source(TEMPLATES, "class.html")[0]
    assert not re.search(r"\|\s*safe\b|\bMarkup\b|autoescape\s+false", source)
    assert not re.search(r"\bMarkup\b|\|\s*safe\b", Path(cohort.__file__).read_text())


def test_an_empty_or_interrupted_class_says_so() -> None:
    empty = ClassResult("server", [], started="", seconds=0.0)
    assert "No student was graded" in cohort.render(empty, Path("."))
    assert cohort.csv_rows(empty) == [["student", "score", "possible"]]
    stopped = a_class()
    stopped.interrupted = True
    page = cohort.render(stopped, Path("."))
    assert "Interrupted before every student was graded" in page and "exit 130" in page


# -- in a browser -------------------------------------------------------------

CLICK = """<script>
/* Test only: click headers as a reader would, and note the students' order after each click. */
const order = () => [...document.querySelectorAll("tbody tr")].map(row => row.cells[0].textContent).join(",");
const click = text => [...document.querySelectorAll("th button")].find(b => b.textContent === text).click();
const seen = [];
click("Score"); seen.push(order());
click("Score"); seen.push(order());
click("Student"); click("Student"); seen.push(order());
document.body.setAttribute("data-orders", JSON.stringify(seen));
</script>"""


@pytest.mark.browser
def test_clicking_a_header_sorts_the_students_in_a_browser(browser: str, tmp_path: Path) -> None:  # noqa: F811
    page = tmp_path / "clicked.html"
    page.write_text(cohort.render(a_class(), tmp_path).replace("</body>", CLICK + "\n</body>"), encoding="utf-8")
    dom = chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    found = re.search(r'data-orders="([^"]*)"', dom)
    assert found, "the clicking script did not run"
    assert json.loads(unescape(found.group(1))) == ["dave,carol,bob,alice", "alice,bob,carol,dave",
                                                    "dave,carol,bob,alice"]
