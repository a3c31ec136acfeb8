"""The application protocol over TCP: a server for many clients, and a client that can also load-test.

    python -m nodes.app serve --bind 0.0.0.0 --port 65432 [--workers 2]
    python -m nodes.app client --to 198.18.0.2:65432 --action search --value morpheus
    python -m nodes.app client --to 198.18.0.2:65432 --binary "hello there"
    python -m nodes.app client --to 198.18.0.2:65432 --value ring --requests 10000 --concurrency 20
    python -m nodes.app client --to 198.18.0.2:65432 --value ring --split bytewise --fin

The messages are defined in ``nodes.appmsg``; this module moves them. One
request and one response per connection, then the server closes.

The client can also write its one request the way the network and other
clients may deliver it, which a server must take as well as a whole
request in one piece: ``--split bytewise`` sends each byte with a send()
of its own and a pause (``--pause``) between them, so that a server's
recv() really returns part of the request; ``--split prefix`` splits only
the 2-byte length prefix, one byte, a pause, then the rest; ``--fin`` shuts
down the client's sending side (a FIN) right after the request, which says
"nothing more is coming", not "do not answer"; ``--back-to-back`` sends the
request twice in one write, and the server must answer the first (its
content-length says where it ends) and may close without reading the other.

The server is a ``selectors`` loop that does as little as it can per
request. A client usually sends its request right after connecting, so
the server tries to read it the moment it accepts: if the whole request is
there it answers and closes without the connection ever entering the
selector (accept, recv, send, close, and the getsockname CPython adds to
each accept: five system calls). The listening socket is corked, and so
is every socket it accepts: the response's last segment waits for the
close, and leaves with the FIN, one packet where there would be two. Only
a request that is not all there yet, or a response the socket cannot take
at once, waits in the selector, with a deadline: a client must deliver its
request and take its response within ``--timeout`` seconds, however it
trickles.
Bad input (see ``nodes.appmsg``) ends that one connection, with a log line
saying which rule it broke; nothing a client sends is buffered beyond
``--max-content``. ``--workers N`` forks N processes that share the
listening socket, so the kernel hands each new connection to one of them
and N cores serve.

The server logs one line per connection when it ends ("closed PEER:
answered ..." or "error PEER: ..."), and an "accepted PEER" line first for
a connection that has to wait. Logging costs about as much as answering:
use ``--quiet`` (errors only) for load tests.

Client result (one JSON object on stdout), keys; with ``--requests N`` the
same request is made N times, each on a new connection, up to
``--concurrency`` at once:
  outcome         ok when every request got a well-formed response (equal to
                  --expect if given); otherwise the most frequent failure:
                  mismatch (malformed response, or not the expected result),
                  closed, refused, timeout, reset, ...
  errno, detail   errno name and words of that failure, or null
  target, peer    the server as given, and the address every connection went to
  attempts        when the name resolved to several addresses: how the client
                  chose the one to use, before any request, with a connection
                  to each in turn until one was accepted (then closed at once,
                  unused: the server sees a client that sent nothing), as
                  [{"peer", "outcome", "errno", "detail", "elapsed_ms"}, ...];
                  [] with one address (an IP address): the requests' own
                  connections tried it
  local           the client's address of the first connection
  requests, completed, failed
  errors          {outcome: count} of the failed requests
  bytes_sent, bytes_received
  elapsed_ms      for all requests
  requests_per_s  completed requests per second
  latency_ms_avg, latency_ms_p50, latency_ms_p99, latency_ms_max
                  connect-to-response times of completed requests
  header          the first response's JSON header, or null
  content_type, content_encoding, content_length   from that header
  content         its content: the JSON value (text/json) or text
  result          content["result"] for text/json, the content text otherwise
  written         with --split, --fin or --back-to-back: how the request was
                  written, e.g. "146 sends of 1 byte, 0.01 s apart; then FIN"
"""

from __future__ import annotations

