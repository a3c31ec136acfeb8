"""Bind a name as the standard library's servers do: asyncio binds every address, create_server one.

    python -m nodes.bindname serve --api asyncio --bind server --port 65432
    python -m nodes.bindname serve --api create_server --bind server --port 65433
    python -m nodes.bindname serve --api create_server --family ipv6 --bind :: --dualstack-ipv6 --port 65434
    python -m nodes.bindname client --to server:65432 --send "Hello, world"

A host name is a list of addresses, and what a server binds depends on the
API that binds it, not on the socket API underneath, which binds one socket
to one address:

- ``asyncio.start_server(handler, host=NAME, port=N)`` resolves the name
  (``getaddrinfo``, any family) and binds a socket to EVERY address it gets,
  each IPv6 one with ``IPV6_V6ONLY`` set; ``''`` means every interface
  (``0.0.0.0`` and ``::``, two sockets);
- ``socket.create_server((NAME, N), family=...)`` makes ONE socket of the
  family it is given (``AF_INET`` unless told otherwise) and binds it to the
  name's first address of that family. For ``AF_INET6`` it sets
  ``IPV6_V6ONLY`` explicitly: on (IPv6 only) by default, off with
  ``dualstack_ipv6=True``, so that either way the kernel's default
  (``net.ipv6.bindv6only``) does not matter. ``socket.has_dualstack_ipv6()``
  says whether such a socket can be made here.

The server logs each socket it listens on ("listening on tcp ADDR:PORT
(IPv6 only)"), then echoes every connection on any of them until the
client closes it. Its client connects as ``socket.create_connection``
does, trying each address of the name in turn, and sends one message.

Client result (one JSON object on stdout), keys:
  outcome         echoed (the message came back), closed (the server
                  closed first), or a failure word (refused, timeout,
                  unresolved, ...) of the last address tried
  errno, detail   errno name and words of a failure, or null
  target          the server as given with --to
  peer, local     the address connected to and the client's own (HOST:PORT)
  reply           what came back (at most 200 characters), or null
  elapsed_ms      from the first connect to the end
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
from typing import Any

from nodes import cli
from nodes.endpoints import Endpoint, format_sockaddr

BUFSIZE = 4096
IDLE_TIMEOUT = 10.0  # seconds a connection may stay silent before the server closes it
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
_REASONS = {
    errno.EADDRNOTAVAIL: "that address is not on this host",
    errno.EADDRINUSE: "another socket already uses that address and port",
    errno.EACCES: "ports below 1024 need privileges",
}


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def cannot_bind(where: Endpoint, exc: OSError) -> None:
    """Stop with the convention's one line (exit 2): which address, and why in plain words."""
    if isinstance(exc, socket.gaierror):
        cli.fail(f"cannot bind {where}: {exc.strerror}")
    cli.fail(f"cannot bind {where}: {_REASONS.get(exc.errno or 0, exc.strerror or str(exc))}")


def describe(sock: Any) -> str:
    """Where a listening socket is bound, and whether an IPv6 one takes IPv4 clients too."""
    where = format_sockaddr(sock.getsockname())
    if sock.family == socket.AF_INET6:
        v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        return f"tcp {where} ({'IPv6 only' if v6only else 'dual-stack'})"
    return f"tcp {where}"


# -- socket.create_server: one socket ---------------------------------------------------------------


def serve_create_server(args: argparse.Namespace, log: logging.Logger) -> None:
    """One socket, the name's first address of one family; then a blocking echo, a connection at a time."""
    try:
        listening = socket.create_server((args.bind, args.port), family=FAMILIES[args.family],
                                         dualstack_ipv6=args.dualstack_ipv6)
    except ValueError as exc:  # dualstack_ipv6 where it cannot be: an AF_INET socket, or no dual-stack here
        cli.fail(f"cannot bind {Endpoint(args.bind, args.port)}: {exc}")
    except OSError as exc:
        cannot_bind(Endpoint(args.bind, args.port), exc)
    with listening:
        log.info("socket.has_dualstack_ipv6() = %s", socket.has_dualstack_ipv6())
        log.info("listening on %s", describe(listening))
        log.info("1 socket for %r", args.bind)
        while True:
            conn, peer = cli.accept(listening, log)
            with conn:
                echo(conn, peer, log)


