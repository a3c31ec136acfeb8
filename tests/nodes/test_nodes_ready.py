"""nodes.ready's watch on the service it waits for: a pid file names the service's process once it is written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nodes import ready


def test_a_pidfile_absent_or_still_being_written_is_a_service_still_starting(tmp_path: Path) -> None:
    pidfile = tmp_path / "service.pid"
    assert ready.alive(pidfile)
    pidfile.write_text("")  # as `echo $! >file` leaves it for a moment: made, its number not yet in
    assert ready.alive(pidfile)
    pidfile.write_text(f"{os.getpid()}\n")
    assert ready.alive(pidfile)
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfile.write_text(f"{gone.pid}\n")
    assert not ready.alive(pidfile)


def test_the_wait_outlasts_an_empty_pidfile_and_ends_not_ready_rather_than_failing(tmp_path: Path) -> None:
    pidfile = tmp_path / "service.pid"
    pidfile.write_text("")
    with_nothing_listening = ready.main(["unix:///nonexistent/socket", "--timeout", "0.3", "--pidfile", str(pidfile)])
    assert with_nothing_listening == ready.NOT_READY
