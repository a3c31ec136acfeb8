"""Submissions are untrusted: hostile programs run as the graded user beside the lab's own, on a real engine.

Each test starts a program of tests/integration/hostile/ as ``GRADED_USER``
on the server host, the way grading starts a submission (``Service.user``),
next to an echo server that the lab user started, and shows what the
hostile program could not do: kill or trace the lab's processes, rewrite
socklab's files or the log, pid and exit files that say how it ended, make
a probe report what it did not see, take every process of its host, or fill
the disk. After each, the lab still works, and the ``backend`` fixture checks
that nothing of it remains.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from socklab import commands
from socklab.backend.docker.backend import SCRATCH
from socklab.constants import GRADED_ID, GRADED_USER, SUBMISSION_HOME
from socklab.lab import Lab
from socklab.model import Command, FileCopy, Host, Network, Service

HOSTILE = Path(__file__).parent / "hostile"
PROGRAMS = "/lab/hostile"  # read-only for everyone on the hosts (root's): the student reads it, as anyone may
HOSTS = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
ECHO_PORT = 65432
ECHO = Service("echo", "server", Command.parse(f"echo serve --bind 0.0.0.0 --port {ECHO_PORT}"),
               ready=f"tcp://*:{ECHO_PORT}")  # the lab user's
HELLO = "Hello, world"


@pytest.fixture
def lab(backend) -> Iterator[Lab]:
    """A server and a client; the lab user's echo server listens on the server, and answers from both hosts."""
    with Lab.open(backend, "hostile", {"lan": Network("lan")}, HOSTS,
                  files=[FileCopy(PROGRAMS, HOSTILE, read_only=True)]) as opened:
        opened.require(ECHO)
        yield opened


def echoes(lab: Lab) -> list[tuple[str, object]]:
    """What the echo server's clients see, from the client host and from the server host itself."""
    seen = [lab.probe("client", to=f"{{server.lan.ipv4}}:{ECHO_PORT}", send=HELLO, timeout=10),
            lab.probe("server", to=f"127.0.0.1:{ECHO_PORT}", send=HELLO, timeout=10)]
    return [(found.outcome, found.evidence.get("reply")) for found in seen]


ALL_ECHOED = [("echoed", HELLO), ("echoed", HELLO)]


def student(lab: Lab, name: str, program: str, *args: str, ready: str | None = None) -> Service:
    """Start a hostile program as the graded user on the server host, in its own folder."""
    return lab.start("server", ["python3", f"{PROGRAMS}/{program}", *args], name=name, user=GRADED_USER,
                     cwd=SUBMISSION_HOME, ready=ready)


def log_until(lab: Lab, service: Service, text: str, timeout: float = 30.0) -> str:
    """The service's log, once ``text`` is in it."""
    deadline = time.monotonic() + timeout
    while True:
        log = lab.service_logs([service])[service.name]
        if text in log or time.monotonic() > deadline:
            assert text in log, f"{text!r} never came in {service.name}'s log:\n{log[-2000:]}"
            return log
        time.sleep(0.2)


def pid_of(lab: Lab, service: Service) -> int:
    _, pid, _ = commands.service_files(service)
    return int(lab.exec(service.host, ["cat", pid]).stdout)


def alive(lab: Lab, host: str, pid: int) -> bool:
    return lab.exec(host, ["test", "-d", f"/proc/{pid}"]).ok


def student_processes(lab: Lab) -> list[str]:
    return lab.exec("server", ["pgrep", "-u", GRADED_USER]).stdout.split()


def test_killing_every_process_it_can_leaves_the_lab_and_its_probes_alone(lab: Lab) -> None:
    assert echoes(lab) == ALL_ECHOED
    echo_pid = pid_of(lab, ECHO)
    killer = student(lab, "killer", "killer.py", "8", str(echo_pid), "1", ready="log:killing")
    during = [echoes(lab) for _ in range(3)]  # while it sends SIGKILL to everything, every few milliseconds
    log = log_until(lab, killer, "done")

    assert "own child: killed" in log, "its kills land where they may (on its own processes)"
    assert during == [ALL_ECHOED] * 3, "probes on the server host and on the client are not killed"
    assert alive(lab, "server", echo_pid) and echoes(lab) == ALL_ECHOED
    assert f"ptrace {echo_pid}: EPERM" in log and "ptrace 1: EPERM" in log, "the lab's processes cannot be traced"
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert re.search(rf"^{caps}:\s+0+$", log, re.MULTILINE), f"{caps} is empty:\n{log}"
    assert re.search(r"^NoNewPrivs:\s+1$", log, re.MULTILINE)
    assert re.search(rf"^Uid:\s+{GRADED_ID}\s", log, re.MULTILINE), "it runs as the graded user"


