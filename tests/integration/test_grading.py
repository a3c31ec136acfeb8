"""Grading mode on a real engine: the catalogue's checks catch broken student servers."""

from __future__ import annotations

import json
from pathlib import Path

from socklab.errors import EXIT_CHECK_FAILED
from tests.helpers import invoke

STUDENTS = Path(__file__).parent / "students"


def grade(student: str, scenarios: str, tmp_path: Path) -> dict:
    result = invoke("run", scenarios, "--impl", f"echo={STUDENTS / student}", "--results", str(tmp_path))
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    assert f"echo = {STUDENTS / student}" in result.stdout
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    (grade,) = report["grades"].values()
    return grade


def test_a_server_bound_to_loopback_is_caught_by_every_check_from_another_host(engine, tmp_path: Path) -> None:
    grade_ = grade("echo_loopback_only.py", "tcp-echo,lan-interface", tmp_path)
    assert "tcp-echo / the client host gets its message echoed" in grade_["failed"]
    assert "lan-interface / another host gets the echo" in grade_["failed"]
    # it answers on 127.0.0.1, where a server bound to the LAN address must not
    assert "lan-interface / its own host, at 127.0.0.1, is refused" in grade_["failed"]
    assert not grade_["labs_not_ready"]


def test_a_server_that_reads_once_is_caught_only_by_the_big_message(engine, tmp_path: Path) -> None:
    grade_ = grade("echo_reads_once.py", "tcp-echo", tmp_path)
    assert grade_["passed"] == ["tcp-echo / the client host gets its message echoed"]
    assert grade_["failed"] == ["tcp-echo / a 1 MiB message comes back whole, however the stream splits it"]
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    big = report["scenarios"][0]["checks"][1]
    # it closes with most of the message still unread in its buffer, and Linux answers that with a RST
    assert big["observed"] == "reset" and big["evidence"]["received"] < 1048576
