"""Grading on a real engine: the classic student bugs that every ordinary check lets through are caught.

Each broken program under students/ answers "Hello, world", the searches
and the loads, and falls to one check that writes or reads the way real
clients and networks may: a request in pieces, a FIN right after it, two
requests in one write, a slow reader, a second client while the first stays
connected. A correct program of each kind passes every check. What is
asserted is each check's own record in report.json (scenario, check name,
passed, observed), not the grade's shape.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from socklab.errors import EXIT_CHECK_FAILED
from tests.helpers import invoke

STUDENTS = Path(__file__).parent / "students"

BYTEWISE = ("app-protocol", "a request written one byte at a time is answered")
PREFIX = ("app-protocol", "a length prefix split across two sends is answered")
FIN = ("app-protocol", "a request followed at once by the client's FIN is still answered")
BACK_TO_BACK = ("app-protocol", "two requests back to back in one write: the first is answered")
SLOW_READER = ("tcp-echo", "a slow reader gets a 256 KiB echo whole: every byte send() did not take is sent again")
SECOND_CLIENT = "a second client is echoed while the first stays connected"
# The scenarios whose servers serve many clients at once, and the program each runs (the role a student plays).
MANY_CLIENTS = {"socketserver-threading": "sockserver", "socketserver-forking": "sockserver",
                "multiconn": "multiconn", "asyncio-echo": "asyncecho"}


def grade(scenarios: list[str], impls: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                                dict[str, Any]]:
    """``invoke run SCENARIOS --impl ROLE=FILE ...``: what it printed, and its report.json."""
    options = [word for role, student in impls.items() for word in ("--impl", f"{role}={STUDENTS / student}")]
    result = invoke("run", ",".join(scenarios), *options, "--jobs", "2", "--results", str(tmp_path))
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert all(s["status"] in ("passed", "failed") for s in report["scenarios"]), result.stdout + result.stderr
    return result, report


def checks(report: dict[str, Any]) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """Every check made (one per host for a check of several hosts), by (scenario, check name)."""
    return [((scenario["name"], check["name"]), check) for scenario in report["scenarios"]
            for check in scenario["checks"]]


def failed(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {name for name, check in checks(report) if not check["passed"]}


def only(report: dict[str, Any], wanted: tuple[str, str]) -> dict[str, Any]:
    (found,) = [check for name, check in checks(report) if name == wanted]
    return found


@pytest.mark.parametrize(("student", "caught_by"), [
    ("app_reads_once.py", {BYTEWISE, PREFIX}),
    ("app_drops_on_fin.py", {FIN}),
    ("app_ignores_content_length.py", {BACK_TO_BACK}),
])
def test_an_app_server_with_a_classic_bug_passes_the_ordinary_checks_and_falls_to_its_own(
    engine: Any, tmp_path: Path, student: str, caught_by: set[tuple[str, str]],
) -> None:
    result, report = grade(["app-protocol"], {"app": student}, tmp_path)
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    assert failed(report) == caught_by, result.stdout
    for name in caught_by:
        assert only(report, name)["observed"] != "ok"


def test_a_correct_app_server_passes_every_check(engine: Any, tmp_path: Path) -> None:
    result, report = grade(["app-protocol"], {"app": "app_correct.py"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not failed(report)
    assert only(report, FIN)["evidence"]["written"].endswith("then FIN")


def test_an_echo_server_using_send_instead_of_sendall_falls_to_the_slow_reader(engine: Any, tmp_path: Path) -> None:
    result, report = grade(["tcp-echo"], {"echo": "echo_send_not_sendall.py"}, tmp_path)
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    assert SLOW_READER in failed(report)
    assert only(report, ("tcp-echo", "the client host gets its message echoed"))["passed"]
    slow = only(report, SLOW_READER)
    # the bytes send() did not take never come: the client waits for them until its time is up
    assert slow["observed"] == "timeout" and slow["evidence"]["received"] < 262144, slow


def test_a_one_client_at_a_time_server_falls_to_a_second_client_in_every_many_clients_scenario(
    engine: Any, tmp_path: Path,
) -> None:
    impls = dict.fromkeys(MANY_CLIENTS.values(), "echo_one_at_a_time.py")
    result, report = grade(list(MANY_CLIENTS), impls, tmp_path)
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    caught = failed(report)
    for scenario in MANY_CLIENTS:
        second = only(report, (scenario, SECOND_CLIENT))
        # the first client was echoed and is held open; the second waits until its time is up
        assert not second["passed"] and second["observed"] == "timeout", (scenario, second.get("detail"), result.stdout)
        assert second["evidence"]["held"] == "echoed", second
    # threads, processes and a selectors loop: before this check, serving one client after another passed them all
    for scenario in ("socketserver-threading", "socketserver-forking", "multiconn"):
        assert {name for name in caught if name[0] == scenario} == {(scenario, SECOND_CLIENT)}, result.stdout


def test_a_correct_echo_server_passes_every_check_of_these_scenarios(engine: Any, tmp_path: Path) -> None:
    impls = {"echo": "echo_correct.py"} | dict.fromkeys(MANY_CLIENTS.values(), "echo_correct.py")
    result, report = grade(["tcp-echo", *MANY_CLIENTS], impls, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not failed(report)
    assert only(report, SLOW_READER)["observed"] == "echoed"
