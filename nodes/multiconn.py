"""Many clients at once on one thread: a ``selectors`` echo server, and a client opening N connections.

    python -m nodes.multiconn serve --bind 0.0.0.0 --port 65432
    python -m nodes.multiconn client --to 198.18.0.2:65432 --connections 10000

Instead of blocking in ``recv`` for one client, the server asks the kernel
(epoll, kqueue ...) which sockets are ready and does only what will not
block: accept those waiting, read what arrived, write what the socket
buffer takes. No thread per connection, so 10,000 connections cost 10,000
small objects, not 10,000 stacks. Each connection keeps what it still owes
its client; when that backlog grows past a cap the server stops reading
from that client until it catches up, so a client that sends but never
reads cannot make the server's memory grow.

The client does the same from the other side: it starts N non-blocking
connects at once, sends every message on each connection as soon as it is
up (or, with ``--hold``, once all are up), and closes each one when all its
bytes came back.

Client result (one JSON object on stdout), keys:
  outcome         echoed when every connection got its bytes back; otherwise
                  the most frequent failure (mismatch, closed, refused,
                  timeout, reset, ...)
  errno, detail   errno name and words of that most frequent failure, or null
  target, peer    the server as given, and the address every connection went to
  attempts        when the name resolved to several addresses: how that one
                  was chosen, before the N connections, with a connection to
                  each in turn until one was accepted (then closed at once,
                  not counted), as [{"peer", "outcome", "errno", "detail",
                  "elapsed_ms"}, ...]; [] with one address (an IP address)
  connections     connections asked for
  messages        messages sent on each connection
  opened          connections that were established
  completed       connections whose whole echo came back unchanged
  failed          connections that did not complete
  peak_open       the most connections open at the same moment
  bytes_sent, bytes_received
  errors          {outcome: count} for the connections that failed
  elapsed_ms      first connect to last close, in milliseconds
"""

from __future__ import annotations

import argparse
import logging
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from nodes import cli
from nodes.conversations import Conversation, Load
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome
from nodes.tally import Tally, client_result

BUFSIZE = 65536
MAX_OWED = 1 << 20  # bytes a connection may owe its client before the server stops reading from it
ACCEPT_BATCH = 256  # accepts per readiness event, so connected clients get their turn too
SWEEP_SECONDS = 1.0  # how often idle connections are looked for
DEFAULT_MESSAGES = ["Message 1 from client.", "Message 2 from client."]
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


@dataclass(slots=True, eq=False)
class Connection:
    """The server's side of one client: what it still owes, and since when it is quiet."""

    sock: socket.socket
    peer: str
    last_active: float
    events: int = READ
    owed: bytearray = field(default_factory=bytearray)
    eof: bool = False
    echoed: int = 0


class EchoServer:
    """One thread, one selector, every client."""

    def __init__(self, listening: socket.socket, log: logging.Logger, *, idle_timeout: float, quiet: bool) -> None:
        self.log = log
        self.idle_timeout = idle_timeout
        self.quiet = quiet
        self.connections: set[Connection] = set()
        self.selector = selectors.DefaultSelector()
        self.acceptor = cli.Acceptor(listening, self.selector, log, batch=ACCEPT_BATCH)  # its key's data: None

    def serve_forever(self) -> None:
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while True:
            for key, mask in self.selector.select(SWEEP_SECONDS):
                if key.data is None:
                    self.accept()
                else:
                    self.service(key.data, mask)
            now = time.monotonic()
            self.acceptor.resume_if_due(now)
            if now >= next_sweep:
                self.close_idle(now)
                next_sweep = now + SWEEP_SECONDS

    def accept(self) -> None:
        for sock, address in self.acceptor.accept():  # listening.accept() while clients wait: see nodes.cli
            sock.setblocking(False)
            conn = Connection(sock, format_sockaddr(address) or "?", time.monotonic())
            self.selector.register(sock, READ, conn)
            self.connections.add(conn)
            if not self.quiet:
                self.log.info("accepted %s", conn.peer)

    def service(self, conn: Connection, mask: int) -> None:
        """Read what arrived, send what is owed: whatever does not block, nothing more."""
        try:
            if mask & READ:
                data = conn.sock.recv(BUFSIZE)
                if data:
                    conn.owed += data
                else:
                    conn.eof = True  # the client is done sending; finish echoing, then close
            if conn.owed:
                sent = conn.sock.send(conn.owed)
                del conn.owed[:sent]
                conn.echoed += sent
        except BlockingIOError:
            pass
        except OSError as exc:
            self.close(conn, exc.strerror or str(exc))
            return
        conn.last_active = time.monotonic()
        if conn.eof and not conn.owed:
            self.close(conn)
            return
        events = (READ if not conn.eof and len(conn.owed) < MAX_OWED else 0) | (WRITE if conn.owed else 0)
        if events != conn.events:
            self.selector.modify(conn.sock, events, conn)
            conn.events = events

    def close(self, conn: Connection, problem: str | None = None) -> None:
        self.selector.unregister(conn.sock)
        self.connections.discard(conn)
        conn.sock.close()
        if problem:
            self.log.warning("error %s: %s (%d bytes echoed)", conn.peer, problem, conn.echoed)
        elif not self.quiet:
            self.log.info("closed %s (%d bytes echoed)", conn.peer, conn.echoed)
        self.acceptor.freed()  # if accepting is paused: there is a descriptor for another connection now

    def close_idle(self, now: float) -> None:
        for conn in [c for c in self.connections if now - c.last_active > self.idle_timeout]:
            self.close(conn, f"timed out: idle for {self.idle_timeout:g} s")

    def shutdown(self) -> None:
        for conn in list(self.connections):
            conn.sock.close()
        self.selector.close()


