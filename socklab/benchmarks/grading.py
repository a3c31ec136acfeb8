"""Grading a class: 30 generated echo submissions, correct and broken mixed, graded as ``invoke grade`` does.

Every submission is a tutorial-style echo server (``python3 echo-server.py
<host> <port>``), one of four kinds in turn: correct, one that reads once,
one bound to loopback whatever it is told, and one that dies at start. Each
repeat grades the whole class from scratch, four labs at a time, on
tcp-echo and lan-interface; the figures are its wall time and the
submissions graded per minute.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from socklab import api
from socklab.backend.docker import DockerBackend
from socklab.benchmarks import Figure

STUDENTS = 30
JOBS = 4
RUBRIC = """scenarios = ["tcp-echo", "lan-interface"]
[roles.echo]
run = "python3 echo-server.py {host} {port}"
"""
_SERVE = """import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(({bind}, port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
{body}
"""
KINDS = {
    "correct": _SERVE.format(bind="host", body="            while data := conn.recv(1024):\n"
                                                "                conn.sendall(data)"),
    "reads-once": _SERVE.format(bind="host", body="            conn.sendall(conn.recv(1024))"),
    "loopback": _SERVE.format(bind='"127.0.0.1"', body="            while data := conn.recv(1024):\n"
                                                        "                conn.sendall(data)"),
    "dies": "import sys\nraise SystemExit(f'cannot serve {sys.argv[1:]}')\n",
}


def make_class(folder: Path) -> None:
    """``STUDENTS`` folders, student-00 to student-29, each of the next kind in turn."""
    kinds = list(KINDS.values())
    for number in range(STUDENTS):
        student = folder / f"student-{number:02d}"
        student.mkdir(parents=True)
        (student / "echo-server.py").write_text(kinds[number % len(kinds)])


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    backend = DockerBackend()
    backend.ensure_image(progress)
    wall = Figure(f"grade a class of {STUDENTS} echo submissions ({JOBS} labs at a time)", "s")
    rate = Figure("submissions graded per minute", "/min", target=">= 10")
    with tempfile.TemporaryDirectory(prefix="socklab-bench-class-") as scratch:
        root = Path(scratch)
        make_class(root / "class")
        (root / "grading.toml").write_text(RUBRIC)
        for turn in range(repeats):
            progress(f"  grading a class, turn {turn + 1}")
            began = time.monotonic()
            result = api.grade_class(root / "class", "echo", rubric=root / "grading.toml", jobs=JOBS,
                                     results_root=root / "results", backend=backend)
            took = time.monotonic() - began
            if len(result.students) != STUDENTS or result.interrupted:
                raise RuntimeError(f"graded {len(result.students)} of {STUDENTS} students")
            wall.samples.append(round(took, 2))
            rate.samples.append(round(STUDENTS / took * 60, 1))
    return [wall, rate]
