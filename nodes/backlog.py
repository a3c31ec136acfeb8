"""The listen backlog: connections the kernel completes for a server that does not accept them.

    python -m nodes.backlog serve --bind 0.0.0.0 --port 65432 --backlog 1
    python -m nodes.backlog client --to 198.18.0.2:65432 --connections 4 --timeout 1
    python -m nodes.backlog client --to 198.18.0.2:65432 --connections 7 --early 2

The server listens with a small backlog and never calls ``accept``. The
kernel completes handshakes on its own and queues the new connections for
an ``accept`` that never comes; data the clients send waits in each queued
socket's buffer. Once the queue is full (Linux: when it holds more than the
backlog, so backlog + 1 connections), the kernel silently drops further
SYNs, and those clients' connect() retransmits its SYN until it times out:
a full server looks exactly like a dropped packet, not like a refusal.
The kernel never lets a backlog exceed ``net.core.somaxconn``: the server
reads that setting and logs the backlog the kernel really uses.

The client opens ``--connections`` connections one after another, each with
``--timeout`` to connect, keeps those that connected open, and sends
``--send`` on each (it is accepted into the kernel's buffers even though no
program will ever read it). With ``--early N`` the first N connections are
opened first but written to only after all the others: if the server's
side of their handshake is not complete yet (its last ACK lost), it
completes with that data, when the queue may be full. Then the client waits
up to ``--timeout`` for a word back on each of them: a reset (the server's
``net.ipv4.tcp_abort_on_overflow`` is 1), or silence, and it reads how many
of the bytes it sent the server's kernel never acknowledged (SIOCOUTQ):
data that a server's kernel dropped stays unacknowledged.

Client result (one JSON object on stdout), keys:
  outcome         ok when every connection was established (and no early one
                  was reset or left unacknowledged); otherwise the outcome of
                  the first one that was not: timeout, refused ... for a
                  connect(), reset for an early connection reset after its
                  send, timeout for one whose data was never acknowledged
  errno, detail   errno name and words of that failure, or null
  target          the server as given with --to
  connections     connections attempted
  connected       connections established (and written to, unless early)
  failed          connections not established
  first_failure   the number (from 1) of the first connection that failed, or null
  errors          {outcome: count} of the failed connections
  early           connections written to last (--early)
  written         early connections whose send() succeeded
  reset           early connections whose recv() after the send was reset
  unacked         early connections whose bytes the server never acknowledged
  attempts        each connection: {"outcome", "errno", "local", "elapsed_ms",
                  "sent", "then", "unacked_bytes"}; for an early connection
                  "sent" is the bytes its send() took (0 if it failed), "then"
                  what its recv() after the send ended in (reset, timeout,
                  closed, or the send's own failure) and "unacked_bytes" the
                  bytes still unacknowledged at the end; null for the others
  elapsed_ms      the whole run
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import socket
import struct
import termios
import time
from collections import Counter
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Listen with a small backlog and never accept.

    Listen with the given backlog and never call accept().
    """
    with cli.listener(args, socket.SOCK_STREAM, log, backlog=args.backlog):
        limit = somaxconn()
        if limit is not None and limit < args.backlog:  # listen() took min(backlog, somaxconn), silently
            log.info("backlog %d asked, net.core.somaxconn %d allows %d, never accepting: the kernel queues up "
                     "to %d connections", args.backlog, limit, limit, limit + 1)
        else:
            log.info("backlog %d, never accepting: the kernel queues up to %d connections", args.backlog,
                     args.backlog + 1)
        while True:
            time.sleep(3600)


