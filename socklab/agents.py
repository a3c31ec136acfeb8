"""The lab's end of each host's resident agent (``nodes.agent``): one channel per host, every check over it.

A check made by a ``docker exec`` of its own pays for the engine starting
it and for Python starting and importing on the host, some 100-200 ms,
before any socket work. The agent is started once per host, as the lab
user, over an attached exec (``Backend.attach``); a request is one JSON
line with the very argv the exec would have run, and its answer is the
command's exit status and output, as an ``ExecResult``. Requests from many
threads share the channel; a reader thread hands each answer to whoever
asked.

An agent that cannot serve (it did not start, did not say it was ready in
time, its channel broke, or it did not answer within a command's own limit
and some slack) is *broken* for good, with the reason: ``AgentGone`` tells
the lab to make that command, and every later one on the host, by exec
(``socklab.lab``), and the lab notes which hosts did so and why.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from socklab.backend import Backend, Channel, ExecResult, HostHandle
from socklab.constants import LAB_USER

AGENT_ARGV = ("python3", "-m", "nodes.agent")
AGENT_ENV = "SOCKLAB_AGENT"  # "off": every command by exec (to compare, or to rule the agent out)
READY_WAIT = 30.0  # s an agent may take to start (a loaded machine); beyond it the host's checks go by exec
SLACK = 15.0  # s beyond a command's own limit before its answer is given up on
FELL_BACK = "checks went by `docker exec` from then on, as its agent stopped serving"  # a lab's note, after the host


class AgentGone(Exception):
    """The host's agent cannot serve this command (nor any later one): make it by exec. Says why."""


def enabled() -> bool:
    """Whether labs start agents: unless ``$SOCKLAB_AGENT`` is ``off``."""
    return os.environ.get(AGENT_ENV, "").strip().lower() != "off"


class HostAgent:
    """One host's agent: send requests, wait for their answers; ``broken`` says why it no longer serves."""

    def __init__(self, host: str, channel: Channel) -> None:
        self.host = host
        self.broken = ""
        self._channel = channel
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[ExecResult]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        threading.Thread(target=self._read, name=f"agent-{host}", daemon=True).start()

    @classmethod
    def start(cls, backend: Backend, handle: HostHandle) -> HostAgent:
        """Start the agent on a host, as the lab user; it says it is ready on its own, meanwhile nothing waits."""
        return cls(handle.host, backend.attach(handle, AGENT_ARGV, user=LAB_USER))

    def run(self, argv: Sequence[str], limit: float) -> ExecResult:
        """Run ``argv`` on the host through the agent and wait for its end; ``AgentGone`` if it cannot."""
        if not self._ready.wait(READY_WAIT):
            self._break(f"it did not start within {READY_WAIT:g} s")
        future: Future[ExecResult] = Future()
        with self._lock:
            if self.broken:
                raise AgentGone(self.broken)
            request_id = next(self._ids)
            self._waiting[request_id] = future
        try:
            self._channel.send((json.dumps({"id": request_id, "argv": list(argv)}) + "\n").encode())
        except OSError as exc:
            self._break(f"its channel broke ({exc})")
        try:
            return future.result(timeout=limit + SLACK)
        except FutureTimeout:
            self._break(f"it did not answer within {limit + SLACK:g} s")
            raise AgentGone(self.broken) from None

    def close(self) -> None:
        """End the agent's input: it stops what it still runs and exits (the lab is going)."""
        self._break("the lab closed it")
        self._channel.close()

    def _read(self) -> None:
        why = "its channel ended"
        pending = b""
        try:
            for chunk in self._channel.receive():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._deliver(json.loads(line))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = f"its channel broke ({exc})"
        said = getattr(self._channel, "said", b"").decode(errors="replace").strip()
        self._break(f"{why}{': ' + said[-300:] if said else ''}")

    def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("agent") == "ready":
            self._ready.set()
            return
        with self._lock:
            future = self._waiting.pop(message["id"], None)
        if future is not None:
            future.set_result(ExecResult(int(message["exit"]), message["stdout"], message["stderr"]))

    def _break(self, why: str) -> None:
        """From now on the agent serves nothing; whoever waits is told why (and makes their command by exec)."""
        with self._lock:
            self.broken = self.broken or why
            waiting, self._waiting = list(self._waiting.values()), {}
        self._ready.set()
        for future in waiting:
            future.set_exception(AgentGone(self.broken))
