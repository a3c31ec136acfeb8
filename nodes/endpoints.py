"""Socket addresses as people write them, and as the socket API wants them.

People write ``198.18.0.2:65432``, ``[fd50:c1ab:0:1::2]:65432``,
``[fe80::42:c6ff:fe12:2%eth0]:65432`` or ``localhost:65432``; the socket API
wants a family and a 2- or 4-tuple. Keeping both directions here means every
program parses and prints addresses the same way.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

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