def test_socklab_files_and_its_own_pid_and_exit_files_cannot_be_rewritten(lab: Lab) -> None:
    nodes = lab.get("server", "/opt/socklab/nodes")
    before = {path: lab.get("server", path) for path in commands.service_files(ECHO)[:2]}
    rewriter = student(lab, "rewriter", "rewriter.py", "echo", "rewriter")
    log = log_until(lab, rewriter, "[exited with status")

    attempts = [line for line in log.splitlines() if line.startswith(("DENIED", "DONE"))]
    assert len(attempts) == 8 + 2 * 9, log
    assert not [line for line in attempts if line.startswith("DONE")], log
    assert lab.get("server", "/opt/socklab/nodes") == nodes
    assert {path: lab.get("server", path) for path in before} == before
    assert lab.probe("server", to=f"127.0.0.1:{ECHO_PORT}", send=HELLO).outcome == "echoed"
    _, pid, status = commands.service_files(rewriter)
    said = re.search(r"^pid (\d+)$", log, re.MULTILINE)
    assert said and lab.get("server", pid) == f"{said.group(1)}\n".encode(), "the pid file names the program"
    assert lab.get("server", status) == b"3\n", "its exit status is the one it exited with, not the one it wrote"


def test_fake_probe_results_do_not_change_what_a_probe_reports(lab: Lab) -> None:
    faker = student(lab, "faker", "faker.py", "7000", "6", ready="log:forging")
    fooled = lab.probe("client", to="{server.lan.ipv4}:7000", send=HELLO, timeout=10)
    during = [echoes(lab) for _ in range(3)]  # while it writes fake results into every output it can open
    log = log_until(lab, faker, "forged into others' output")

    assert fooled.outcome == "mismatch", "the probe reports the JSON it was sent as a wrong reply, not as its result"
    assert str(fooled.evidence.get("reply")).startswith('{"outcome": '), "as many bytes as it sent, as they came"
    assert during == [ALL_ECHOED] * 3
    assert "forged into others' output: 0" in log, log


def test_a_fork_bomb_is_stopped_and_the_lab_goes_on(lab: Lab) -> None:
    bomb = student(lab, "bomb", "bomb.py", ready="log:forking")
    log = log_until(lab, bomb, "[guard]")
    log = log_until(lab, bomb, "[exited with status")

    assert re.search(rf"\[guard\] {GRADED_USER} had \d+ processes on this host, over its limit of "
                     rf"{commands.GRADED_PROCESSES}: its processes were stopped and killed", log), log
    assert log.rstrip().endswith("[exited with status 137]"), "the bomb's own process was killed (SIGKILL)"
    deadline = time.monotonic() + 10
    while student_processes(lab) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not student_processes(lab), "no process of the bomb is left"
    assert echoes(lab) == ALL_ECHOED, "the server host runs the lab's commands again, and its server answers"
    lab.start("server", "echo serve --bind 0.0.0.0 --port 7001", name="another", ready="tcp://*:7001")


def test_filling_the_disk_stops_at_the_size_caps(lab: Lab) -> None:
    folders = [SUBMISSION_HOME, "/tmp", "/var/tmp", "/run/lock"]
    filler = student(lab, "filler", "filler.py", *folders)
    log = log_until(lab, filler, "done")

    file_cap = commands.GRADED_LIMITS["fsize"]
    for folder in folders:
        found = re.search(rf"^{re.escape(folder)} single=(\d+) (\w+) total=(\d+) (\w+)$", log, re.MULTILINE)
        assert found, log
        single, why_single, total, why = int(found[1]), found[2], int(found[3]), found[4]
        size = int(SCRATCH[folder][0].removesuffix("m")) * 2**20
        assert single <= file_cap and why_single in ("EFBIG", "ENOSPC"), found[0]
        assert total <= size and why == "ENOSPC", found[0]
        assert total >= min(size, file_cap) - 2**20, f"it did write, up to the cap: {found[0]}"
    assert re.search(rf"^{SUBMISSION_HOME} single={file_cap} EFBIG ", log, re.MULTILINE), "one file stops at the cap"
    for folder in ("/", "/lab", "/etc"):
        assert re.search(rf"^{folder} EACCES$", log, re.MULTILINE), log
    assert echoes(lab) == ALL_ECHOED
