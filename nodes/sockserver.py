"""Echo servers built from the standard library's ``socketserver``: threads or processes per client.

    python -m nodes.sockserver serve --kind threading-tcp --bind 0.0.0.0 --port 65432
    python -m nodes.sockserver serve --kind forking-tcp --bind :: --dual-stack
    python -m nodes.sockserver serve --kind threading-udp --bind ::1
    python -m nodes.sockserver client --proto udp --to [::1]:65432

``socketserver`` separates what a server does with a request (a handler
class) from how requests are run (a mix-in): ``ThreadingMixIn`` gives each
TCP connection, or each UDP datagram, its own thread; ``ForkingMixIn`` gives
each connection its own process (at most 40 at a time: the 41st waits until
one ends). The echo is the same code under every kind.

The server socket is opened by ``nodes.cli.listener`` and handed to
``socketserver`` in place of its own, so every kind binds exactly where
told, in the address family of the bind address, with ``--v6only`` or
``--dual-stack`` honoured.

The client is ``nodes.echo``'s (TCP) or ``nodes.udpecho``'s (UDP), and so is
its JSON result: see those modules.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import socketserver
import sys
from typing import Any

from nodes import cli, echo, udpecho
from nodes.endpoints import format_sockaddr

CHILD_GRACE = 2.0  # seconds a forked child has to end after SIGTERM before it is killed


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


class Configured:
    """What every kind shares: its log, the idle limit per client, one-line errors, quick shutdown."""

    log: logging.Logger
    client_timeout: float
    quiet: bool
    socket_type: int
    block_on_close = False  # forking: serve() ends the children itself
    max_packet_size = udpecho.MAX_DATAGRAM  # socketserver's default (8192) would truncate datagrams

    def get_request(self) -> tuple[Any, Any]:
        """socketserver's accept() (recvfrom() for UDP), which it retries at once when it fails.

        Out of descriptors, the listener stays ready and no accept succeeds:
        ``nodes.cli.accept_failed`` logs it and pauses, so the retry does not spin.
        """
        try:
            return super().get_request()  # type: ignore[misc]  # a mix-in: the server class has it
        except OSError as exc:
            if self.socket_type == socket.SOCK_STREAM:
                cli.accept_failed(exc, self.log)
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line with the peer, instead of socketserver's traceback."""
        self.log.warning("error %s: %r", format_sockaddr(client_address), sys.exc_info()[1])

    def service_actions(self) -> None:
        """Between polls (every 0.5 s): stop, if a stop signal came whose KeyboardInterrupt was swallowed."""
        super().service_actions()  # type: ignore[misc]  # a mix-in: the server class has it
        if cli.stop_requested():
            raise KeyboardInterrupt


class StoppableThreads:
    """For the threading kinds: handler threads that stop signals never reach, and that a stop ends.

    Handler threads start with the stop signals blocked (see ``nodes.cli``).
    They are not daemon threads, which can hang the interpreter's exit (see
    ``nodes.cli.Handlers``): at a stop, every open connection is shut down,
    which ends its handler, and ``server_close`` waits for them all.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):  # TCP; a UDP request is a datagram and the shared socket
            self.open_connections.add(request)
        with cli.stop_signals_blocked():
            super().process_request(request, client_address)  # type: ignore[misc]  # a mix-in: the server class has it

    def shutdown_request(self, request: Any) -> None:
        self.open_connections.discard(request)
        super().shutdown_request(request)  # type: ignore[misc]  # a mix-in: the server class has it

    def server_close(self) -> None:
        for conn in list(self.open_connections):
            cli.shut(conn)
        super().server_close()  # type: ignore[misc]  # a mix-in: the server class has it


class ThreadingTCP(StoppableThreads, Configured, socketserver.ThreadingTCPServer):
    pass


class ForkingTCP(Configured, socketserver.ForkingTCPServer):
    """Forks with the stop signals blocked, so that a stop never falls between a fork and the parent noting its child.

    Unblocked, a SIGTERM arriving mid-fork raises inside the interpreter's
    at-fork hooks, which swallow it, or just before the child is recorded,
    which leaves that child serving on after the server stopped.
    """

    def process_request(self, request: Any, client_address: Any) -> None:
        with cli.stop_signals_blocked():
            super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the child: let the stop signals end it outright (the parent ends its children with SIGTERM).

        A child has nothing to tidy that the kernel does not do at exit: its
        one connection is closed (FIN to the client). The signals' default
        action is also the one no interpreter race can lose: about 1 child in
        50 here took its SIGTERM without Python ever calling the handler
        (CPython issue 98140) and served on.
        """
        for signum in cli.STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, cli.STOP_SIGNALS)
        super().finish_request(request, client_address)


