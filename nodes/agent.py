"""A lab host's resident agent: it runs the host's checks on request, all over one channel.

Every check used to be a ``docker exec`` of its own: about 75 ms for the
engine to start it and 40-140 ms for Python to start and import before any
socket work. The agent is started once, with the host, and then reads
requests on its standard input and writes results on its standard output,
one JSON object per line each way, so that the lab talks to it over a
single attached exec for the host's whole life::

    -> {"id": 7, "argv": ["timeout", "-k", "1", "25", "python3", "-m", "nodes.probe", "--to", "..."]}
    <- {"id": 7, "exit": 0, "stdout": "{\\"outcome\\": \\"echoed\\", ...}\\n", "stderr": ""}

A request's argv is the very command a ``docker exec`` would have run, and
it is carried out the same way, only cheaper:

- ``timeout -k K LIMIT ...`` bounds it: SIGTERM to its process group at
  the limit, SIGKILL K seconds later, exit status 124 (137 if SIGKILL was
  needed), as coreutils ``timeout`` does;
- ``env [-C DIR] [NAME=VALUE ...] ...`` sets its folder and environment;
- ``python3 -m nodes.PROGRAM ARGS`` runs in a fork of this already started
  interpreter, whose standard library and shared node modules are imported
  once (``PRELOADED``), as ``runpy`` would run it: the saving is the point
  (while it runs, ``ps`` shows it with the agent's command line, a fork
  keeps it; services are started by the shell as before, so a server shows
  as itself);
- anything else is executed as it is (``execvp``), 127 if not found.

Each command gets its own process group, /dev/null as input and pipes for
its output, which go back whole when it exits. Requests run side by side:
the agent is one thread with a ``selectors`` loop over its input, the
commands' pipes and their pidfds (which make an exit readable), so forking
it is safe. It runs as the lab user and never as anybody else: commands for
root or a graded submission's user still go by ``docker exec`` (the lab
decides). When its input ends (the lab is going), it stops its commands'
process groups and exits.

    python -m nodes.agent        # then type a request line
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import selectors
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

# Imported once here, so that a forked command finds them loaded: what the
# probe and most node programs share. asyncio is left to the few programs
# that use it (about 30 ms of CPU on every host, for a handful of checks).
PRELOADED = ("nodes.cli", "nodes.tally", "hashlib", "struct", "dataclasses")
OUTPUT_CAP = 8 * 2**20  # bytes of a stream kept per command; the rest is dropped (the lab keeps the end anyway)
READ_SIZE = 65536
TIMED_OUT, KILLED, NOT_FOUND, CANNOT_RUN = 124, 137, 127, 126


@dataclass
class Command:
    """One request, taken apart: its bounds and setting, then what to run."""

    argv: list[str]
    limit: float | None = None
    kill_after: float = 1.0
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str | None:
        """The node program's module when the command is ``python3 -m nodes.X``, run in a fork of this one."""
        if len(self.argv) >= 3 and self.argv[0] == "python3" and self.argv[1] == "-m" \
                and self.argv[2].startswith("nodes."):
            return self.argv[2]
        return None


def parse(argv: list[str]) -> Command:
    """Peel the ``timeout`` and ``env`` a lab puts in front of a command; what remains is run."""
    command = Command(list(argv))
    if command.argv[:2] == ["timeout", "-k"] and len(command.argv) >= 4:
        command.kill_after, command.limit = float(command.argv[2]), float(command.argv[3])
        command.argv = command.argv[4:]
    if command.argv[:1] == ["env"]:
        rest = command.argv[1:]
        if rest[:1] == ["-C"] and len(rest) > 1:
            command.cwd, rest = rest[1], rest[2:]
        while rest and "=" in rest[0] and not rest[0].startswith("="):
            name, _, value = rest[0].partition("=")
            command.env[name] = value
            rest = rest[1:]
        command.argv = rest
    if not command.argv:
        raise ValueError("an empty command")
    return command


@dataclass
class Job:
    """A command running for a request: its pipes, its output so far, its deadline."""

    id: Any
    pid: int
    pidfd: int
    pipes: dict[int, bytearray]  # read end -> what came out of it (stdout's first)
    deadline: float | None
    kill_after: float
    signalled: int = 0  # the last signal the deadline sent (SIGTERM, then SIGKILL)