import argparse
import logging
import os
import selectors
import signal
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nodes import cli, tally
from nodes.appmsg import (
    DEFAULT_MAX_CONTENT,
    JSON_TYPE,
    Message,
    MessageReader,
    ProtocolError,
    answer,
    binary_request,
    describe,
    search_request,
)
from nodes.conversations import Conversation, Load
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

RECV_SIZE = 65536
ACCEPT_BATCH = 128  # accepts per readiness event, so that waiting clients get their turn too
CLIENT_MAX_CONTENT = 64 << 20  # a client trusts its server more, but not without limit
# Non-blocking per call: saves the ioctl that setblocking(False) costs on every accepted socket.
DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


@dataclass(slots=True, eq=False)
class Exchange:
    """One connection on the server: its request so far, then its response still to send."""

    sock: socket.socket
    address: Any
    fd: int
    started: float
    deadline: float
    reader: MessageReader
    response: memoryview | None = None
    request: str = ""  # what was asked, for the log
    events: int = 0  # selector interest; 0 while it never had to wait

    @property
    def peer(self) -> str:
        return format_sockaddr(self.address) or "?"


class AppServer:
    """Answer requests on one thread; waiting connections are kept in deadline order."""

    def __init__(
        self, listening: socket.socket, log: logging.Logger, *, timeout: float, max_content: int, quiet: bool
    ) -> None:
        self.log = log
        self.timeout = timeout
        self.max_content = max_content
        self.quiet = quiet
        self.selector = selectors.DefaultSelector()
        # Every exchange gets the same timeout when accepted, so arrival order is
        # deadline order: the first entry is always the next to expire.
        self.waiting: OrderedDict[int, Exchange] = OrderedDict()
        self.acceptor = cli.Acceptor(listening, self.selector, log, batch=ACCEPT_BATCH)  # its key's data: None

    def serve_forever(self) -> None:
        select, waiting, acceptor = self.selector.select, self.waiting, self.acceptor
        while True:
            timeout = None
            if waiting:
                timeout = max(0.0, next(iter(waiting.values())).deadline - time.monotonic())
            for key, _ in select(acceptor.wait(timeout)):
                if key.data is None:
                    self.accept()
                else:
                    self.advance(key.data)
            if waiting or acceptor.paused_until:
                now = time.monotonic()
                self.expire(now)
                acceptor.resume_if_due(now)

    def accept(self) -> None:
        for sock, address in self.acceptor.accept():  # listening.accept() while clients wait: see nodes.cli
            now = time.monotonic()
            exchange = Exchange(sock, address, sock.fileno(), now, now + self.timeout, MessageReader(self.max_content))
            if not DONTWAIT:
                sock.setblocking(False)
            self.advance(exchange)  # the request is often there already: answer without waiting

    def advance(self, exchange: Exchange) -> None:
        """Read, answer, send: as far as the socket allows without blocking."""
        try:
            while exchange.response is None:
                data = exchange.sock.recv(RECV_SIZE, DONTWAIT)
                if not data:
                    self.finish(exchange, truncation(exchange.reader))
                    return
                request = exchange.reader.feed_first(data)  # one request per connection: what follows is ignored
                if request is not None:
                    exchange.response = memoryview(answer(request))
                    if not self.quiet:
                        exchange.request = describe(request)
            while exchange.response:
                sent = exchange.sock.send(exchange.response, DONTWAIT)
                exchange.response = exchange.response[sent:]
        except BlockingIOError:
            self.wait(exchange, READ if exchange.response is None else WRITE)
        except ProtocolError as exc:
            self.finish(exchange, f"bad request: {exc}")
        except OSError as exc:
            self.finish(exchange, exc.strerror or str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must cost one connection, never the server
            self.finish(exchange, f"internal error: {exc!r}")
        else:
            self.finish(exchange)

    def wait(self, exchange: Exchange, events: int) -> None:
        if not exchange.events:
            self.selector.register(exchange.sock, events, exchange)
            self.waiting[exchange.fd] = exchange
            if not self.quiet:
                doing = "the request" if events == READ else "the client to take the response"
                self.log.info("accepted %s: waiting for %s", exchange.peer, doing)
        elif exchange.events != events:
            self.selector.modify(exchange.sock, events, exchange)
        exchange.events = events

    def finish(self, exchange: Exchange, problem: str | None = None) -> None:
        if exchange.events:
            self.selector.unregister(exchange.sock)
            del self.waiting[exchange.fd]
        exchange.sock.close()
        if problem:
            self.log.warning("error %s: %s", exchange.peer, problem)
        elif not self.quiet:
            took = (time.monotonic() - exchange.started) * 1000
            self.log.info("closed %s: answered %s in %.1f ms", exchange.peer, exchange.request, took)
        self.acceptor.freed()  # if accepting is paused: there is a descriptor for another connection now

    def expire(self, now: float) -> None:
        while self.waiting:
            exchange = next(iter(self.waiting.values()))
            if exchange.deadline > now:
                break
            doing = "receiving the request" if exchange.response is None else "sending the response"
            self.finish(exchange, f"timed out after {self.timeout:g} s {doing}")

    def close(self) -> None:
        for exchange in self.waiting.values():
            exchange.sock.close()
        self.waiting.clear()
        self.selector.close()


def truncation(reader: MessageReader) -> str:
    if reader.partial:
        return f"truncated request: the client closed with {reader.buffered} bytes of an incomplete message"
    return "the client closed without sending a request"


def run_worker(listening: socket.socket, args: argparse.Namespace, log: logging.Logger) -> None:
    server = AppServer(listening, log, timeout=args.timeout, max_content=args.max_content, quiet=args.quiet)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def fork_worker(number: int, workers: dict[int, int], listening: socket.socket, args: argparse.Namespace,
                log: logging.Logger) -> None:
    """Fork worker ``number`` and note it in ``workers`` (pid -> number); the child serves until stopped.

    The stop signals are blocked across the fork, so that neither side is
    interrupted before it knows which side it is and the parent has noted
    the child; the child unblocks them itself.
    """
    with cli.stop_signals_blocked():
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, cli.STOP_SIGNALS)
                run_worker(listening, args, log.getChild(f"worker{number}"))
            except KeyboardInterrupt:
                pass
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                os._exit(code)
        workers[pid] = number
    log.info("worker %d started (pid %d)", number, pid)


