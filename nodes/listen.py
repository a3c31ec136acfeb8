"""Open a listening socket exactly where the user said, and nowhere else.

The lessons turn on where a server binds (``''``, ``0.0.0.0``, ``::``,
``127.0.0.1``, ``::1``, a LAN address, a name, a link-local address with its
scope), so this never substitutes a "better" address: it resolves what it was
given, binds the first result, and reports what it really bound.
"""

from __future__ import annotations

import errno
import socket

from nodes.endpoints import Endpoint, format_sockaddr, resolve


class BindError(OSError):
    """The socket could not be bound: the errno is kept, the strerror is plain words."""


_REASONS = {
    errno.EADDRNOTAVAIL: "that address is not on this host",
    errno.EADDRINUSE: "another socket already uses that address and port",
    errno.EACCES: "ports below 1024 need privileges",
}


def open_listener(
    endpoint: Endpoint,
    sock_type: int = socket.SOCK_STREAM,
    *,
    v6only: bool | None = None,
    reuse_addr: bool = True,
    backlog: int | None = None,
) -> socket.socket:
    """Return a bound socket (listening, for TCP).

    Raises ``socket.gaierror`` if a name does not resolve and ``BindError``
    if the kernel refuses the address.

    ``v6only`` only matters for IPv6 sockets: True accepts IPv6 only, False
    also accepts IPv4 clients as ``::ffff:a.b.c.d``, None keeps the kernel's
    default (``net.ipv6.bindv6only``).
    """
    family, sockaddr = resolve(endpoint, sock_type, passive=True)[0]
    sock = socket.socket(family, sock_type)
    try:
        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(sockaddr)
        if sock_type == socket.SOCK_STREAM:
            sock.listen(socket.SOMAXCONN if backlog is None else backlog)
    except OSError as exc:
        sock.close()
        reason = _REASONS.get(exc.errno or 0, exc.strerror)
        raise BindError(exc.errno, f"cannot bind {format_sockaddr(sockaddr)}: {reason}") from None
    return sock


def describe(sock: socket.socket) -> str:
    """Say where a socket listens, including whether IPv4 clients can reach ``::``."""
    where = format_sockaddr(sock.getsockname())
    kind = "tcp" if sock.type == socket.SOCK_STREAM else "udp"
    if sock.family == socket.AF_INET6:
        v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        return f"{kind} {where} ({'IPv6 only' if v6only else 'dual-stack'})"
    return f"{kind} {where}"
