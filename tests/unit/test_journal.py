"""Results that survive a crash: the journal's report.json as a run goes, and files written whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socklab import catalogue, events
from socklab.reports import files
from socklab.reports.journal import MARKER, Journal
from socklab.results import CheckResult, RunResult, ScenarioResult, Status


def report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_the_journal_holds_every_check_made_so_far_and_says_it_is_incomplete(tmp_path: Path) -> None:
    echo, loop = catalogue.load(["tcp-echo", "loopback-only"])
    journal = Journal(tmp_path, [echo, loop], "2026-12-02T00:00:00+00:00")
    assert (tmp_path / MARKER).exists() and report(tmp_path)["complete"] is False
    assert [s["status"] for s in report(tmp_path)["scenarios"]] == ["pending", "pending"]

    journal(events.CheckFinished("loopback-only", CheckResult("its own host", "server", "probe", "echoed", "echoed")))
    assert [c["name"] for c in report(tmp_path)["scenarios"][1]["checks"]] == ["its own host"]
    done = ScenarioResult("tcp-echo", echo.title, echo.topic, echo.explains, status=Status.PASSED,
                          checks=[CheckResult("c", "client", "probe", "echoed", "echoed")])
    journal(events.ScenarioFinished(done))
    written = report(tmp_path)
    assert written["scenarios"][0]["status"] == "passed" and written["complete"] is False

    journal.close(RunResult([done], "now", 1.0, interrupted=True))
    assert (tmp_path / MARKER).exists(), "an interrupted run did not finish: the marker stays"
    journal.close(RunResult([done], "now", 1.0))
    assert not (tmp_path / MARKER).exists()


def test_a_file_is_replaced_whole_and_a_failed_write_leaves_the_old_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    files.atomic_write(path, b"old")
    files.atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and oct(path.stat().st_mode & 0o777) == "0o644"

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write(path, b"half")
    assert path.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