def supervise(listening: socket.socket, args: argparse.Namespace, log: logging.Logger) -> None:
    """Fork the workers, replace any that dies, and stop them all when told to stop.

    The workers share the one listening socket: each accepts from the same
    queue, so the kernel spreads new connections over them.
    """
    workers: dict[int, int] = {}  # pid -> worker number
    try:
        for number in range(args.workers):
            fork_worker(number, workers, listening, args, log)
        while True:
            pid, status = os.wait()
            if pid in workers:  # not some other child
                number = workers.pop(pid)
                log.warning("worker %d (pid %d) exited with status %d; starting another",
                            number, pid, os.waitstatus_to_exitcode(status))
                time.sleep(0.5)  # a worker that dies at once must not become a fork loop
                fork_worker(number, workers, listening, args, log)
    except KeyboardInterrupt:
        pass
    finally:
        stop_workers(workers, log)


def stop_workers(workers: dict[int, int], log: logging.Logger, grace: float = 5.0) -> None:
    for signum in cli.STOP_SIGNALS:  # already stopping: a second signal must not cut this short
        signal.signal(signum, signal.SIG_IGN)
    cli.end_processes(set(workers), log, "workers", grace)
    workers.clear()


def cork(listening: socket.socket) -> None:
    """Cork the listener, so that every accepted socket is corked too (Linux: they inherit its TCP options).

    A corked socket holds back a segment that is not full until it is
    uncorked or closed, and the server closes right after the last byte of
    its response: the response and the FIN then leave in one segment instead
    of two, so each request costs a packet less to send, and to acknowledge.
    Full segments of a long response still leave at once.
    """
    if hasattr(socket, "TCP_CORK"):
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Answer application-protocol requests.

    Application-protocol server: one request and one response per connection.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as listening:
        cork(listening)
        cli.raise_fd_limit(log)
        if args.workers == 1:
            run_worker(listening, args, log)
        else:
            supervise(listening, args, log)


