"""The closed vocabulary of outcomes: what a client attempt can observe.

Scenarios write their expectations in these words and every client program
reports in them, so the lab compares like with like and never guesses: an
outcome is derived from what the socket API really returned or raised.
This module is the single source of truth; the orchestrator imports it to
validate scenario files.
"""

from __future__ import annotations

import errno
import socket
from enum import StrEnum


class Outcome(StrEnum):
    """Everything a client attempt can end in."""

    ECHOED = "echoed"  # the bytes sent came back unchanged
    OK = "ok"  # the attempt succeeded (connected, answered as expected)
    MISMATCH = "mismatch"  # an answer came back, but not the expected one
    CLOSED = "closed"  # the peer closed cleanly (EOF) before answering fully
    REFUSED = "refused"  # ECONNREFUSED: nobody listens there (TCP RST, ICMP port unreachable)
    TIMEOUT = "timeout"  # no answer in time: dropped, filtered or ignored
    RESET = "reset"  # ECONNRESET: the peer aborted the connection
    BROKEN_PIPE = "broken-pipe"  # EPIPE: writing to a connection the peer shut down
    HOST_UNREACHABLE = "host-unreachable"  # EHOSTUNREACH: no neighbour answers, or ICMP host unreachable
    NET_UNREACHABLE = "net-unreachable"  # ENETUNREACH: no route to that network
    ADDR_UNAVAILABLE = "addr-unavailable"  # EADDRNOTAVAIL: the local address is not on this host
    ADDR_IN_USE = "addr-in-use"  # EADDRINUSE: the local address and port are taken
    DENIED = "denied"  # EACCES/EPERM: local policy forbade it (firewall OUTPUT rule, privileged port)
    UNRESOLVED = "unresolved"  # getaddrinfo found no address for the name
    ERROR = "error"  # any other OS error; the errno name tells which


_BY_ERRNO: dict[int, Outcome] = {
    errno.ECONNREFUSED: Outcome.REFUSED,
    errno.ETIMEDOUT: Outcome.TIMEOUT,
    errno.ECONNRESET: Outcome.RESET,
    errno.ECONNABORTED: Outcome.RESET,
    errno.EPIPE: Outcome.BROKEN_PIPE,
    errno.EHOSTUNREACH: Outcome.HOST_UNREACHABLE,
    errno.EHOSTDOWN: Outcome.HOST_UNREACHABLE,
    errno.ENETUNREACH: Outcome.NET_UNREACHABLE,
    errno.ENETDOWN: Outcome.NET_UNREACHABLE,
    errno.EADDRNOTAVAIL: Outcome.ADDR_UNAVAILABLE,
    errno.EADDRINUSE: Outcome.ADDR_IN_USE,
    errno.EACCES: Outcome.DENIED,
    errno.EPERM: Outcome.DENIED,
}

_EAI_NAMES: dict[int, str] = {
    getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")
}


def classify(exc: BaseException) -> tuple[Outcome, str | None]:
    """Map an exception raised by a socket call to (outcome, errno name).

    Timeouts are checked first: ``socket.timeout`` is an ``OSError`` whose
    errno is None, and a kernel ETIMEDOUT (retransmissions exhausted) means
    the same thing to the client.
    """
    if isinstance(exc, socket.gaierror):
        return Outcome.UNRESOLVED, _EAI_NAMES.get(exc.errno or 0, "EAI_UNKNOWN")
    if isinstance(exc, TimeoutError) and exc.errno is None:
        return Outcome.TIMEOUT, None
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return _BY_ERRNO.get(exc.errno, Outcome.ERROR), name
    return Outcome.ERROR, None
