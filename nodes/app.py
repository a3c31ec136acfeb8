"""The application protocol over TCP: a server for many clients, and a client that can also load-test.

    python -m nodes.app serve --bind 0.0.0.0 --port 65432 [--workers 2]
    python -m nodes.app client --to 198.18.0.2:65432 --action search --value morpheus
    python -m nodes.app client --to 198.18.0.2:65432 --binary "hello there"
    python -m nodes.app client --to 198.18.0.2:65432 --value ring --requests 10000 --concurrency 20

The messages are defined in ``nodes.appmsg``; this module moves them. One
request and one response per connection, then the server closes.

The server is a ``selectors`` loop that does as little as it can per
request. A client usually sends its request right after connecting, so
the server tries to read it the moment it accepts: if the whole request is
there it answers and closes without the connection ever entering the
selector (accept, recv, send, close, and the getsockname CPython adds to
each accept: five system calls). Only a request
that is not all there yet, or a response the socket cannot take at once,
waits in the selector, with a deadline: a client must deliver its request
and take its response within ``--timeout`` seconds, however it trickles.
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
  target, peer    the server as given, and the address connected to
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
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import selectors
import signal
import socket
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

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
from nodes.cli import (
    OUT_OF_DESCRIPTORS,
    add_client_arguments,
    add_listen_arguments,
    add_quiet_argument,
    end_processes,
    failure,
    listener,
    positive_int,
    print_result,
    raise_fd_limit,
    seconds,
    setup_logging,
    stop_on_signals,
)
from nodes.endpoints import format_sockaddr, resolve
from nodes.outcomes import Outcome

RECV_SIZE = 65536
ACCEPT_BATCH = 128  # accepts per readiness event, so that waiting clients get their turn too
CLIENT_MAX_CONTENT = 64 << 20  # a client trusts its server more, but not without limit
# Non-blocking per call: saves the ioctl that setblocking(False) costs on every accepted socket.
DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


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
        self.listening = listening
        self.log = log
        self.timeout = timeout
        self.max_content = max_content
        self.quiet = quiet
        self.selector = selectors.DefaultSelector()
        # Every exchange gets the same timeout when accepted, so arrival order is
        # deadline order: the first entry is always the next to expire.
        self.waiting: OrderedDict[int, Exchange] = OrderedDict()
        self.accept_paused_until = 0.0
        listening.setblocking(False)
        self.selector.register(listening, READ)  # data None marks the listener

    def serve_forever(self) -> None:
        select, waiting = self.selector.select, self.waiting
        while True:
            timeout = None
            if waiting:
                timeout = max(0.0, next(iter(waiting.values())).deadline - time.monotonic())
            if self.accept_paused_until:
                timeout = min(timeout if timeout is not None else 0.5, 0.5)
            for key, _ in select(timeout):
                if key.data is None:
                    self.accept()
                else:
                    self.advance(key.data)
            if waiting or self.accept_paused_until:
                self.expire(time.monotonic())

    def accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listening.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in OUT_OF_DESCRIPTORS:  # the listener stays readable: pause, or spin
                    self.log.warning("accept failed: %s; pausing accepts for 0.5 s", exc.strerror)
                    self.selector.unregister(self.listening)
                    self.accept_paused_until = time.monotonic() + 0.5
                    return
                continue  # ECONNABORTED and the like: that client is gone already
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
                requests = exchange.reader.feed(data)
                if requests:
                    exchange.response = memoryview(answer(requests[0]))
                    if not self.quiet:
                        exchange.request = describe(requests[0])
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
        if self.accept_paused_until:  # a descriptor was freed
            self.resume_accepting()

    def expire(self, now: float) -> None:
        while self.waiting:
            exchange = next(iter(self.waiting.values()))
            if exchange.deadline > now:
                break
            doing = "receiving the request" if exchange.response is None else "sending the response"
            self.finish(exchange, f"timed out after {self.timeout:g} s {doing}")
        if self.accept_paused_until and now >= self.accept_paused_until:
            self.resume_accepting()

    def resume_accepting(self) -> None:
        self.accept_paused_until = 0.0
        self.selector.register(self.listening, READ)

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


def supervise(listening: socket.socket, args: argparse.Namespace, log: logging.Logger) -> None:
    """Fork the workers, replace any that dies, and stop them all when told to stop.

    The workers share the one listening socket: each accepts from the same
    queue, so the kernel spreads new connections over them.
    """
    workers: dict[int, int] = {}  # pid -> worker number
    stopping = {signal.SIGINT, signal.SIGTERM}

    def spawn(number: int) -> None:
        # Block the stop signals across fork, so neither side is interrupted
        # before it knows which side it is and the parent has noted the child.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
                run_worker(listening, args, log.getChild(f"worker{number}"))
            except KeyboardInterrupt:
                pass
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                os._exit(code)
        workers[pid] = number
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        log.info("worker %d started (pid %d)", number, pid)

    try:
        for number in range(args.workers):
            spawn(number)
        while True:
            pid, status = os.wait()
            number = workers.pop(pid, None)
            if number is not None:
                log.warning("worker %d (pid %d) exited with status %d; starting another",
                            number, pid, os.waitstatus_to_exitcode(status))
                time.sleep(0.5)  # a worker that dies at once must not become a fork loop
                spawn(number)
    except KeyboardInterrupt:
        pass
    finally:
        stop_workers(workers, log)


def stop_workers(workers: dict[int, int], log: logging.Logger, grace: float = 5.0) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # already stopping: a second signal must not cut this short
        signal.signal(signum, signal.SIG_IGN)
    end_processes(set(workers), log, "workers", grace)
    workers.clear()


def serve(args: argparse.Namespace) -> int:
    log = setup_logging("app")
    stop_on_signals()
    with listener(args, socket.SOCK_STREAM, log) as listening:
        raise_fd_limit(log)
        if args.workers == 1:
            run_worker(listening, args, log)
        else:
            supervise(listening, args, log)
    log.info("stopped")
    return 0


@dataclass(slots=True, eq=False)
class Request:
    """One request in flight on the client: connecting, sending, then reading the response."""

    sock: socket.socket
    fd: int
    started: float
    deadline: float
    pending: memoryview
    reader: MessageReader
    events: int = 0  # selector interest; 0 until it first has to wait


@dataclass
class Tally:
    """What N requests amounted to."""

    requests: int
    completed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    local: str | None = None
    response: Message | None = None
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    why: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def failed(self, outcome: str, errno_name: str | None = None, detail: str | None = None, count: int = 1) -> None:
        self.errors[outcome] += count
        self.why.setdefault(outcome, (errno_name, detail))

    def raised(self, exc: OSError, count: int = 1) -> None:
        said = failure(exc)
        self.failed(said["outcome"], said["errno"], said["detail"], count)

    def summary(self, seconds_taken: float) -> dict[str, Any]:
        if self.completed == self.requests:
            outcome, errno_name, detail = Outcome.OK.value, None, None
        else:
            outcome = self.errors.most_common(1)[0][0]
            errno_name, detail = self.why[outcome]
        ordered = sorted(self.latencies)

        def percentile(p: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3) if ordered else None

        return {
            "outcome": outcome, "errno": errno_name, "detail": detail, "local": self.local,
            "requests": self.requests, "completed": self.completed, "failed": self.requests - self.completed,
            "errors": dict(self.errors), "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
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


def run_requests(
    family: int, sockaddr: tuple, payload: bytes, *, requests: int, concurrency: int, timeout: float,
    expect: str | None,
) -> Tally:
    """Make ``requests`` requests, each on a new connection, at most ``concurrency`` at a time."""
    tally = Tally(requests=requests)
    selector = selectors.DefaultSelector()
    in_flight: OrderedDict[int, Request] = OrderedDict()  # started first = expires first
    to_start = requests

    def finish(request: Request, outcome: str | None = None, detail: str | None = None,
               exc: OSError | None = None, response: Message | None = None) -> None:
        if request.events:
            selector.unregister(request.sock)
        request.sock.close()
        del in_flight[request.fd]
        if exc is not None:
            tally.raised(exc)
            return
        if response is not None:
            try:
                result = response_fields(response)["result"]
            except ProtocolError as error:
                outcome, detail = Outcome.MISMATCH.value, f"malformed response: {error}"
            else:
                if expect is not None and result != expect:
                    outcome, detail = Outcome.MISMATCH.value, f"expected {expect!r}, got {result!r}"
                else:
                    tally.completed += 1
                    tally.latencies.append((time.monotonic() - request.started) * 1000)
                    tally.response = tally.response or response
                    return
        tally.failed(outcome or Outcome.ERROR.value, None, detail)

    def start() -> None:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors: a failure like any other
            tally.raised(exc)
            return
        sock.setblocking(False)
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            tally.raised(OSError(code, os.strerror(code)))
            return
        now = time.monotonic()
        reader = MessageReader(CLIENT_MAX_CONTENT)
        request = Request(sock, sock.fileno(), now, now + timeout, memoryview(payload), reader)
        in_flight[request.fd] = request
        if tally.local is None:
            tally.local = format_sockaddr(sock.getsockname())
        # On a fast link the handshake is often over by now: sending at once
        # saves waiting for writability; if it is not, send says EAGAIN (or
        # the connect's error, e.g. ECONNREFUSED) and we wait after all.
        step(request, WRITE)

    def watch(request: Request, events: int) -> None:
        if not request.events:
            selector.register(request.sock, events, request)
        elif request.events != events:
            selector.modify(request.sock, events, request)
        request.events = events

    def step(request: Request, mask: int) -> None:
        try:
            if request.pending:
                sent = request.sock.send(request.pending)
                request.pending = request.pending[sent:]
                tally.bytes_sent += sent
                if request.pending:
                    raise BlockingIOError
                watch(request, READ)
            if mask & READ:
                while True:
                    data = request.sock.recv(RECV_SIZE)
                    if not data:
                        finish(request, Outcome.CLOSED.value, "the server closed before the whole response arrived")
                        return
                    tally.bytes_received += len(data)
                    responses = request.reader.feed(data)
                    if responses:
                        finish(request, response=responses[0])
                        return
        except BlockingIOError:
            watch(request, WRITE if request.pending else READ)
        except ProtocolError as exc:
            finish(request, Outcome.MISMATCH.value, f"malformed response: {exc}")
        except OSError as exc:
            finish(request, exc=exc)

    while to_start or in_flight:
        while to_start and len(in_flight) < concurrency:
            to_start -= 1
            start()
        if not in_flight:
            continue
        wait = max(0.0, next(iter(in_flight.values())).deadline - time.monotonic())
        for key, mask in selector.select(wait):
            step(key.data, mask)
        now = time.monotonic()
        while in_flight and (oldest := next(iter(in_flight.values()))).deadline <= now:
            finish(oldest, Outcome.TIMEOUT.value, f"no complete response within {timeout:g} s")
    selector.close()
    return tally


def client(args: argparse.Namespace) -> int:
    raise_fd_limit()
    if args.binary is not None:
        payload = binary_request(args.binary.encode())
    else:
        payload = search_request(args.value, args.action)
    started = time.perf_counter()
    peer = None
    try:
        family, sockaddr = resolve(args.to, socket.SOCK_STREAM)[0]
    except OSError as exc:
        tally = Tally(requests=args.requests)
        tally.raised(exc, count=args.requests)
    else:
        peer = format_sockaddr(sockaddr)
        tally = run_requests(family, sockaddr, payload, requests=args.requests,
                             concurrency=min(args.concurrency, args.requests), timeout=args.timeout,
                             expect=args.expect)
    summary = tally.summary(time.perf_counter() - started)
    verdict = {key: summary.pop(key) for key in ("outcome", "errno", "detail")}
    print_result(verdict | {"target": str(args.to), "peer": peer} | summary)
    return 0


def byte_count(text: str) -> int:
    value = positive_int(text)
    if value > 1 << 30:
        raise argparse.ArgumentTypeError(f"{value} is more than 1 GiB")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.app", description=__doc__.split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="{serve,client}")
    s = commands.add_parser("serve", help="answer application-protocol requests",
                            description="Application-protocol server: one request and one response per connection.")
    add_listen_arguments(s)
    s.add_argument("--timeout", type=seconds, default=10.0, metavar="S",
                   help="a client must deliver its request and take the response within S seconds (default: 10)")
    s.add_argument("--max-content", type=byte_count, default=DEFAULT_MAX_CONTENT, metavar="BYTES",
                   help=f"refuse requests whose content-length is larger (default: {DEFAULT_MAX_CONTENT})")
    s.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes sharing the listening socket, one per core to use (default: 1)")
    add_quiet_argument(s)
    c = commands.add_parser("client", help="send a request, print the response as one JSON result",
                            description="Application-protocol client; with --requests, a load generator.")
    add_client_arguments(c)
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--value", metavar="TEXT", help="search for TEXT (a text/json request), e.g. morpheus, ring")
    what.add_argument("--binary", metavar="TEXT",
                      help="send TEXT as a binary/custom-client-binary-type request instead")
    c.add_argument("--action", default="search", metavar="NAME",
                   help="the action of a text/json request (default: search; others get an error answer)")
    c.add_argument("--expect", metavar="TEXT", help="count a response as ok only if its result is exactly TEXT")
    c.add_argument("--requests", type=positive_int, default=1, metavar="N",
                   help="make the request N times, each on a new connection (default: 1)")
    c.add_argument("--concurrency", type=positive_int, default=10, metavar="C",
                   help="with --requests: at most C requests in flight at once (default: 10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return serve(args) if args.command == "serve" else client(args)


if __name__ == "__main__":
    raise SystemExit(main())