def start(request_id: Any, command: Command) -> Job:
    """Fork the command, in a process group of its own, its output into two pipes."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 1 << 16)  # the agent's own channel, selector and other commands' pipes
        os._exit(_child(command))
    os.close(out_w)
    os.close(err_w)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
    deadline = time.monotonic() + command.limit if command.limit is not None else None
    return Job(request_id, pid, os.pidfd_open(pid), {out_r: bytearray(), err_r: bytearray()}, deadline,
               command.kill_after)


def _child(command: Command) -> int:
    """In the fork: set the folder and environment, then become the command; return its exit status."""
    try:
        if command.cwd is not None:
            os.chdir(command.cwd)
        os.environ.update(command.env)
        module = command.module
        if module is None:
            os.execvp(command.argv[0], command.argv)
        sys.argv = [module, *command.argv[3:]]
        return _run_module(module)
    except FileNotFoundError as exc:
        _say(f"{command.argv[0]}: {exc.strerror}")
        return NOT_FOUND
    except OSError as exc:
        _say(f"{command.argv[0]}: {exc.strerror}")
        return CANNOT_RUN


def _run_module(module: str) -> int:
    """What ``python3 -m MODULE`` would exit with, run here."""
    code: Any = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, then status 1
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return int(code) & 0xFF


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode())


def send(message: dict[str, Any]) -> None:
    """One line on the channel (standard output), written whole: the agent has no other writer."""
    data = (json.dumps(message) + "\n").encode()
    while data:
        written = os.write(1, data)
        data = data[written:]


class Agent:
    """The loop: requests in, commands forked, pipes read, exits and deadlines watched."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pidfd
        self.pending = b""
        self.open = True

    def serve(self) -> None:
        os.set_blocking(0, False)
        self.selector.register(0, selectors.EVENT_READ, "requests")
        send({"agent": "ready", "pid": os.getpid()})
        while self.open or self.jobs:
            ready = [key for key, _ in self.selector.select(self._wait())]
            # Output first, then exits (which close their pipes), then new requests (whose
            # pipes may reuse those numbers): no event of this round can reach a closed pipe.
            for key in ready:
                if isinstance(key.data, Job):
                    self._read_output(key.fd, key.data)
            for key in ready:
                if key.data == "exit":
                    self._finish(self.jobs.pop(key.fd))
            if any(key.data == "requests" for key in ready):
                self._read_requests()
            self._enforce_deadlines()

    def _wait(self) -> float | None:
        deadlines = [job.deadline for job in self.jobs.values() if job.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _read_requests(self) -> None:
        try:
            data = os.read(0, READ_SIZE)
        except BlockingIOError:
            return
        if not data:  # the lab closed the channel: stop everything and go
            self.open = False
            self.selector.unregister(0)
            for job in self.jobs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.pid, signal.SIGKILL)
            return
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            if line.strip():
                self._start(line)

    def _start(self, line: bytes) -> None:
        request: Any = None  # what the line holds, which may be anything
        try:
            request = json.loads(line)
            job = start(request["id"], parse([str(word) for word in request["argv"]]))
        except (ValueError, KeyError, TypeError) as exc:
            send({"id": request.get("id") if isinstance(request, dict) else None, "exit": CANNOT_RUN,
                  "stdout": "", "stderr": f"agent: a request it cannot read: {exc}\n"})
            return
        except OSError as exc:  # out of processes or files: the command could not start
            send({"id": request["id"], "exit": CANNOT_RUN, "stdout": "", "stderr": f"agent: {exc}\n"})
            return
        self.jobs[job.pidfd] = job
        self.selector.register(job.pidfd, selectors.EVENT_READ, "exit")
        for fd in job.pipes:
            self.selector.register(fd, selectors.EVENT_READ, job)

    def _read_output(self, fd: int, job: Job) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(fd)
            return
        kept = job.pipes[fd]
        kept += data[:max(0, OUTPUT_CAP - len(kept))]

    def _finish(self, job: Job) -> None:
        """The command exited: take what is left in its pipes (its background children may hold them) and report."""
        _, status = os.waitpid(job.pid, 0)
        self.selector.unregister(job.pidfd)
        os.close(job.pidfd)
        for fd in job.pipes:
            with contextlib.suppress(BlockingIOError, OSError):
                while chunk := os.read(fd, READ_SIZE):
                    job.pipes[fd] += chunk[:max(0, OUTPUT_CAP - len(job.pipes[fd]))]
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
            os.close(fd)
        if job.signalled:
            code = KILLED if job.signalled == signal.SIGKILL else TIMED_OUT
        else:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
        out, err = (bytes(kept).decode(errors="replace") for kept in job.pipes.values())
        send({"id": job.id, "exit": code, "stdout": out, "stderr": err})

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for job in self.jobs.values():
            if job.deadline is None or now < job.deadline:
                continue
            sig = signal.SIGKILL if job.signalled else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, sig)
            job.signalled = sig
            job.deadline = now + job.kill_after if sig == signal.SIGTERM else None


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m nodes.agent", description="Run commands on request: one JSON line in, one out, each way.",
        epilog='A request: {"id": 1, "argv": ["python3", "-m", "nodes.probe", "--to", "HOST:PORT"]}')


def main(argv: list[str] | None = None) -> int:
    parser().parse_args(argv)
    for name in PRELOADED:
        __import__(name)
    Agent().serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
