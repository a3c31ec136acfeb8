"""Nagle's algorithm and delayed ACKs: why write, write, read stalls, and what TCP_NODELAY changes.

    python -m nodes.nagle serve --bind 0.0.0.0 --port 65432
    python -m nodes.nagle client --to 198.18.0.2:65432 --rounds 40
    python -m nodes.nagle client --to 198.18.0.2:65432 --rounds 40 --nodelay
    python -m nodes.nagle client --to 198.18.0.2:65432 --rounds 40 --writes 1

The server answers requests on one connection at a time. A request is a
4-byte length and a body of that many bytes; the server reads the length,
then the body, and only then answers (2 bytes, b"ok"). Until it has the
body it has nothing to send, so it acknowledges the length on its own, and
a receiver in an interactive exchange delays that ACK (Linux: 40 ms at
least, in the hope of sending it with an answer).

The client makes ``--rounds`` requests on one connection and times each,
from its first write to the answer. With ``--writes 2`` (the default) it
writes the length and then the body with two ``send`` calls, then reads:
Nagle's algorithm holds the small body back while the length is still
unacknowledged, the server's kernel holds its ACK back waiting for an
answer that needs the body, and the round waits for the delayed-ACK timer.
``--nodelay`` sets TCP_NODELAY, which turns Nagle's algorithm off: the body
goes at once. ``--writes 1`` sends the whole request with one ``sendall``,
the other cure: there is no second small segment to hold back.

Linux acknowledges at once while a connection is new (quick-ack mode) and
when an exchange does not look interactive, so not every round stalls; the
client reports how many did and the median, not one round's time.

Client result (one JSON object on stdout), keys:
  outcome         ok (every round answered), closed (the server closed
                  early), mismatch (an answer other than b"ok"), or the
                  failure (refused, timeout, reset, ...)
  errno, detail   errno name and words of the failure, or null
  target, peer, local   the server as given, and the connection's addresses
  nodelay         whether TCP_NODELAY was set
  writes          sends per request: 2 (length, then body) or 1
  rounds          requests answered
  stall_ms        a round at least this long counts as stalled
  stalled         how many rounds were stalled
  median_ms       the median round, in milliseconds (null if none)
  max_ms          the slowest round (null if none)
  rounds_ms       every round's time, in milliseconds (0.1 ms)
  elapsed_ms      connect to the last answer
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

LENGTH = 4  # bytes of the length that starts each request
ANSWER = b"ok"


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    """Read ``count`` bytes (TCP may hand them over in pieces); fewer only if the peer closed first."""
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


# -- server --------------------------------------------------------------------

def answer_requests(conn: socket.socket) -> int:
    """Read length, then body, then answer, until the client closes; return how many requests were answered."""
    answered = 0
    while True:
        length = recv_exactly(conn, LENGTH)  # the ACK for this is delayed: there is no answer to carry it yet
        if len(length) < LENGTH:
            return answered
        body = recv_exactly(conn, int.from_bytes(length, "big"))
        if len(body) < int.from_bytes(length, "big"):
            return answered
        conn.sendall(ANSWER)  # the answer carries the ACK of the body
        answered += 1


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Answer each length-and-body request with b"ok".

    Serve one connection at a time: read a 4-byte length, then the body, then answer 2 bytes.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as listening:
        while True:
            conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
            peer = format_sockaddr(address)
            log.info("accepted %s", peer)
            with conn:
                conn.settimeout(args.timeout)
                try:
                    answered = answer_requests(conn)
                except OSError as exc:
                    log.warning("error %s: %s", peer, exc.strerror or exc)
                else:
                    log.info("closed %s (%d requests answered)", peer, answered)


# -- client --------------------------------------------------------------------

def one_round(sock: socket.socket, body: bytes, writes: int) -> bytes:
    """One request and its answer: the length and the body in ``writes`` sends, then a read."""
    length = len(body).to_bytes(LENGTH, "big")
    if writes == 2:
        sock.sendall(length)  # goes at once: nothing of ours is unacknowledged
        sock.sendall(body)  # Nagle: held back until the length is acknowledged (unless TCP_NODELAY)
    else:
        sock.sendall(length + body)
    return recv_exactly(sock, len(ANSWER))


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Time request rounds on one connection, print one JSON result.

    Make --rounds requests on one connection, each written in --writes sends, and time each from its first write
    to its answer.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.OK.value, "errno": None, "detail": None, "target": str(args.to), "peer": None,
        "local": None, "nodelay": args.nodelay, "writes": args.writes, "rounds": 0, "stall_ms": args.stall_ms,
        "stalled": 0, "median_ms": None, "max_ms": None, "rounds_ms": [],
    }
    body = b"x" * args.size
    times: list[float] = []
    try:
        with cli.connect(args.to, args.timeout) as sock:
            result.update(cli.addresses(sock))
            if args.nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(args.rounds):
                started = time.perf_counter()
                answer = one_round(sock, body, args.writes)
                if answer != ANSWER:
                    result.update(outcome=(Outcome.CLOSED if len(answer) < len(ANSWER) else Outcome.MISMATCH).value,
                                  detail=f"answer {answer!r} after {len(times)} rounds")
                    break
                times.append((time.perf_counter() - started) * 1000)
    except OSError as exc:
        result.update(cli.failure(exc))
    if times:
        result.update(median_ms=round(statistics.median(times), 1), max_ms=round(max(times), 1))
    result.update(rounds=len(times), stalled=sum(t >= args.stall_ms for t in times),
                  rounds_ms=[round(t, 1) for t in times])
    return result


def milliseconds(text: str) -> float:
    """An argparse type: a positive, finite number of milliseconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive, finite number of milliseconds")
    return value


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("nagle", __doc__, serve, client)
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="close a client that sends nothing for S seconds, so the next one gets its turn (default: 30)")
    c.add_argument("--rounds", type=cli.positive_int, default=40, metavar="N",
                   help="requests to make on the connection (default: 40)")
    c.add_argument("--writes", type=int, choices=(1, 2), default=2,
                   help="sends per request: 2, the length then the body; 1, both in one sendall (default: 2)")
    c.add_argument("--nodelay", action="store_true",
                   help="set TCP_NODELAY: turn Nagle's algorithm off, so that small writes go at once")
    c.add_argument("--size", type=cli.positive_int, default=10, metavar="BYTES",
                   help="bytes of each request's body: a small segment (default: 10)")
    c.add_argument("--stall-ms", type=milliseconds, default=30.0, metavar="MS",
                   help="count a round at least this many milliseconds long as stalled; Linux delays an ACK "
                        "40 ms at least (default: 30)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
