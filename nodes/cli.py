"""What every node program shares at its edges: arguments, logs, signals, results.

Conventions, so that the orchestrator (and a student) can drive any program
the same way:

- servers take ``serve --bind ADDR --port N``; bad arguments exit 2 with one
  clear line on stderr;
- servers log one line per event on stderr and stop cleanly on SIGINT and
  SIGTERM (exit 0);
- clients print exactly one JSON object on stdout whose ``outcome`` is a
  word of ``nodes.outcomes.Outcome``; the exit status is 0 whenever a result
  was observed, whatever it was.

``main`` is the frame every program runs in, and keeps these promises; the
rest are the pieces the programs share: argument types, the listening
socket, accepting (``accept`` for a blocking server, ``Acceptor`` for a
selectors loop), stop signals, results. A program's own file keeps its
lesson: the socket calls, in order, that make it what it is.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import inspect
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from nodes.endpoints import Attempts, Endpoint, format_sockaddr, parse_endpoint, parse_port, resolve, try_each
from nodes.listen import BindError, describe, open_listener
from nodes.outcomes import classify

USAGE_ERROR = 2
DEFAULT_SEND = "Hello, world"


def port(text: str) -> int:
    """An argparse type: a valid port, or a usage error naming the problem."""
    try:
        return parse_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def endpoint(text: str) -> Endpoint:
    """An argparse type: ``HOST:PORT`` or ``[IPv6]:PORT``, or a usage error saying how to write it."""
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds(text: str) -> float:
    """An argparse type: a positive duration in seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive, finite number of seconds")
    return value


def non_negative_seconds(text: str) -> float:
    """An argparse type: a duration in seconds that may be 0 (as fast as possible)."""
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass
    return seconds(text)


def whole_number(text: str, minimum: int, too_small: str) -> int:
    """An integer of at least ``minimum``, or a usage error: not a whole number, or ``too_small``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} {too_small}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a count of at least 1."""
    return whole_number(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """An argparse type: a count that may be 0."""
    return whole_number(text, 0, "must not be negative")


def non_empty(text: str) -> str:
    """An argparse type: text of at least one character (an empty message proves nothing)."""
    if not text:
        raise argparse.ArgumentTypeError("needs at least one character")
    return text


def endpoint_text(text: str) -> str:
    """An argparse type: ``HOST:PORT`` checked as ``endpoint`` does, but kept as written."""
    endpoint(text)
    return text


MAX_UDP_PAYLOAD = 65507  # an IPv4 datagram's 65535 bytes less its IP and UDP headers


def datagram_size(header: int) -> Callable[[str], int]:
    """An argparse type: a UDP payload size that holds the program's ``header`` and fits one datagram."""

    def size(text: str) -> int:
        value = positive_int(text)
        if not header <= value <= MAX_UDP_PAYLOAD:
            raise argparse.ArgumentTypeError(f"{value}: give {header} to {MAX_UDP_PAYLOAD} bytes")
        return value

    return size


def add_client_arguments(parser: argparse.ArgumentParser, default_timeout: float = 5.0) -> None:
    parser.add_argument(
        "--to", type=endpoint, required=True, metavar="HOST:PORT",
        help="server to talk to: 127.0.0.1:65432, [::1]:65432, [fe80::1%%eth0]:65432 or name:65432",
    )
    parser.add_argument(
        "--timeout", type=seconds, default=default_timeout, metavar="S",
        help=f"give up waiting after S seconds (default: {default_timeout:g})",
    )


def add_send_argument(parser: argparse._ActionsContainer, what: str = "text to send") -> None:
    parser.add_argument("--send", type=non_empty, default=DEFAULT_SEND, metavar="TEXT",
                        help=f"{what} (default: {DEFAULT_SEND!r})")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true",
        help="do not log one line per connection or datagram (listening, errors and stopped are still logged); "
        "use it for load tests, where logging costs more than serving",
    )


def add_listen_arguments(parser: argparse.ArgumentParser, default_port: int = 65432) -> None:
    parser.add_argument(
        "--bind",
        default="",
        metavar="ADDR",
        help="address to bind: '' or 0.0.0.0 (every IPv4 address), :: (every IPv6 address), "
        "127.0.0.1, ::1, a LAN address, a host name, or fe80::...%%IFACE (default: '')",
    )
    parser.add_argument("--port", type=port, default=default_port, help=f"port to bind (default: {default_port})")
    stack = parser.add_mutually_exclusive_group()
    stack.add_argument(
        "--v6only", dest="v6only", action="store_const", const=True, default=None,
        help="with an IPv6 address: accept IPv6 clients only (IPV6_V6ONLY=1)",
    )
    stack.add_argument(
        "--dual-stack", dest="v6only", action="store_const", const=False,
        help="with ::, also accept IPv4 clients, seen as ::ffff:a.b.c.d (IPV6_V6ONLY=0)",
    )


