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
  target, peer    the server as given, and the address connected to
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
import errno
import logging
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from nodes.cli import (
    OUT_OF_DESCRIPTORS,
    add_client_arguments,
    add_listen_arguments,
    add_quiet_argument,
    elapsed_ms,
    listener,
    non_negative_seconds,
    positive_int,
    print_result,
    raise_fd_limit,
    seconds,
    setup_logging,
    stop_on_signals,
)
from nodes.endpoints import format_sockaddr, resolve
from nodes.outcomes import Outcome
from nodes.tally import Tally

BUFSIZE = 65536
MAX_OWED = 1 << 20  # bytes a connection may owe its client before the server stops reading from it
ACCEPT_BATCH = 256  # accepts per readiness event, so connected clients get their turn too
SWEEP_SECONDS = 1.0  # how often idle connections are looked for
DEFAULT_MESSAGES = ["Message 1 from client.", "Message 2 from client."]
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


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
        self.listening = listening
        self.log = log
        self.idle_timeout = idle_timeout
        self.quiet = quiet
        self.connections: set[Connection] = set()
        self.selector = selectors.DefaultSelector()
        self.accept_paused_until = 0.0
        listening.setblocking(False)
        self.selector.register(listening, READ)  # data None marks the listener

    def serve_forever(self) -> None:
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while True:
            for key, mask in self.selector.select(SWEEP_SECONDS):
                if key.data is None:
                    self.accept()
                else:
                    self.service(key.data, mask)
            now = time.monotonic()
            if self.accept_paused_until and now >= self.accept_paused_until:
                self.resume_accepting()
            if now >= next_sweep:
                self.close_idle(now)
                next_sweep = now + SWEEP_SECONDS

    def accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listening.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in OUT_OF_DESCRIPTORS:
                    # The listener stays readable: without a pause this would spin.
                    self.log.warning("accept failed: %s; pausing accepts for 0.5 s", exc.strerror)
                    self.selector.unregister(self.listening)
                    self.accept_paused_until = time.monotonic() + 0.5
                    return
                continue  # ECONNABORTED and the like: that client is gone already
            sock.setblocking(False)
            conn = Connection(sock, format_sockaddr(address) or "?", time.monotonic())
            self.selector.register(sock, READ, conn)
            self.connections.add(conn)
            if not self.quiet:
                self.log.info("accepted %s", conn.peer)

    def resume_accepting(self) -> None:
        self.accept_paused_until = 0.0
        self.selector.register(self.listening, READ)

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
        if self.accept_paused_until:  # a descriptor was freed
            self.resume_accepting()

    def close_idle(self, now: float) -> None:
        for conn in [c for c in self.connections if now - c.last_active > self.idle_timeout]:
            self.close(conn, f"timed out: idle for {self.idle_timeout:g} s")

    def shutdown(self) -> None:
        for conn in list(self.connections):
            conn.sock.close()
        self.selector.close()


@dataclass(slots=True, eq=False)
class Attempt:
    """The client's side of one connection: what is left to send, what came back."""

    sock: socket.socket
    pending: memoryview
    received: bytearray = field(default_factory=bytearray)
    connected: bool = False
    held: bool = False  # established, silent until the hold is released


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
    waiting: list[Attempt] = field(default_factory=list)

    def settle(self) -> None:
        self.unsettled -= 1
        if self.unsettled == 0:
            self.release_at = time.monotonic() + self.seconds

    @property
    def released(self) -> bool:
        return self.release_at is not None and time.monotonic() >= self.release_at

    def wait(self, remaining: float) -> float:
        """How long the next select may block: not past the release, while anyone waits for it."""
        if self.waiting and self.release_at is not None:
            return max(0.0, min(remaining, self.release_at - time.monotonic()))
        return remaining


