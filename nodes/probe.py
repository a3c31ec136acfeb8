"""Make one client attempt and report, as one JSON object, what really happened.

The probe is how the lab observes: it connects (TCP), sends a datagram (UDP)
or only binds, and maps whatever the socket API returned or raised to a word
of the outcome vocabulary (``nodes.outcomes``), with the evidence beside it:
errno name, elapsed time, local and peer address, bytes sent and received.
An exchange that fails half way (a timeout, a reset) keeps what crossed
before the failure: the bytes ``send`` took, the bytes received, and the
reply so far (its first 200 bytes, as for a whole reply).

    python -m nodes.probe --proto tcp --to 198.18.0.2:65432 --send "Hello, world"
    python -m nodes.probe --proto udp --to [fd50:c1ab:0:1::2]:65432 --connected
    python -m nodes.probe --proto tcp --bind 0.0.0.0:65432

Like ``socket.create_connection``, a TCP probe to a name tries each address
getaddrinfo returns, in order, until one connects; every attempt is listed.

Two TCP options make the attempt harder on the server, as real clients do:

    python -m nodes.probe --to 198.18.0.2:65432 --size 262144 --rcvbuf 4096 --read-delay 0.01
    python -m nodes.probe --to 198.18.0.2:65432 --send "Hello, world" --hold-other

A slow reader (a small receive buffer, so a small window, and a pause
before each recv) lets the echo pile up in the server's send buffer, where
a send() on a socket with a timeout, or a non-blocking one, takes only what
fits and returns a smaller count than it was given: a server that does not
send the rest (sendall, or a loop) loses bytes. With ``--hold-other`` the
probe first opens another connection, has it echoed and keeps it open and
silent while it makes the attempt: a server that serves one client at a
time is still busy with that one, and never answers.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from nodes import cli
from nodes.endpoints import FAMILIES, Endpoint, format_sockaddr, parse_endpoint, resolve
from nodes.listen import open_listener
from nodes.outcomes import Outcome, classify

UDP_BUFSIZE = 65535
PATTERN = b"0123456789abcdef"


@dataclass
class Attempt:
    """One try against one resolved address."""

    outcome: Outcome = Outcome.ERROR
    errno: str | None = None
    detail: str | None = None
    local: str | None = None
    peer: str | None = None
    elapsed_ms: float = 0.0
    sent: int = 0
    received: int = 0
    reply: str | None = None
    truncated: bool = False
    held: str | None = None  # with --hold-other: the outcome of the other connection, held open meanwhile

    def failed(self, exc: OSError) -> None:
        self.outcome, self.errno = classify(exc)
        self.detail = exc.strerror or str(exc) or type(exc).__name__


@dataclass
class Result(Attempt):
    proto: str = "tcp"
    target: str = ""
    attempts: list[Attempt] = field(default_factory=list)


class Deadline:
    """One time budget for a whole attempt, spread over its socket calls."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def arm(self, sock: socket.socket) -> None:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(remaining)


