"""Socket addresses as people write them, and as the socket API wants them.

People write ``198.18.0.2:65432``, ``[fd50:c1ab:0:1::2]:65432``,
``[fe80::42:c6ff:fe12:2%eth0]:65432`` or ``localhost:65432``; the socket API
wants a family and a 2- or 4-tuple. Keeping both directions here means every
program parses and prints addresses the same way. And a name resolves to a
list of addresses: ``try_each`` is how every client goes down that list,
and notes what came of each address it tried.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nodes.outcomes import Outcome, classify

FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


@dataclass(frozen=True)
class Endpoint:
    """A host (name, address, or '' for any) and a port, still unresolved."""

    host: str
    port: int

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)


def parse_port(text: str | int) -> int:
    """Accept a port number 0-65535; refuse anything else with a clear reason."""
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"port {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return port


def parse_endpoint(text: str) -> Endpoint:
    """Split ``HOST:PORT``; IPv6 addresses go in brackets, ``:PORT`` means any."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r}: write IPv6 endpoints as [ADDRESS]:PORT")
        return Endpoint(host, parse_port(rest[1:]))
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    if ":" in host:
        raise ValueError(f"{text!r}: put IPv6 addresses in brackets, as [{host}]:{port}")
    return Endpoint(host, parse_port(port))


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_sockaddr(sockaddr: tuple | str | None) -> str | None:
    """Render what getsockname/getpeername returned, scope id included.

    An IPv6 socket address is a 4-tuple (host, port, flowinfo, scope_id); a
    link-local address means nothing without its scope, so it is shown the
    way it is written, ``fe80::1%eth0``.
    """
    if sockaddr is None or isinstance(sockaddr, str):
        return sockaddr or None
    host, port = sockaddr[0], sockaddr[1]
    if len(sockaddr) == 4 and sockaddr[3] and "%" not in host:
        try:
            host = f"{host}%{socket.if_indextoname(sockaddr[3])}"
        except OSError:  # the interface is gone; its index still identifies it
            host = f"{host}%{sockaddr[3]}"
    return join_host_port(host, port)


def resolve(
    endpoint: Endpoint,
    sock_type: int,
    family: int = socket.AF_UNSPEC,
    passive: bool = False,
) -> list[tuple[int, tuple]]:
    """Resolve an endpoint to (family, sockaddr) pairs, in getaddrinfo's order.

    An empty host means "any address": IPv4's 0.0.0.0 unless IPv6 is asked
    for, as in the classic tutorial's ``bind(('', port))``.
    """
    host: str | None = endpoint.host
    if host == "":
        family = family or socket.AF_INET
        host = None
        passive = True
    flags = socket.AI_PASSIVE if passive else 0
    infos = socket.getaddrinfo(host, endpoint.port, family, sock_type, 0, flags)
    return [(info[0], info[4]) for info in infos]


T = TypeVar("T")
Attempts = list[dict[str, Any]]
"""What a client tried, one address at a time: ``{"peer", "outcome", "errno", "detail", "elapsed_ms"}`` each."""


def try_each(addresses: Sequence[tuple[int, tuple]], attempt: Callable[[int, tuple], T], attempts: Attempts) -> T:
    """Return ``attempt(family, sockaddr)`` for the first of ``addresses`` it does not fail for, trying them in order.

    This is what ``socket.create_connection`` does, for the reason it
    does: a name often resolves to several addresses, IPv6 first, and a
    server may listen on only some of them (on IPv4 only, say). A client
    that used the first address alone would be refused by a server it
    could reach. ``attempt`` is the client's own first step with one
    address (socket(), connect(), ...), so that its socket calls stay in
    its own file; an ``OSError`` from it means that address failed, and
    the next one is tried. ``attempt`` closes whatever it opened for an
    address that failed. If every address fails, the last error is raised.

    Each call is noted in ``attempts``, with the keys the probe's attempts
    use: the address (``peer``), the outcome word (``ok``: the address was
    used, and what came of it is the client's result; or the failure's),
    errno name and words, and how long it took. Anything but an ``OSError``
    (a reply that breaks the protocol, say) is no reason to try another
    address: it goes straight through.
    """
    if not addresses:  # getaddrinfo raises rather than return nothing, but a caller may filter
        raise OSError("no address to connect to")
    for index, (family, sockaddr) in enumerate(addresses):
        note: dict[str, Any] = {"peer": format_sockaddr(sockaddr), "outcome": Outcome.OK.value, "errno": None,
                                "detail": None, "elapsed_ms": 0.0}
        attempts.append(note)
        started = time.perf_counter()
        try:
            return attempt(family, sockaddr)
        except OSError as exc:
            outcome, errno_name = classify(exc)
            note.update(outcome=outcome.value, errno=errno_name,
                        detail=exc.strerror or str(exc) or type(exc).__name__)
            if index == len(addresses) - 1:
                raise
        finally:
            note["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
    raise AssertionError("unreachable: the last address returned or raised")