def echo(conn: socket.socket, peer: Any, log: logging.Logger) -> None:
    """Send back whatever comes, until the client closes (or stays silent too long)."""
    conn.settimeout(IDLE_TIMEOUT)
    echoed = 0
    try:
        while data := conn.recv(BUFSIZE):
            conn.sendall(data)
            echoed += len(data)
    except OSError as exc:
        log.warning("error %s: %s", format_sockaddr(peer), exc.strerror or exc)
        return
    log.info("echoed %d bytes to %s at %s", echoed, format_sockaddr(peer), format_sockaddr(conn.getsockname()))


# -- asyncio.start_server: a socket per address -----------------------------------------------------


async def serve_asyncio_until_stopped(args: argparse.Namespace, log: logging.Logger) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        echoed = 0
        try:
            while data := await asyncio.wait_for(reader.read(BUFSIZE), IDLE_TIMEOUT):
                writer.write(data)
                await writer.drain()
                echoed += len(data)
        except TimeoutError:
            log.warning("timed out %s: idle for %g s, closing", format_sockaddr(peer), IDLE_TIMEOUT)
        except OSError as exc:
            log.warning("error %s: %s", format_sockaddr(peer), exc.strerror or exc)
        else:
            log.info("echoed %d bytes to %s at %s", echoed, format_sockaddr(peer), format_sockaddr(local))
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host=args.bind, port=args.port)
    except OSError as exc:  # asyncio words it its own way; the errno is the kernel's
        cannot_bind(Endpoint(args.bind, args.port), exc)
    async with server:
        for sock in server.sockets:
            log.info("listening on %s", describe(sock))
        count = len(server.sockets)
        log.info("%d socket%s for %r", count, "" if count == 1 else "s", args.bind)
        await stop.wait()


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Bind a name (or an address) as the chosen API does, and echo.

    Bind as asyncio.start_server (every address of the name) or socket.create_server (one) does, and echo.
    """
    if args.api == "asyncio":
        asyncio.run(serve_asyncio_until_stopped(args, log))  # the loop takes the stop signals over
    else:
        serve_create_server(args, log)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Connect as socket.create_connection does, send one message and read it back.

    Connect as socket.create_connection does (each address of the name in turn), send, read the echo.
    """
    result: dict[str, Any] = {"outcome": "error", "errno": None, "detail": None, "target": str(args.to),
                              "peer": None, "local": None, "reply": None}
    data = args.send.encode()
    try:
        with socket.create_connection((args.to.host, args.to.port), timeout=args.timeout) as sock:
            result.update(cli.addresses(sock))
            sock.sendall(data)
            reply = b""
            while len(reply) < len(data) and (chunk := sock.recv(BUFSIZE)):
                reply += chunk
    except OSError as exc:
        return result | cli.failure(exc)
    result["reply"] = reply[:200].decode("utf-8", "replace")
    result["outcome"] = "echoed" if reply == data else "closed" if len(reply) < len(data) else "mismatch"
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("bindname", __doc__, serve, client, listen=False, send="text to send")
    s.add_argument("--api", choices=["create_server", "asyncio"], default="create_server",
                   help="bind as socket.create_server does (one socket) or as asyncio.start_server does "
                   "(a socket for every address of the name) (default: create_server)")
    s.add_argument("--bind", default="", metavar="NAME",
                   help="a host name, an address, or '' (create_server: every address of its family; "
                   "asyncio: 0.0.0.0 and ::) (default: '')")
    s.add_argument("--port", type=cli.port, default=65432, help="port to bind (default: 65432)")
    s.add_argument("--family", choices=sorted(FAMILIES), default="ipv4",
                   help="create_server: the socket's family, as its family= argument (default: ipv4, "
                   "create_server's AF_INET)")
    s.add_argument("--dualstack-ipv6", action="store_true",
                   help="create_server with --family ipv6: dualstack_ipv6=True, IPV6_V6ONLY set off "
                   "(default: set on)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
