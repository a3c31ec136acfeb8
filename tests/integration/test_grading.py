"""Grading on a real engine, as an instructor runs it: scores that count the right checks, every time.

Student programs of the tests' own: single files (tests/integration/students),
tutorial-style folders with a helper module and positional arguments
(tests/integration/submissions), and a class (tests/integration/class_echo).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from socklab.errors import EXIT_CHECK_FAILED, EXIT_OK
from tests.helpers import invoke

HERE = Path(__file__).parent
STUDENTS = HERE / "students"
SUBMISSIONS = HERE / "submissions"
APP_SERVER = "python3 app-server.py {host} {port}"
APP_CLIENT = "python3 app-client.py {host} {port} {action=search} {value}"


def grade(scenarios: str, tmp_path: Path, *impls: str, status: int = EXIT_CHECK_FAILED) -> tuple[dict[str, Any], str]:
    """Grade with ``invoke run --impl``: the one grade report.json holds, and what the console said."""
    args = [arg for impl in impls for arg in ("--impl", impl)]
    result = invoke("run", scenarios, *args, "--results", str(tmp_path))
    assert result.returncode == status, result.stdout + result.stderr
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    (grade_,) = report["grades"]
    return grade_, result.stdout


def marks(grade_: dict[str, Any]) -> dict[str, float]:
    return {f"{m['scenario']} / {m['check']}": m["earned"] for m in grade_["marks"]}


def test_a_server_bound_to_loopback_is_caught_by_every_check_from_another_host(engine, tmp_path: Path) -> None:
    grade_, shown = grade("tcp-echo,lan-interface", tmp_path, f"echo={STUDENTS / 'echo_loopback_only.py'}")
    held = marks(grade_)
    assert held["tcp-echo / the client host gets its message echoed"] == 0
    assert held["lan-interface / another host gets the echo"] == 0
    # it answers on 127.0.0.1, where a server bound to the LAN address must not
    assert held["lan-interface / its own host, at 127.0.0.1, is refused"] == 0
    assert "✗ lan-interface / another host gets the echo" in shown and "expected echoed, observed refused" in shown


def test_only_the_checks_that_exercise_the_program_count_and_the_denominator_is_whole(engine, tmp_path: Path) -> None:
    """A program that never starts scores 0 of everything it would have been checked on, with the cause."""
    grade_, shown = grade("tcp-echo,addr-in-use", tmp_path,
                          f"echo={HERE / 'class_echo' / 'dave'}/:python3 echo-server.py {{host}} {{port}}")
    assert grade_["score"] == 0 and grade_["possible"] == len(grade_["marks"]) > 0
    assert all(m["observed"] == "not-run" for m in grade_["marks"])
    assert all("addr-in-use / " not in name or "bind" not in name for name in marks(grade_))
    assert "the program did not start" in shown and "ModuleNotFoundError: No module named 'sockets'" in shown


def test_a_tutorial_folder_with_a_helper_module_and_positional_arguments_grades_unchanged(
        engine, tmp_path: Path) -> None:
    grade_, shown = grade("app-protocol", tmp_path, f"app={SUBMISSIONS / 'app_tutorial'}/:{APP_SERVER}",
                          status=EXIT_OK)
    assert grade_["score"] == grade_["possible"] == len(grade_["marks"]) >= 8, shown


def test_a_crash_costs_the_check_that_caused_it_and_the_same_every_time(engine, tmp_path: Path) -> None:
    spec = f"app={SUBMISSIONS / 'app_crashes_on_binary'}/:{APP_SERVER}"
    runs = [grade("app-protocol", tmp_path / str(n), spec) for n in range(3)]
    results = [marks(grade_) for grade_, _ in runs]
    assert results[0] == results[1] == results[2], "the same submission, three different grades"
    binary = "app-protocol / a binary request: the first 10 bytes come back"
    assert results[0][binary] == 0 and sum(v == 0 for v in results[0].values()) == 1, results[0]
    (blamed,) = [m for m in runs[0][0]["marks"] if m["earned"] == 0]
    assert blamed["restarted"] and "exited with status 1" in blamed["program"]
    assert "JSONDecodeError" in runs[0][1] and "started again for the next check" in runs[0][1]


def test_a_client_is_graded_against_the_reference_server(engine, tmp_path: Path) -> None:
    grade_, _ = grade("app-protocol", tmp_path, f"app-client={SUBMISSIONS / 'app_client_tutorial'}/:{APP_CLIENT}",
                      status=EXIT_OK)
    assert grade_["role"] == "app-client" and grade_["score"] == grade_["possible"] == 5


def test_a_client_that_asks_the_wrong_question_is_caught_by_what_it_prints(engine, tmp_path: Path) -> None:
    # the arguments in the wrong order: it asks for the action "morpheus", and prints the server's error
    wrong = "python3 app-client.py {host} {port} {value} {action=search}"
    grade_, shown = grade("app-protocol", tmp_path, f"app-client={SUBMISSIONS / 'app_client_tutorial'}/:{wrong}")
    held = marks(grade_)
    assert held["app-protocol / search morpheus"] == 0 and "white\\ rabbit" in shown


def test_a_class_is_graded_at_once_with_a_csv_gradescope_results_and_a_page(engine, tmp_path: Path) -> None:
    rubric = tmp_path / "grading.toml"
    rubric.write_text('scenarios = ["tcp-echo", "lan-interface"]\n'
                      '[roles.echo]\nrun = "python3 echo-server.py {host} {port}"\n'
                      '[points]\n"tcp-echo / the client host gets its message echoed" = 2\n')
    result = invoke("grade", str(HERE / "class_echo"), "--role", "echo", "--rubric", str(rubric),
                    "--results", str(tmp_path / "out"), "-j", "4")
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    folder = tmp_path / "out" / "latest"
    rows = list(csv.DictReader((folder / "class.csv").open()))
    by_student = {row["student"]: row for row in rows}
    assert list(by_student) == ["alice", "bob", "carol", "dave"]
    echoed = "tcp-echo / the client host gets its message echoed"
    assert by_student["alice"][echoed] == "2" and by_student["carol"][echoed] == "0"
    scores = {name: json.loads((folder / name / "results.json").read_text()) for name in by_student}
    assert scores["alice"]["score"] == sum(t["max_score"] for t in scores["alice"]["tests"]) > 0
    assert scores["dave"]["score"] == 0 and all(t["visibility"] == "visible" for t in scores["dave"]["tests"])
    assert scores["bob"]["score"] < scores["alice"]["score"]
    assert "No module named" in " ".join(t["output"] for t in scores["dave"]["tests"])
    page = (folder / "class.html").read_text()
    assert all(f">{name}<" in page for name in by_student) and 'href="alice/report.html"' in page
    assert "2 of 4 fail 'the client host gets its message echoed' (tcp-echo)" in result.stdout
    for name in by_student:
        assert (folder / name / "report.html").exists() and (folder / name / "junit.xml").exists()


def test_hostile_students_change_no_grade_but_their_own(engine, tmp_path: Path) -> None:
    """Mallory serves correctly while killing all it can and printing fake results; Oscar is a fork bomb.

    Alice's grade in their class is her grade alone; Mallory's attacks reach
    no probe, so she gets what her echo deserves; Oscar gets nothing.
    """
    rubric = tmp_path / "grading.toml"
    rubric.write_text('scenarios = ["tcp-echo", "lan-interface"]\n'
                      '[roles.echo]\nrun = "python3 echo-server.py {host} {port}"\n')
    alone = invoke("grade", str(HERE / "class_echo"), "--role", "echo", "--rubric", str(rubric),
                   "--results", str(tmp_path / "alone"), "-j", "4")
    assert alone.returncode == EXIT_CHECK_FAILED, alone.stdout + alone.stderr
    together = invoke("grade", str(HERE / "class_hostile"), "--role", "echo", "--rubric", str(rubric),
                      "--results", str(tmp_path / "together"), "-j", "4")
    assert together.returncode == EXIT_CHECK_FAILED, together.stdout + together.stderr

    def rows(folder: Path) -> dict[str, dict[str, str]]:
        return {row["student"]: row for row in csv.DictReader((folder / "latest" / "class.csv").open())}

    alice_alone, hostile = rows(tmp_path / "alone")["alice"], rows(tmp_path / "together")
    assert hostile["alice"] == alice_alone and alice_alone["score"] == alice_alone["possible"]
    assert hostile["mallory"]["score"] == hostile["mallory"]["possible"], "her echo works; her attacks do not"
    assert float(hostile["oscar"]["score"]) == 0


def test_a_submission_that_hangs_runs_out_of_its_own_time_and_the_rest_are_not_run(engine, tmp_path: Path) -> None:
    rubric = tmp_path / "grading.toml"
    rubric.write_text("[limits]\nseconds = 1\n")
    result = invoke("run", "tcp-echo", "--impl", f"echo={SUBMISSIONS / 'echo_never_answers.py'}",
                    "--rubric", str(rubric), "--results", str(tmp_path))
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    (grade_,) = json.loads((tmp_path / "latest" / "report.json").read_text())["grades"]
    first, *rest = grade_["marks"]
    assert first["observed"] == "timeout" and rest, "its first check waits for it, and spends its time"
    assert all(m["observed"] == "not-run" and "ran out" in m["detail"] for m in rest)
    assert grade_["score"] == 0 and grade_["possible"] == len(grade_["marks"])