def payload(args: argparse.Namespace) -> bytes | None:
    """What to send: the text given, or ``--size`` bytes of a readable repeating pattern."""
    if args.size is not None:
        return (PATTERN * (args.size // len(PATTERN) + 1))[: args.size]
    return None if args.send is None else args.send.encode()


def judge(sent: bytes, reply: bytes, complete: bool, attempt: Attempt) -> None:
    """Name what an answer amounts to: the same bytes, other bytes, or too few."""
    note_reply(reply, attempt)
    if reply == sent:
        attempt.outcome = Outcome.ECHOED
    elif not complete:
        attempt.outcome = Outcome.CLOSED
    else:
        attempt.outcome = Outcome.MISMATCH


def note_reply(reply: bytes, attempt: Attempt) -> None:
    """Keep what came back, whole or in part: its size, and its first 200 bytes as text."""
    attempt.received = len(reply)
    attempt.reply = reply[:200].decode("utf-8", "replace")


def exchange(sock: socket.socket, data: bytes, deadline: Deadline, attempt: Attempt, read_delay: float = 0.0) -> None:
    """Send ``data`` and read it back at the same time.

    A client that sends everything before reading deadlocks against an echo
    server as soon as both directions' buffers are full (the server blocks
    sending the echo nobody reads, the client blocks sending what the server
    no longer reads), so the sending happens on a thread of its own. With
    ``read_delay`` the reader pauses before each recv: a slow reader.

    The sender is ``sendall`` written out, so that it knows how many bytes
    ``send`` has taken so far; and what was read is kept as it comes. So an
    exchange that fails half way (a timeout, a reset) still says what
    crossed before: the bytes sent and received, and the reply so far.
    """
    failed: list[OSError] = []
    taken = 0  # bytes send() has taken so far

    def send() -> None:
        nonlocal taken
        view = memoryview(data)
        try:
            while view:
                count = sock.send(view)
                taken += count
                view = view[count:]
        except OSError as exc:
            failed.append(exc)

    deadline.arm(sock)
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reply = bytearray()
    try:
        while len(reply) < len(data):
            if read_delay:
                time.sleep(min(read_delay, max(0.0, deadline.end - time.monotonic())))
            deadline.arm(sock)
            chunk = sock.recv(min(len(data) - len(reply), 1 << 20))
            if not chunk:
                break
            reply += chunk
    except OSError:
        if reply:  # what came back before the failure
            note_reply(bytes(reply), attempt)
        raise
    finally:
        sender.join(max(0.0, deadline.end - time.monotonic()))
        attempt.sent = taken
    if failed and len(reply) < len(data):
        if reply:
            note_reply(bytes(reply), attempt)
        raise failed[0]
    judge(data, bytes(reply), len(reply) >= len(data), attempt)


def tcp_attempt(family: int, sockaddr: tuple, args: argparse.Namespace) -> Attempt:
    attempt = Attempt(peer=format_sockaddr(sockaddr))
    deadline = Deadline(args.timeout)
    started = time.perf_counter()
    with contextlib.ExitStack() as held:
        if args.hold_other:  # another client first, echoed, then kept open and silent during the attempt
            other = Attempt()
            talk(held.enter_context(socket.socket(family, socket.SOCK_STREAM)), sockaddr, args, deadline, other)
            attempt.held = other.outcome.value
            if other.outcome not in (Outcome.ECHOED, Outcome.OK):
                attempt.outcome, attempt.errno = other.outcome, other.errno
                attempt.detail = f"the other connection, to be held open: {other.detail or other.outcome.value}"
        if attempt.held in (None, Outcome.ECHOED.value, Outcome.OK.value):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                talk(sock, sockaddr, args, deadline, attempt)
    attempt.elapsed_ms = cli.elapsed_ms(started)
    return attempt


def talk(sock: socket.socket, sockaddr: tuple, args: argparse.Namespace, deadline: Deadline,
         attempt: Attempt) -> None:
    """Connect ``sock`` and exchange the payload, if any; what happened goes into ``attempt``."""
    try:
        if args.rcvbuf:  # before connect: the window offered in the handshake follows from it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        if args.source:
            sock.bind((args.source, 0))
        deadline.arm(sock)
        sock.connect(sockaddr)
        attempt.local = format_sockaddr(sock.getsockname())
        attempt.outcome = Outcome.OK
        data = payload(args)
        if data is not None:
            exchange(sock, data, deadline, attempt, args.read_delay)
    except OSError as exc:
        attempt.failed(exc)


def udp_attempt(family: int, sockaddr: tuple, args: argparse.Namespace) -> Attempt:
    """Send one datagram and wait for one back.

    Only a connected UDP socket hears about ICMP errors (port unreachable
    becomes ECONNREFUSED); an unconnected one just waits and times out.
    """
    attempt = Attempt(peer=format_sockaddr(sockaddr))
    data = payload(args) or b"ping"
    started = time.perf_counter()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(args.timeout)
        try:
            if args.source:
                sock.bind((args.source, 0))
            if args.connected:
                sock.connect(sockaddr)
                attempt.sent = sock.send(data)
            else:
                attempt.sent = sock.sendto(data, sockaddr)
            attempt.local = format_sockaddr(sock.getsockname())
            reply, _, flags, source = sock.recvmsg(args.bufsize)
            attempt.peer = format_sockaddr(source) or attempt.peer
            attempt.truncated = bool(flags & socket.MSG_TRUNC)
            judge(data, reply, True, attempt)
        except OSError as exc:
            attempt.failed(exc)
    attempt.elapsed_ms = cli.elapsed_ms(started)
    return attempt


def bind_only(args: argparse.Namespace, sock_type: int) -> Result:
    """Bind (and listen) where asked, to see whether the kernel allows it."""
    result = Result(proto=args.proto, target=args.bind)
    started = time.perf_counter()
    try:
        endpoint = parse_endpoint(args.bind)
        with open_listener(endpoint, sock_type, v6only=args.v6only, reuse_addr=args.reuse_addr) as sock:
            result.local = format_sockaddr(sock.getsockname())
            result.outcome = Outcome.OK
    except OSError as exc:
        result.failed(exc)
    result.elapsed_ms = cli.elapsed_ms(started)
    return result


def connect(args: argparse.Namespace, sock_type: int) -> Result:
    endpoint: Endpoint = parse_endpoint(args.to)
    try:
        addresses = resolve(endpoint, sock_type, FAMILIES[args.family])
    except OSError as exc:
        result = Result(proto=args.proto, target=args.to)
        result.failed(exc)
        return result
    if sock_type == socket.SOCK_DGRAM:
        attempts = [udp_attempt(*addresses[0], args)]
    else:
        attempts = []
        for family, sockaddr in addresses:
            attempts.append(tcp_attempt(family, sockaddr, args))
            if attempts[-1].local is not None:  # connected: stop, as create_connection does
                break
    last = asdict(attempts[-1]) | {"elapsed_ms": round(sum(a.elapsed_ms for a in attempts), 3)}
    return Result(**last, proto=args.proto, target=args.to, attempts=attempts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nodes.probe",
        description="Make one client attempt (or one bind) and print what happened as one JSON object.",
        epilog="Outcomes: " + ", ".join(o.value for o in Outcome),
    )
    p.add_argument("--proto", choices=["tcp", "udp"], default="tcp", help="transport (default: tcp)")
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--to", type=cli.endpoint_text, metavar="HOST:PORT",
                      help="connect (TCP) or send a datagram (UDP) to this endpoint")
    goal.add_argument("--bind", type=cli.endpoint_text, metavar="ADDR:PORT",
                      help="only bind there (and listen, for TCP): is it free and local?")
    payload = p.add_mutually_exclusive_group()
    payload.add_argument("--send", type=cli.non_empty, metavar="TEXT",
                         help="text to send; an echo of it means 'echoed' (UDP default: ping)")
    payload.add_argument("--size", type=cli.positive_int, metavar="N",
                         help="send N bytes of a repeating pattern instead (big enough to need many recv calls)")
    p.add_argument("--timeout", type=cli.seconds, default=2.0, metavar="S", help="time budget per address (default: 2)")
    p.add_argument("--from", dest="source", metavar="ADDR", help="bind the client to this local address first")
    p.add_argument("--family", choices=sorted(FAMILIES), default="any", help="address family to resolve names in")
    p.add_argument("--connected", action="store_true", help="UDP: connect() first, so ICMP errors are reported")
    p.add_argument("--bufsize", type=cli.positive_int, default=UDP_BUFSIZE,
                   help="UDP: receive buffer size (a smaller one truncates)")
    p.add_argument("--rcvbuf", type=cli.positive_int, metavar="BYTES",
                   help="TCP: set SO_RCVBUF before connecting (Linux doubles it): a small window for the server")
    p.add_argument("--read-delay", type=cli.non_negative_seconds, default=0.0, metavar="S",
                   help="TCP: pause S seconds before each recv of the echo, a slow reader (default: 0)")
    p.add_argument("--hold-other", action="store_true",
                   help="TCP: first open another connection, have it echoed, and keep it open and silent "
                   "during the attempt (a server that serves one client at a time never gets to this one)")
    p.add_argument("--reuse-addr", action="store_true", help="with --bind: set SO_REUSEADDR first")
    stack = p.add_mutually_exclusive_group()
    stack.add_argument("--v6only", dest="v6only", action="store_const", const=True, default=None,
                       help="with --bind on an IPv6 address: IPV6_V6ONLY=1")
    stack.add_argument("--dual-stack", dest="v6only", action="store_const", const=False,
                       help="with --bind on ::: IPV6_V6ONLY=0")
    return p


def probe(args: argparse.Namespace) -> dict[str, Any]:
    sock_type = socket.SOCK_STREAM if args.proto == "tcp" else socket.SOCK_DGRAM
    return asdict(bind_only(args, sock_type) if args.bind else connect(args, sock_type))


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv, client=probe)


if __name__ == "__main__":
    raise SystemExit(main())