class ThreadingUDP(StoppableThreads, Configured, socketserver.ThreadingUDPServer):
    pass


class TCPEcho(socketserver.BaseRequestHandler):
    """Echo one connection until the client closes or idles too long."""

    server: ThreadingTCP | ForkingTCP

    def handle(self) -> None:
        log, peer = self.server.log, format_sockaddr(self.client_address)
        log.info("accepted %s", peer)
        self.request.settimeout(self.server.client_timeout)
        try:
            echoed = echo.echo_until_eof(self.request)
        except TimeoutError:
            log.warning("timed out %s: idle for %g s, closing", peer, self.server.client_timeout)
        except OSError as exc:
            log.warning("error %s: %s", peer, exc.strerror or exc)
        else:
            log.info("closed %s (%d bytes echoed)", peer, echoed)


class UDPEcho(socketserver.BaseRequestHandler):
    """Echo one datagram to its sender."""

    server: ThreadingUDP

    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)
        if not self.server.quiet:
            self.server.log.info("echoed %d bytes to %s", len(data), format_sockaddr(self.client_address))


# The server classes, each a socketserver.TCPServer (UDPServer derives from it), the handler, the socket type.
KINDS: dict[str, tuple[type[socketserver.TCPServer], type[socketserver.BaseRequestHandler], int]] = {
    "threading-tcp": (ThreadingTCP, TCPEcho, socket.SOCK_STREAM),
    "forking-tcp": (ForkingTCP, TCPEcho, socket.SOCK_STREAM),
    "threading-udp": (ThreadingUDP, UDPEcho, socket.SOCK_DGRAM),
}


def build(kind: str, listening: socket.socket, log: logging.Logger, client_timeout: float, quiet: bool) -> Any:
    """A socketserver of that kind, serving on our socket instead of one it binds itself."""
    server_class, handler, _ = KINDS[kind]
    server: Any = server_class(("", 0), handler, bind_and_activate=False)
    server.socket.close()
    server.socket, server.address_family = listening, listening.family
    server.server_address = listening.getsockname()
    server.log, server.client_timeout, server.quiet = log, client_timeout, quiet
    return server


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Run a socketserver echo server.

    socketserver echo server: threading or forking, TCP or UDP.
    """
    server = build(args.kind, cli.listener(args, KINDS[args.kind][2], log), log, args.timeout, args.quiet)
    try:
        server.serve_forever()
    finally:
        cli.end_processes(set(getattr(server, "active_children", None) or ()), log, "child processes", CHILD_GRACE)
        server.server_close()


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send text, check the echo (the echo or udpecho client).

    Echo client for any kind: TCP (nodes.echo) or UDP (nodes.udpecho).
    """
    if args.proto == "tcp":
        return echo.client(args)
    args.count, args.interval, args.size = None, 0.0, 0
    return udpecho.client(args)


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("sockserver", __doc__, serve, client, send="text to send",
                              log_name=lambda args: f"sockserver.{args.kind}")
    s.add_argument("--kind", choices=sorted(KINDS), default="threading-tcp",
                   help="threading-tcp: a thread per connection; forking-tcp: a process per connection; "
                   "threading-udp: a thread per datagram (default: threading-tcp)")
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="TCP: close a client that sends nothing for S seconds (default: 30)")
    cli.add_quiet_argument(s)
    c.add_argument("--proto", choices=["tcp", "udp"], default="tcp", help="transport (default: tcp)")
    c.add_argument("--connected", action="store_true", help="UDP: connect() first, so ICMP errors are reported")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