def listener(args: argparse.Namespace, sock_type: int, log: logging.Logger, **options: Any) -> socket.socket:
    """Bind as the arguments say, or exit 2 with the reason."""
    endpoint = Endpoint(args.bind, args.port)
    try:
        sock = open_listener(endpoint, sock_type, v6only=args.v6only, **options)
    except BindError as exc:
        fail(exc.strerror or str(exc))
    except socket.gaierror as exc:
        fail(f"cannot bind {endpoint}: {exc.strerror}")
    log.info("listening on %s", describe(sock))
    return sock


def connect(
    where: Endpoint, timeout: float, sock_type: int = socket.SOCK_STREAM, attempts: Attempts | None = None
) -> socket.socket:
    """Connect to each resolved address in turn, as ``socket.create_connection`` does.

    Resolving through ``nodes.endpoints.resolve`` means a client understands
    exactly the addresses a server can be told to bind (scope ids included).
    The last error is raised if no address connects. Each address tried is
    noted in ``attempts``, if given (see ``nodes.endpoints.try_each``).
    """

    def attempt(family: int, sockaddr: tuple) -> socket.socket:
        sock = socket.socket(family, sock_type)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError:
            sock.close()
            raise
        return sock

    return try_each(resolve(where, sock_type), attempt, [] if attempts is None else attempts)


def addresses(sock: socket.socket) -> dict[str, str | None]:
    """A connected socket's two ends as a client result says them: ``peer`` and ``local``, HOST:PORT."""
    return {"peer": format_sockaddr(sock.getpeername()), "local": format_sockaddr(sock.getsockname())}


def failure(exc: BaseException) -> dict[str, Any]:
    """The outcome, errno name and plain-words detail of a failed socket call."""
    outcome, errno_name = classify(exc)
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return {"outcome": outcome.value, "errno": errno_name, "detail": detail}


def elapsed_ms(started: float) -> float:
    """Milliseconds since a ``time.perf_counter()`` reading, rounded to microseconds."""
    return round((time.perf_counter() - started) * 1000, 3)


OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""accept() errors that mean "no room for another socket now", not "that client is gone"."""
ACCEPT_PAUSE = 0.5  # seconds without accepting, once out of descriptors


def accept_failed(exc: OSError, log: logging.Logger) -> None:
    """Log a failed blocking ``accept()``, and wait before the next one as long as retrying at once is in vain.

    Out of descriptors, the listener stays ready while no accept can
    succeed: retrying at once would spin. So this pauses ``ACCEPT_PAUSE``
    seconds, for connections to end and free some. Any other error (say
    ECONNABORTED: a client gave up while queued) is that client's alone.
    """
    if exc.errno in OUT_OF_DESCRIPTORS:
        log.warning("accept failed: %s; pausing accepts for %g s", exc.strerror, ACCEPT_PAUSE)
        time.sleep(ACCEPT_PAUSE)
    else:
        log.warning("accept failed: %s", exc.strerror or exc)
        time.sleep(0.01)  # whatever it was, never a busy loop


def accept(listening: socket.socket, log: logging.Logger) -> tuple[socket.socket, Any]:
    """``listening.accept()`` for a blocking server: the next connection; failures are logged and waited out."""
    while True:
        try:
            return listening.accept()
        except OSError as exc:
            accept_failed(exc, log)


class Acceptor:
    """``accept()`` without blocking, for a server whose selector watches the listener; pauses rather than spins.

    The listener is registered for reading, with ``data`` as its key's data.
    ``accept`` yields what ``listening.accept()`` returns until nobody is
    waiting, ``batch`` connections at most, so that the open connections get
    their turn too. Out of descriptors, the listener stays readable while no
    accept can succeed, so it leaves the selector for ``ACCEPT_PAUSE``
    seconds, or until the server frees a descriptor (``freed``). The serving
    loop waits in select no longer than the pause (``wait``) and calls
    ``resume_if_due`` after each select.
    """

    def __init__(
        self, listening: socket.socket, selector: selectors.BaseSelector, log: logging.Logger, *, batch: int,
        data: Any = None,
    ) -> None:
        self.listening, self.selector, self.log, self.batch, self.data = listening, selector, log, batch, data
        self.paused_until = 0.0
        listening.setblocking(False)
        selector.register(listening, selectors.EVENT_READ, data)

    def accept(self) -> Iterator[tuple[socket.socket, Any]]:
        for _ in range(self.batch):
            try:
                accepted = self.listening.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in OUT_OF_DESCRIPTORS:
                    self.log.warning("accept failed: %s; pausing accepts for %g s", exc.strerror, ACCEPT_PAUSE)
                    self.selector.unregister(self.listening)
                    self.paused_until = time.monotonic() + ACCEPT_PAUSE
                    return
                self.log.warning("accept failed: %s", exc.strerror or exc)  # that client is gone already
                continue
            yield accepted

    def wait(self, timeout: float | None) -> float | None:
        """How long a select may block: ``timeout``, but not past the end of a pause."""
        if not self.paused_until:
            return timeout
        left = max(0.0, self.paused_until - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def resume_if_due(self, now: float) -> None:
        if self.paused_until and now >= self.paused_until:
            self.resume()

    def freed(self) -> None:
        """A connection was closed: if accepting is paused, there is room again."""
        if self.paused_until:
            self.resume()

    def resume(self) -> None:
        self.paused_until = 0.0
        self.selector.register(self.listening, selectors.EVENT_READ, self.data)


def raise_fd_limit(log: logging.Logger | None = None) -> int:
    """Lift the soft limit on open files to the hard limit, and return it.

    Each connection is a file descriptor; the usual soft limit (1024) stops a
    program long before 10,000 connections, while the hard limit rarely does.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (hard, min(hard, 1 << 20), min(hard, 10240)):  # unlimited is not always accepted
        if wanted == resource.RLIM_INFINITY or wanted <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            continue
        soft = wanted
        break
    if log is not None:
        log.info("open files limit: %s", soft)
    return soft