def run_connections(family: int, sockaddr: tuple, n: int, payload: bytes, timeout: float,
                    hold_seconds: float | None = None) -> Tally:
    """Open n connections at once, echo ``payload`` on each, and count what happened.

    With ``hold_seconds``, see ``Hold``: the echo starts only once all are open.
    """
    tally = Tally(connections=n)
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    hold = Hold(hold_seconds, n) if hold_seconds is not None else None

    def finish(attempt: Attempt, outcome: str | None = None, exc: OSError | None = None) -> None:
        if hold and not attempt.connected:
            hold.settle()
        selector.unregister(attempt.sock)
        attempt.sock.close()
        tally.open_now -= attempt.connected
        if exc is not None:
            tally.raised(exc)
        elif outcome == Outcome.ECHOED:
            tally.completed += 1
        else:
            tally.failed(outcome or Outcome.ERROR.value)

    for _ in range(n):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors: count it, like any other failure
            tally.raised(exc)
            if hold:
                hold.settle()
            continue
        sock.setblocking(False)
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            tally.raised(OSError(code, os.strerror(code)))
            if hold:
                hold.settle()
            continue
        selector.register(sock, READ | WRITE, Attempt(sock, memoryview(payload)))

    while selector.get_map() and (remaining := deadline - time.monotonic()) > 0:
        if hold and hold.waiting and hold.released:
            for attempt in hold.waiting:
                attempt.held = False
                selector.modify(attempt.sock, READ | WRITE, attempt)
            hold.waiting.clear()
        for key, mask in selector.select(hold.wait(remaining) if hold else remaining):
            attempt: Attempt = key.data
            try:
                if not attempt.connected:
                    code = attempt.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, os.strerror(code))
                    attempt.connected = True
                    tally.connected()
                    if hold:
                        hold.settle()
                        if not hold.released:
                            attempt.held = True
                            hold.waiting.append(attempt)
                            selector.modify(attempt.sock, READ, attempt)  # only to notice a server closing
                            continue
                if attempt.pending and not attempt.held:
                    sent = attempt.sock.send(attempt.pending)
                    attempt.pending = attempt.pending[sent:]
                    tally.bytes_sent += sent
                    if not attempt.pending:
                        selector.modify(attempt.sock, READ, attempt)
                if mask & READ:
                    data = attempt.sock.recv(BUFSIZE)
                    tally.bytes_received += len(data)
                    attempt.received += data
                    if not data:
                        finish(attempt, Outcome.CLOSED.value)
                    elif attempt.received != payload[: len(attempt.received)]:
                        finish(attempt, Outcome.MISMATCH.value)
                    elif len(attempt.received) == len(payload):
                        finish(attempt, Outcome.ECHOED.value)
            except BlockingIOError:
                pass
            except OSError as exc:
                finish(attempt, exc=exc)
    for key in list(selector.get_map().values()):
        finish(key.data, Outcome.TIMEOUT.value)
    selector.close()
    return tally


def client(args: argparse.Namespace) -> int:
    raise_fd_limit()
    payload = "".join(args.messages).encode()
    base: dict[str, Any] = {"target": str(args.to), "peer": None, "messages": len(args.messages)}
    started = time.perf_counter()
    try:
        family, sockaddr = resolve(args.to, socket.SOCK_STREAM)[0]
    except OSError as exc:
        tally = Tally(connections=args.connections)
        tally.raised(exc, count=args.connections)
    else:
        base["peer"] = format_sockaddr(sockaddr)
        tally = run_connections(family, sockaddr, args.connections, payload, args.timeout, args.hold)
    summary = tally.summary()
    verdict = {key: summary.pop(key) for key in ("outcome", "errno", "detail")}
    print_result(verdict | base | summary | {"elapsed_ms": elapsed_ms(started)})
    return 0


def serve(args: argparse.Namespace) -> int:
    log = setup_logging("multiconn")
    stop_on_signals()
    with listener(args, socket.SOCK_STREAM, log) as listening:
        raise_fd_limit(log)
        server = EchoServer(listening, log, idle_timeout=args.timeout, quiet=args.quiet)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
    log.info("stopped")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.multiconn", description=__doc__.split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="{serve,client}")
    s = commands.add_parser("serve", help="echo for many clients at once, on one thread",
                            description="Non-blocking selectors echo server.")
    add_listen_arguments(s)
    s.add_argument("--timeout", type=seconds, default=60.0, metavar="S",
                   help="close a connection that is idle for S seconds (default: 60)")
    add_quiet_argument(s)
    c = commands.add_parser("client", help="open N connections at once and echo messages on each",
                            description="Open N non-blocking connections, send the messages on each, "
                            "close each once its echo is complete.")
    add_client_arguments(c, default_timeout=10.0)
    c.add_argument("--connections", type=positive_int, default=2, metavar="N",
                   help="connections to open at once (default: 2)")
    c.add_argument("--messages", nargs="+", default=DEFAULT_MESSAGES, metavar="TEXT",
                   help="messages sent, in order, on every connection (default: %(default)s)")
    c.add_argument("--hold", type=non_negative_seconds, metavar="S",
                   help="keep each connection silent until all are open, then S seconds more, so that they are "
                   "all open together (count S in --timeout)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return serve(args) if args.command == "serve" else client(args)


if __name__ == "__main__":
    raise SystemExit(main())
