"""What the tests of `try` texts read: the table `invoke up` prints, `ss` output, a run's report and pcaps."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.tries import Said, TrySession

# One row of the lab table: │ server │ lan │ 198.18.51.2 │ fd50:c1ab:0:33::2 │ (a host's second network: no
# name; an IPv4-only network: no IPv6)
ROW = re.compile(r"^│\s*(\S*)\s*│\s*(\S+)\s*│\s*(\S+)\s*│\s*(\S*)\s*│")


def addresses(up: Said) -> dict[str, dict[str, tuple[str, str]]]:
    """Host -> network -> (IPv4, IPv6), as `invoke up` printed them."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    host = ""
    for line in up.stdout.splitlines():
        if row := ROW.match(line):
            host = row.group(1) or host
            found.setdefault(host, {})[row.group(2)] = (row.group(3), row.group(4))
    assert found, up
    return found


def local_addresses(ss: Said) -> list[str]:
    """The Local Address:Port column of `ss -ltn` or `ss -ltnu` (whose first column is the Netid)."""
    assert ss.exit == 0, ss
    lines = ss.stdout.splitlines()
    column = 4 if lines and lines[0].startswith("Netid") else 3
    return [line.split()[column] for line in lines[1:] if line.strip()]


def results(session: TrySession) -> Path:
    return session.cwd / "results" / "latest"


def report(session: TrySession) -> dict[str, Any]:
    """The one scenario of the last run's report.json."""
    (scenario,) = json.loads((results(session) / "report.json").read_text())["scenarios"]
    assert isinstance(scenario, dict)
    return scenario


def packets(session: TrySession, scenario: str, pcap: str) -> list[str]:
    """The packets of one capture of the last run, as `tcpdump -nn -r` prints them."""
    path = results(session) / "captures" / scenario / pcap
    assert path.is_file(), sorted(p.name for p in path.parent.glob("*"))
    done = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def until(attempt: Callable[[], Said], done: Callable[[Said], bool], seconds: float = 20) -> Said:
    """Repeat a command until its output says what is awaited (a server just started), or the time is up."""
    deadline = time.monotonic() + seconds
    said = attempt()
    while not done(said) and time.monotonic() < deadline:
        time.sleep(0.5)
        said = attempt()
    return said