def setup_logging(name: str) -> logging.Logger:
    """One line per event, timestamped, on stderr (stdout carries results)."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
    return logging.getLogger(name)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_stop_requested = False


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt, so ``with`` blocks close every socket.

    Both, explicitly: a program started in the background by a shell that
    has no job control inherits SIGINT ignored, and Python would leave it so.
    The stop is also remembered (``stop_requested``): a KeyboardInterrupt
    raised inside code that swallows exceptions, such as the interpreter's
    at-fork hooks, is lost, and a serving loop that polls can still notice.
    """

    def interrupt(signum: int, frame: object) -> NoReturn:
        global _stop_requested
        _stop_requested = True
        raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM has arrived (after ``stop_on_signals``)."""
    return _stop_requested


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM meanwhile: threads started and processes forked here inherit the block.

    The kernel hands a process's signal to any thread that does not block
    it, but Python acts on it only in the main thread: if it lands on a
    worker, a main thread blocked in ``accept`` never wakes and the server
    does not stop. A forked child must unblock them itself.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> None:
    """Start a worker thread that stop signals are never delivered to."""
    with stop_signals_blocked():
        thread.start()


def shut(sock: socket.socket) -> None:
    """Shut both directions of a connection, which ends any call blocked on it; closed already is fine."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Handlers:
    """A thread per connection, and a stop that ends them all rather than abandoning them.

    Threads left running while the interpreter exits (daemon threads) can
    hang the exit itself (CPython issue 96387), and a server that does not
    exit on SIGTERM is broken. So handler threads are ordinary threads, and
    ``stop`` shuts every open connection down, which wakes its handler out
    of ``recv`` or ``sendall`` at once, then waits for each to finish.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = False

    def start(self, conn: socket.socket, handler: Callable[..., object], *args: Any) -> None:
        """Run ``handler(conn, *args)`` on a thread of its own, which stop signals never reach."""
        start_thread(threading.Thread(target=self._serve, args=(conn, handler, *args)))

    def _serve(self, conn: socket.socket, handler: Callable[..., object], *args: Any) -> None:
        with self._lock:
            self._threads.add(threading.current_thread())
            self._open.add(conn)
            if self._stopping:  # started as the server was stopping
                shut(conn)
        try:
            handler(conn, *args)
        finally:
            with self._lock:
                self._open.discard(conn)
                self._threads.discard(threading.current_thread())

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            for conn in self._open:
                shut(conn)
            threads = list(self._threads)
        for thread in threads:
            thread.join()


def end_processes(pids: set[int], log: logging.Logger, what: str, grace: float) -> None:
    """Ask each child process to stop (SIGTERM) and reap it; kill those still there after ``grace`` seconds.

    The deadline makes a server's own stop certain even if a child missed
    the request (a signal that lands while a new child is still settling).
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids:
        for pid in list(pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                pids.discard(pid)
        if pids and time.monotonic() >= deadline:
            log.warning("%s %s did not stop in %g s: killing them", what, sorted(pids), grace)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = float("inf")  # now only reaping
        if pids:
            time.sleep(0.01)


class UsageError(Exception):
    """What was asked cannot be done as asked (an address not on this host, say): one line on stderr, exit 2."""


def fail(message: str) -> NoReturn:
    """Stop: what was asked cannot be done as asked (``main`` says it, one line, and exits 2)."""
    raise UsageError(message)


def print_result(result: Mapping[str, Any]) -> None:
    print(json.dumps(result, ensure_ascii=False), flush=True)


# -- the frame every program runs in ------------------------------------------------------------------

Serve = Callable[[argparse.Namespace, logging.Logger], object]
"""A server: runs until it is done or a stop signal interrupts it (KeyboardInterrupt)."""
Client = Callable[[argparse.Namespace], Mapping[str, Any] | int]
"""A client: returns its JSON result, or (a program that prints none) its exit status."""


def command(
    commands: argparse._SubParsersAction, name: str, function: Callable[..., object]
) -> argparse.ArgumentParser:
    """A subcommand running ``function``, with the help and description its docstring gives.

    The docstring's first line is the help, as argparse lists subcommands
    (lower case, no full stop); the paragraph after it, the description.
    """
    first, _, rest = inspect.cleandoc(function.__doc__ or "").partition("\n\n")
    sub: argparse.ArgumentParser = commands.add_parser(
        name, help=first[:1].lower() + first[1:].removesuffix("."), description=" ".join(rest.split()))
    return sub


def subcommands(
    name: str, doc: str | None, serve: Serve, client: Client, *, listen: bool = True,
    client_timeout: float | None = 5.0, send: str | None = None,
    log_name: Callable[[argparse.Namespace], str] | None = None,
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """A program's parser, and its ``serve`` and ``client`` subcommands for the program to add its options to.

    Each subcommand runs its function (see ``main``) and is described by
    its docstring (see ``command``). The conventions come with them:
    ``serve --bind ADDR --port N [--v6only|--dual-stack]`` (unless not
    ``listen``), ``client --to HOST:PORT --timeout S`` (unless
    ``client_timeout`` is None), and ``--send TEXT``, described as ``send``,
    if given. A server logs as ``log_name(args)``, or as the program.
    """
    p = argparse.ArgumentParser(prog=f"python -m nodes.{name}", description=(doc or "").split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="{serve,client}")
    s = command(commands, "serve", serve)
    s.set_defaults(_serve=serve, _log_name=log_name or (lambda args: name))
    c = command(commands, "client", client)
    c.set_defaults(_client=client)
    if listen:
        add_listen_arguments(s)
    if client_timeout is not None:
        add_client_arguments(c, client_timeout)
    if send is not None:
        add_send_argument(c, send)
    return p, s, c


def main(parser: argparse.ArgumentParser, argv: Sequence[str] | None, client: Client | None = None) -> int:
    """Run a program: parse its arguments, then serve, or run the client, keeping the conventions above.

    The server (the ``serve`` subcommand's function) runs with logging set
    up and with SIGINT and SIGTERM raising KeyboardInterrupt; however it
    ends, by returning or by a stop signal, the program logs "stopped" and
    exits 0. The client (the ``client`` subcommand's, or ``client`` for a
    program without subcommands) returns its result, printed as one JSON
    line with exit status 0 (and ``elapsed_ms``, the time it took, unless
    it says itself), or an exit status. Bad arguments exit 2 (argparse's
    message), and so does a ``UsageError`` (``fail``), with one line on stderr.
    """
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if hasattr(args, "_serve"):
            log = setup_logging(args._log_name(args))
            stop_on_signals()
            with contextlib.suppress(KeyboardInterrupt):
                args._serve(args, log)
            log.info("stopped")
            return 0
        run: Client | None = getattr(args, "_client", client)
        assert run is not None, "a program without subcommands names its client"
        result = run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if isinstance(result, int):
        return result
    print_result({**result, "elapsed_ms": result.get("elapsed_ms", elapsed_ms(started))})
    return 0