@dataclass
class Tally(tally.Tally):
    """What N requests amounted to: ``nodes.tally``'s counts (a connection per request), latencies, a response."""

    success: ClassVar[Outcome] = Outcome.OK

    local: str | None = None  # the client's address of the first connection
    response: Message | None = None  # the first response
    latencies: list[float] = field(default_factory=list)  # connect to response, in ms

    def summary(self, seconds_taken: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def percentile(p: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3) if ordered else None

        return {
            "local": self.local, "requests": self.connections, "completed": self.completed,
            "failed": self.connections - self.completed, "errors": dict(self.errors),
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
            "elapsed_ms": round(seconds_taken * 1000, 3),
            "requests_per_s": round(self.completed / seconds_taken, 1) if seconds_taken > 0 else None,
            "latency_ms_avg": round(sum(ordered) / len(ordered), 3) if ordered else None,
            "latency_ms_p50": percentile(0.5), "latency_ms_p99": percentile(0.99),
            "latency_ms_max": round(ordered[-1], 3) if ordered else None,
        } | response_fields(self.response)


def response_fields(response: Message | None) -> dict[str, Any]:
    fields: dict[str, Any] = dict.fromkeys(
        ("header", "content_type", "content_encoding", "content_length", "content", "result")
    )
    if response is None:
        return fields
    content: Any = response.content.decode("utf-8", "backslashreplace")
    if response.content_type == JSON_TYPE:
        content = response.json()
    result = content.get("result") if isinstance(content, dict) else content
    return {
        "header": response.header, "content_type": response.content_type,
        "content_encoding": response.content_encoding, "content_length": response.header["content-length"],
        "content": content, "result": result,
    }


def count_response(counts: Tally, response: Message, expect: str | None, started: float) -> str | None:
    """Count a response as completed; or say why it is a mismatch (malformed, or not the expected result)."""
    try:
        result = response_fields(response)["result"]
    except ProtocolError as error:
        return f"malformed response: {error}"
    if expect is not None and result != expect:
        return f"expected {expect!r}, got {result!r}"
    counts.completed += 1
    counts.latencies.append((time.monotonic() - started) * 1000)
    counts.response = counts.response or response
    return None


class Request(Conversation):
    """One request, on a connection of its own: connect, send the request, receive the response, done."""

    load: Requests

    def __init__(self, load: Requests) -> None:
        super().__init__(load)
        self.pending = memoryview(load.payload)
        self.reader = MessageReader(CLIENT_MAX_CONTENT)

    def connect(self) -> bool:
        if not super().connect():
            return False
        if self.load.tally.local is None:
            self.load.tally.local = format_sockaddr(self.sock.getsockname())
        # On a fast link the handshake is often over by now: sending at once
        # saves waiting for writability; if it is not, send says EAGAIN (or
        # the connect's error, e.g. ECONNREFUSED) and we wait after all.
        self.ready(WRITE)
        return True

    def ready(self, mask: int) -> None:
        try:
            if self.pending:
                self.send()
            if mask & READ:
                self.receive()
        except BlockingIOError:
            self.watch(WRITE if self.pending else READ)
        except ProtocolError as exc:
            self.done(Outcome.MISMATCH.value, f"malformed response: {exc}")
        except OSError as exc:
            self.raised(exc)

    def send(self) -> None:
        sent = self.sock.send(self.pending)
        self.pending = self.pending[sent:]
        self.load.tally.bytes_sent += sent
        if self.pending:
            raise BlockingIOError  # the rest once the socket can take it
        self.watch(READ)

    def receive(self) -> None:
        while True:
            data = self.sock.recv(RECV_SIZE)
            if not data:
                self.done(Outcome.CLOSED.value, "the server closed before the whole response arrived")
                return
            self.load.tally.bytes_received += len(data)
            responses = self.reader.feed(data)
            if responses:
                self.answered(responses[0])
                return

    def answered(self, response: Message) -> None:
        problem = count_response(self.load.tally, response, self.load.expect, self.started)
        self.done(Outcome.OK.value if problem is None else Outcome.MISMATCH.value, problem)

    def expired(self) -> None:
        self.done(Outcome.TIMEOUT.value, f"no complete response within {self.load.timeout:g} s")

    def done(self, outcome: str, detail: str | None = None, errno_name: str | None = None) -> None:
        super().done(outcome, detail, errno_name)
        if outcome != Outcome.OK.value:
            self.load.tally.failed(outcome, errno_name, detail)


class Requests(Load):
    """The same request, made again and again, each time on a new connection."""

    conversation_class = Request

    def __init__(self, family: int, sockaddr: tuple, payload: bytes, counts: Tally, *, expect: str | None,
                 timeout: float, concurrency: int) -> None:
        super().__init__(family, sockaddr, timeout=timeout, concurrency=concurrency)
        self.payload, self.tally, self.expect = payload, counts, expect


def pieces(payload: bytes, split: str | None) -> list[bytes]:
    """The sends a request is written in: whole, a byte each, or the length prefix cut in two."""
    if split == "bytewise":
        return [payload[i : i + 1] for i in range(len(payload))]
    if split == "prefix":
        return [payload[:1], payload[1:]]
    return [payload]


def written(sends: list[bytes], pause: float, fin: bool) -> str:
    """How a request was written, in words, for the result."""
    if len(sends) == 1:
        words = f"one send of {len(sends[0])} bytes"
    elif len({len(piece) for piece in sends}) == 1:
        words = f"{len(sends)} sends of {len(sends[0])} byte(s), {pause:g} s apart"
    else:
        words = f"sends of {', '.join(str(len(piece)) for piece in sends)} bytes, {pause:g} s apart"
    return words + ("; then FIN" if fin else "")


def shaped_request(family: int, sockaddr: tuple, payload: bytes, counts: Tally, args: argparse.Namespace) -> None:
    """One request, written as ``--split``, ``--fin`` and ``--back-to-back`` say, on a blocking socket.

    Each socket call may wait ``--timeout`` seconds. The first complete
    message that comes back is the response; whatever follows it is not read.
    """
    started = time.monotonic()
    response: Message | None = None
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(args.timeout)
            sock.connect(sockaddr)
            counts.local = format_sockaddr(sock.getsockname())
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece leaves at once (no Nagle)
            sends = pieces(payload, args.split)
            for number, piece in enumerate(sends):
                if number:
                    time.sleep(args.pause)  # the server's recv() returns what came so far
                # With --fin the last piece waits (MSG_MORE) for the FIN, and both leave in one segment:
                # the server finds the request and the end of the stream together, however busy it is.
                held = socket.MSG_MORE if args.fin and number == len(sends) - 1 else 0
                sock.sendall(piece, held)
                counts.bytes_sent += len(piece)
            if args.fin:
                sock.shutdown(socket.SHUT_WR)  # FIN: nothing more is coming; the answer still may
            reader = MessageReader(CLIENT_MAX_CONTENT)
            while response is None:
                data = sock.recv(RECV_SIZE)
                if not data:
                    counts.failed(Outcome.CLOSED.value, None, "the server closed before the whole response arrived")
                    return
                counts.bytes_received += len(data)
                response = reader.feed_first(data)
        except ProtocolError as exc:
            counts.failed(Outcome.MISMATCH.value, None, f"malformed response: {exc}")
            return
        except OSError as exc:
            counts.raised(exc)
            return
    problem = count_response(counts, response, args.expect, started)
    if problem is not None:
        counts.failed(Outcome.MISMATCH.value, None, problem)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send a request, print the response as one JSON result.

    Application-protocol client; with --requests, a load generator.
    """
    if args.binary is not None:
        payload = binary_request(args.binary.encode())
    else:
        payload = search_request(args.value, args.action)
    shaped = args.split is not None or args.fin or args.back_to_back
    if shaped and args.requests != 1:
        cli.fail("--split, --fin and --back-to-back shape one request: leave out --requests")
    if args.back_to_back and args.split is not None:
        # A server of one request per connection answers the first and closes: the second's pieces would hit a reset.
        cli.fail("--back-to-back writes both requests at once: leave out --split")
    counts = Tally(connections=args.requests)

    if shaped:
        request = payload * 2 if args.back_to_back else payload
        sends = pieces(request, args.split)
        return tally.client_result(
            args.to, counts, lambda family, sockaddr: shaped_request(family, sockaddr, request, counts, args),
            timeout=args.timeout, written=written(sends, args.pause, args.fin))

    def requests(family: int, sockaddr: tuple) -> None:
        Requests(family, sockaddr, payload, counts, expect=args.expect, timeout=args.timeout,
                 concurrency=min(args.concurrency, args.requests)).run(args.requests)

    return tally.client_result(args.to, counts, requests, timeout=args.timeout)


def byte_count(text: str) -> int:
    value = cli.positive_int(text)
    if value > 1 << 30:
        raise argparse.ArgumentTypeError(f"{value} is more than 1 GiB")
    return value


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("app", __doc__, serve, client)
    s.add_argument("--timeout", type=cli.seconds, default=10.0, metavar="S",
                   help="a client must deliver its request and take the response within S seconds (default: 10)")
    s.add_argument("--max-content", type=byte_count, default=DEFAULT_MAX_CONTENT, metavar="BYTES",
                   help=f"refuse requests whose content-length is larger (default: {DEFAULT_MAX_CONTENT})")
    s.add_argument("--workers", type=cli.positive_int, default=1, metavar="N",
                   help="processes sharing the listening socket, one per core to use (default: 1)")
    cli.add_quiet_argument(s)
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--value", metavar="TEXT", help="search for TEXT (a text/json request), e.g. morpheus, ring")
    what.add_argument("--binary", metavar="TEXT",
                      help="send TEXT as a binary/custom-client-binary-type request instead")
    c.add_argument("--action", default="search", metavar="NAME",
                   help="the action of a text/json request (default: search; others get an error answer)")
    c.add_argument("--expect", metavar="TEXT", help="count a response as ok only if its result is exactly TEXT")
    c.add_argument("--requests", type=cli.positive_int, default=1, metavar="N",
                   help="make the request N times, each on a new connection (default: 1)")
    c.add_argument("--concurrency", type=cli.positive_int, default=10, metavar="C",
                   help="with --requests: at most C requests in flight at once (default: 10)")
    c.add_argument("--split", choices=["bytewise", "prefix"],
                   help="write the request in pieces: every byte in a send of its own (bytewise), or the 2-byte "
                   "length prefix cut after its first byte (prefix), with --pause between them")
    c.add_argument("--pause", type=cli.non_negative_seconds, default=0.01, metavar="S",
                   help="with --split: seconds between two pieces, so that a server's recv() returns part of the "
                   "request (default: 0.01)")
    c.add_argument("--fin", action="store_true",
                   help="shut down the sending side (a FIN) right after the request, in the same segment as its "
                   "last bytes; the server must still answer")
    c.add_argument("--back-to-back", action="store_true",
                   help="send the request twice in one write; the first response is the one judged")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