class Echo(Conversation):
    """The client's side of one connection: connect, send every message, receive the echo back, done."""

    load: Echoes

    def __init__(self, load: Echoes) -> None:
        super().__init__(load)
        self.pending = memoryview(load.payload)
        self.received = bytearray()
        self.connected = False
        self.held = False  # established, silent until the hold is released

    def connect(self) -> bool:
        if not super().connect():
            return False
        self.watch(READ | WRITE)
        return True

    def ready(self, mask: int) -> None:
        try:
            if not self.connected:
                self.established()
                if self.held:
                    return
            if self.pending and not self.held:
                self.send()
            if mask & READ:
                self.receive()
        except BlockingIOError:
            pass
        except OSError as exc:
            self.raised(exc)

    def established(self) -> None:
        """The handshake is over: it failed (SO_ERROR says why), or the connection is open."""
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
        self.connected = True
        self.load.tally.connected()
        hold = self.load.hold
        if hold:
            hold.settle()
            if not hold.released:
                self.held = True
                hold.waiting[self] = None
                self.watch(READ)  # only to notice a server closing

    def send(self) -> None:
        sent = self.sock.send(self.pending)
        self.pending = self.pending[sent:]
        self.load.tally.bytes_sent += sent
        if not self.pending:
            self.watch(READ)

    def receive(self) -> None:
        data = self.sock.recv(BUFSIZE)
        self.load.tally.bytes_received += len(data)
        self.received += data
        payload = self.load.payload
        if not data:
            self.done(Outcome.CLOSED.value)
        elif self.received != payload[: len(self.received)]:
            self.done(Outcome.MISMATCH.value)
        elif len(self.received) == len(payload):
            self.done(Outcome.ECHOED.value)

    def done(self, outcome: str, detail: str | None = None, errno_name: str | None = None) -> None:
        hold, counts = self.load.hold, self.load.tally
        if hold:
            if not self.connected:
                hold.settle()
            hold.waiting.pop(self, None)
        super().done(outcome, detail, errno_name)
        counts.open_now -= self.connected
        if outcome == Outcome.ECHOED.value:
            counts.completed += 1
        else:
            counts.failed(outcome, errno_name, detail)


@dataclass
class Hold:
    """Keeps established connections silent until all of them have settled, and ``seconds`` more.

    A connection settles when it is established or fails to be. Holding
    them makes every connection open at the same moment, which is what a
    test of how many a server holds wants to see.
    """

    seconds: float
    unsettled: int
    release_at: float | None = None
    waiting: dict[Echo, None] = field(default_factory=dict)

    def settle(self) -> None:
        self.unsettled -= 1
        if self.unsettled == 0:
            self.release_at = time.monotonic() + self.seconds

    @property
    def released(self) -> bool:
        return self.release_at is not None and time.monotonic() >= self.release_at


class Echoes(Load):
    """N connections opened at once, each echoing the same bytes; with a ``Hold``, all open before any echo."""

    conversation_class = Echo

    def __init__(self, family: int, sockaddr: tuple, payload: bytes, counts: Tally, *, timeout: float,
                 connections: int, hold_seconds: float | None) -> None:
        super().__init__(family, sockaddr, timeout=timeout, concurrency=connections)
        self.payload, self.tally = payload, counts
        self.hold = Hold(hold_seconds, connections) if hold_seconds is not None else None

    def service_actions(self) -> None:
        hold = self.hold
        if hold and hold.waiting and hold.released:
            for echo in hold.waiting:
                echo.held = False
                echo.watch(READ | WRITE)
            hold.waiting.clear()

    def wait(self, timeout: float) -> float:
        """Not past the release of the hold, while anyone waits for it."""
        hold = self.hold
        if hold and hold.waiting and hold.release_at is not None:
            return max(0.0, min(timeout, hold.release_at - time.monotonic()))
        return timeout


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Open N connections at once and echo messages on each.

    Open N non-blocking connections, send the messages on each, close each once its echo is complete.
    """
    payload = "".join(args.messages).encode()
    counts = Tally(connections=args.connections)

    def connections(family: int, sockaddr: tuple) -> None:
        Echoes(family, sockaddr, payload, counts, timeout=args.timeout, connections=args.connections,
               hold_seconds=args.hold).run(args.connections)

    return client_result(args.to, counts, connections, timeout=args.timeout, messages=len(args.messages))


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo for many clients at once, on one thread.

    Non-blocking selectors echo server.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as listening:
        cli.raise_fd_limit(log)
        server = EchoServer(listening, log, idle_timeout=args.timeout, quiet=args.quiet)
        try:
            server.serve_forever()
        finally:
            server.shutdown()


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("multiconn", __doc__, serve, client, client_timeout=10.0)
    s.add_argument("--timeout", type=cli.seconds, default=60.0, metavar="S",
                   help="close a connection that is idle for S seconds (default: 60)")
    cli.add_quiet_argument(s)
    c.add_argument("--connections", type=cli.positive_int, default=2, metavar="N",
                   help="connections to open at once (default: 2)")
    c.add_argument("--messages", nargs="+", default=DEFAULT_MESSAGES, metavar="TEXT",
                   help="messages sent, in order, on every connection (default: %(default)s)")
    c.add_argument("--hold", type=cli.non_negative_seconds, metavar="S",
                   help="keep each connection silent until all are open, then S seconds more, so that they are "
                   "all open together (count S in --timeout)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