def somaxconn() -> int | None:
    """This network namespace's net.core.somaxconn: the largest backlog listen() grants; None if unreadable."""
    try:
        with open("/proc/sys/net/core/somaxconn") as setting:
            return int(setting.read())
    except (OSError, ValueError):
        return None


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Open connections one after another, print one JSON result.

    Open connections one after another, keep them open, and report which ones were established.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.OK.value, "errno": None, "detail": None, "target": str(args.to),
        "connections": args.connections, "connected": 0, "failed": 0, "first_failure": None, "errors": {},
        "early": args.early, "written": 0, "reset": 0, "unacked": 0, "attempts": [],
    }
    if args.early > args.connections:
        cli.fail(f"--early {args.early} is more than the {args.connections} --connections")
    errors: Counter[str] = Counter()
    held: list[tuple[socket.socket, dict[str, Any]]] = []  # early connections, written to last
    with contextlib.ExitStack() as kept:
        for number in range(1, args.connections + 1):
            attempt: dict[str, Any] = {"outcome": Outcome.OK.value, "errno": None, "local": None,
                                       "sent": None, "then": None, "unacked_bytes": None}
            began = time.perf_counter()
            try:
                sock = kept.enter_context(cli.connect(args.to, args.timeout))
                attempt["local"] = format_sockaddr(sock.getsockname())
                if number <= args.early:
                    held.append((sock, attempt))
                else:
                    sock.sendall(args.send.encode())
                result["connected"] += 1
            except OSError as exc:
                failed = cli.failure(exc)
                attempt.update(outcome=failed["outcome"], errno=failed["errno"])
                errors[failed["outcome"]] += 1
                if result["first_failure"] is None:
                    result.update(failed, first_failure=number)
            attempt["elapsed_ms"] = cli.elapsed_ms(began)
            result["attempts"].append(attempt)
        late = [late_send(sock, attempt, args) for sock, attempt in held]
    result.update(failed=sum(errors.values()), errors=dict(errors))
    result["written"] = sum(1 for _, attempt in held if attempt["sent"])
    result["reset"] = sum(1 for _, attempt in held if attempt["then"] == Outcome.RESET.value)
    result["unacked"] = sum(1 for _, attempt in held if attempt["unacked_bytes"])
    problems = [problem for problem in late if problem is not None]
    if result["first_failure"] is None and problems:
        result.update(problems[0])
    return result


def late_send(sock: socket.socket, attempt: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """Write to an early connection, then wait for a word back: what ended that wait, or None if all is well.

    The server never sends, so a recv() that times out is the usual end. A
    reset says the server's kernel aborted the connection; bytes still
    unacknowledged after the wait say it dropped them without a word.
    """
    sock.settimeout(args.timeout)
    attempt["sent"] = 0
    try:
        sock.sendall(args.send.encode())  # the local kernel takes it: send() succeeds whatever the server does
        attempt["sent"] = len(args.send.encode())
        data = sock.recv(1024)
        attempt["then"] = Outcome.CLOSED.value if not data else Outcome.OK.value
        problem = None if data else {"outcome": Outcome.CLOSED.value, "errno": None,
                                     "detail": "the server closed the connection"}
    except OSError as exc:
        problem = cli.failure(exc)
        attempt["then"] = problem["outcome"]
        if problem["outcome"] == Outcome.TIMEOUT.value:
            problem = None  # silence is what a never-accepting server says; the unacknowledged bytes tell more
    attempt["unacked_bytes"] = unacknowledged(sock)
    if problem is None and attempt["unacked_bytes"]:
        problem = {"outcome": Outcome.TIMEOUT.value, "errno": None,
                   "detail": f"{attempt['unacked_bytes']} bytes sent were never acknowledged"}
    return problem


def unacknowledged(sock: socket.socket) -> int:
    """Bytes of the send buffer not yet acknowledged by the peer (SIOCOUTQ, which is TIOCOUTQ's number)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except OSError:
        return 0  # not a connected TCP socket: nothing it could tell
    return int(struct.unpack("i", raw)[0])


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("backlog", __doc__, serve, client,
                              client_timeout=1.0, send="text to send on each established connection")
    s.add_argument("--backlog", type=cli.non_negative_int, default=1, metavar="N",
                   help="the backlog passed to listen() (default: 1)")
    c.add_argument("--connections", type=cli.positive_int, default=4, metavar="N",
                   help="connections to open (default: 4)")
    c.add_argument("--early", type=cli.non_negative_int, default=0, metavar="N",
                   help="open the first N connections first but write to them last, then wait --timeout for a "
                   "reset on each and count the bytes never acknowledged (default: 0)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
