"""Helpers for testing the node programs: run them as the lab does, as subprocesses, and clean up.

Servers start with ``--port 0`` (or a path) and are ready when they log
"listening on ...", which also tells the port the kernel chose: no fixed
sleeps and no port races. Each server runs in its own session so that
teardown can kill it together with any process it forked, whatever the
test did; its stderr goes to a file, so a chatty server never blocks on a
full pipe and a failing test can show the log.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `import nodes` whatever pytest's rootdir and import mode
    sys.path.insert(0, str(REPO))

LISTENING = re.compile(r"listening on (?:tcp|udp|unix) (\S+)")
READY_TIMEOUT = 15.0
MAIN_GUARD = 'if __name__ == "__main__":'  # how the orchestrator tells a program from a helper module


def programs() -> list[str]:
    """Every module of nodes/ that runs as a program: it has a ``__main__`` guard."""
    return sorted(path.stem for path in (REPO / "nodes").glob("*.py") if MAIN_GUARD in path.read_text())


def subcommands(program: str) -> dict[str, argparse.ArgumentParser]:
    """A program's subcommand parsers by name (serve, client), or none for a program without subcommands."""
    parser = importlib.import_module(f"nodes.{program}").parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(program: str, command: str) -> set[str]:
    """The option strings a program's subcommand takes (none if it has no such subcommand)."""
    sub = subcommands(program).get(command)
    return {flag for action in sub._actions for flag in action.option_strings} if sub else set()


def inet_servers() -> list[str]:
    """The programs whose server binds an address and a port (``serve --bind ADDR --port N``)."""
    return [p for p in programs() if {"--bind", "--port"} <= options(p, "serve")]


def variants(program: str) -> list[tuple[str, ...]]:
    """The ways a program's server can be started: one per ``--proto`` or ``--kind`` it offers, else just one."""
    serve = subcommands(program)["serve"]
    for action in serve._actions:
        if action.dest in ("proto", "kind") and action.choices:
            return [(action.option_strings[0], str(choice)) for choice in action.choices]
    return [()]


def inet_clients() -> list[str]:
    """The programs whose client talks to ``--to HOST:PORT``."""
    return [p for p in programs() if "--to" in options(p, "client")]


def node_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"nodes.{module}", *args]


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def asleep(pid: int) -> bool:
    """Whether the process's main thread is blocked in a system call (state S): waiting for clients.

    A server logs "listening" as soon as its socket is bound, and may still
    be setting up (an event loop, a selector, a pipe) before it waits: its
    descriptors are only counted once it sleeps.
    """
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of a process (from /proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread may end while we look
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.01, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; return its value, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Server:
    """A node server running in a subprocess."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    where: str = ""  # what it logged as its address: 127.0.0.1:PORT, [::]:PORT or a path
    idle_fds: int = 0  # descriptors open once it waits for its first client

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.where.rpartition(":")[2])

    def endpoint(self, host: str = "127.0.0.1") -> str:
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        compiled = re.compile(pattern)
        return wait_until(lambda: compiled.search(self.log()), timeout, what=f"log line /{pattern}/\n{self.log()}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server (only its own pid) and return its exit status; the timeout only catches a hang."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout)


@dataclass
class Lab:
    """Starts node programs and guarantees they are gone afterwards."""

    directory: Path
    servers: list[Server] = field(default_factory=list)

    def start(self, module: str, *args: str, ready: bool = True, max_fds: int | None = None) -> Server:
        """Start ``python -m nodes.MODULE serve ARGS``; ``max_fds`` caps its descriptors (hard limit)."""
        log_path = self.directory / f"{module}-{len(self.servers)}.log"

        limits = (max_fds, max_fds) if max_fds is not None else None

        def limit() -> None:  # runs in the child between fork and exec: keep it tiny
            if limits is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, limits)

        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                node_command(module, "serve", *args), cwd=REPO, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                preexec_fn=limit if max_fds is not None else None,  # noqa: PLW1509 - no threads run yet
            )
        server = Server(proc, log_path)
        self.servers.append(server)
        if ready:
            def listening() -> re.Match[str] | None:
                if proc.poll() is not None:
                    raise AssertionError(f"{module} exited with {proc.returncode}:\n{server.log()}")
                return LISTENING.search(server.log())

            server.where = wait_until(listening, READY_TIMEOUT, what=f"{module} to listen").group(1)
            wait_until(lambda: asleep(proc.pid), READY_TIMEOUT, what=f"{module} to wait for clients")
            server.idle_fds = open_fds(proc.pid)
        return server

    def run(self, module: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(node_command(module, *args), cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)

    def client(self, module: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run a client as a subprocess: exit 0 and exactly one JSON line on stdout, or fail."""
        done = self.run(module, "client", *args, timeout=timeout)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr}"
        lines = done.stdout.splitlines()
        assert len(lines) == 1, f"expected one JSON line, got:\n{done.stdout}"
        return json.loads(lines[0])

    def cleanup(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait(10)
            else:  # the leader is gone; anything it forked is still in its group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(server.proc.pid, signal.SIGKILL)


def call_client(module: str, *args: str) -> dict[str, Any]:
    """Run a client in this process (no interpreter start-up): its one JSON line, parsed.

    For the cases where what is tested is the client's logic; every client
    also runs as a subprocess somewhere in the suite.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = importlib.import_module(f"nodes.{module}").main(["client", *args])
    assert code == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    return json.loads(lines[0])
