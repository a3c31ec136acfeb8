"""What N connections amounted to, counted the same way by every many-connection client.

``multiconn`` (selectors), ``asyncecho`` (asyncio) and ``app`` (a request
per connection) open many connections in different ways but report the
same thing: how many were opened, completed or failed (by outcome, with
the errno of the first failure of each kind), the most open at once, the
bytes either way. ``client_result`` is the part of such a client around
its connections: resolve the server and choose its address once, run them,
say what they came to.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nodes.cli import failure, raise_fd_limit
from nodes.endpoints import Attempts, Endpoint, format_sockaddr, resolve, try_each
from nodes.outcomes import Outcome


@dataclass
class Tally:
    success: ClassVar[Outcome] = Outcome.ECHOED  # the outcome when every connection completed

    connections: int
    opened: int = 0
    completed: int = 0
    open_now: int = 0
    peak_open: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    why: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # outcome -> (errno, detail)

    def connected(self) -> None:
        self.opened += 1
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)

    def failed(self, outcome: str, errno_name: str | None = None, detail: str | None = None, count: int = 1) -> None:
        self.errors[outcome] += count
        self.why.setdefault(outcome, (errno_name, detail))

    def raised(self, exc: BaseException, count: int = 1) -> None:
        said = failure(exc)
        self.failed(said["outcome"], said["errno"], said["detail"], count)

    def verdict(self) -> dict[str, Any]:
        """``success`` if every connection completed, else the commonest failure, with its errno and detail."""
        if self.completed == self.connections:
            return {"outcome": self.success.value, "errno": None, "detail": None}
        outcome = self.errors.most_common(1)[0][0]
        errno_name, detail = self.why[outcome]
        return {"outcome": outcome, "errno": errno_name, "detail": detail}

    def summary(self, seconds_taken: float) -> dict[str, Any]:
        """The counts, as JSON keys."""
        return {
            "connections": self.connections, "opened": self.opened, "completed": self.completed,
            "failed": self.connections - self.completed, "peak_open": self.peak_open,
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received, "errors": dict(self.errors),
            "elapsed_ms": round(seconds_taken * 1000, 3),
        }


def client_result(
    to: Endpoint, tally: Tally, run: Callable[[int, tuple], object], *, timeout: float, **keys: Any
) -> dict[str, Any]:
    """The JSON result of a client whose ``run(family, sockaddr)`` counts its connections to ``to`` in ``tally``.

    The name is resolved once, not once per connection: a getaddrinfo for
    each of 10,000 connections would cost more than they do; and the
    address is chosen once (``choose_address``), so that 10,000 connections
    do not each try an address that refuses. If no address will do, every
    connection failed that way. The result is the verdict (outcome, errno,
    detail), then target, peer (the address used) and the ``attempts`` made
    to choose it, ``keys``, and the counts.
    """
    raise_fd_limit()  # each connection is a descriptor
    started = time.perf_counter()
    peer = None
    attempts: Attempts = []
    try:
        family, sockaddr = choose_address(to, timeout, attempts)
    except OSError as exc:
        tally.raised(exc, count=tally.connections)
    else:
        peer = format_sockaddr(sockaddr)
        run(family, sockaddr)
    seconds_taken = time.perf_counter() - started
    return (tally.verdict() | {"target": str(to), "peer": peer, "attempts": attempts} | keys
            | tally.summary(seconds_taken))


def choose_address(to: Endpoint, timeout: float, attempts: Attempts) -> tuple[int, tuple]:
    """The address every connection goes to: the only one ``to`` resolves to, or the first of several that accepts.

    With several (a name with an IPv6 and an IPv4 address, say), each is
    tried in turn with a connection of its own, which is closed as soon as
    it is established (the server sees a client that says nothing), and
    each try is noted in ``attempts``; that connection is not one of the
    connections counted. With one address (an IP address, as a scenario
    writes it) there is nothing to choose and no such connection is made:
    ``attempts`` stays empty, and the connections themselves say how that
    address answers.
    """
    addresses = resolve(to, socket.SOCK_STREAM)
    if len(addresses) == 1:
        return addresses[0]

    def accepts(family: int, sockaddr: tuple) -> tuple[int, tuple]:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        return family, sockaddr

    return try_each(addresses, accepts, attempts)
