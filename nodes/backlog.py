"""The listen backlog: connections the kernel completes for a server that does not accept them.

    python -m nodes.backlog serve --bind 0.0.0.0 --port 65432 --backlog 1
    python -m nodes.backlog client --to 198.18.0.2:65432 --connections 4 --timeout 1

The server listens with a small backlog and never calls ``accept``. The
kernel completes handshakes on its own and queues the new connections for
an ``accept`` that never comes; data the clients send waits in each queued
socket's buffer. Once the queue is full (Linux: when it holds more than the
backlog, so backlog + 1 connections), the kernel silently drops further
SYNs, and those clients' connect() retransmits its SYN until it times out:
a full server looks exactly like a dropped packet, not like a refusal
(unless ``net.ipv4.tcp_abort_on_overflow`` is set).

The client opens ``--connections`` connections one after another, each with
``--timeout`` to connect, keeps those that connected open, and sends
``--send`` on each (it is accepted into the kernel's buffers even though no
program will ever read it).

Client result (one JSON object on stdout), keys:
  outcome         ok when every connection was established; otherwise the
                  outcome of the first one that was not (timeout, refused, ...)
  errno, detail   errno name and words of that failure, or null
  target          the server as given with --to
  connections     connections attempted
  connected       connections established (and written to)
  failed          connections not established
  first_failure   the number (from 1) of the first connection that failed, or null
  errors          {outcome: count} of the failed connections
  attempts        each connection: {"outcome", "errno", "local", "elapsed_ms"}
  elapsed_ms      the whole run
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
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
        log.info("backlog %d, never accepting: the kernel queues up to %d connections", args.backlog,
                 args.backlog + 1)
        while True:
            time.sleep(3600)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Open connections one after another, print one JSON result.

    Open connections one after another, keep them open, and report which ones were established.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.OK.value, "errno": None, "detail": None, "target": str(args.to),
        "connections": args.connections, "connected": 0, "failed": 0, "first_failure": None, "errors": {},
        "attempts": [],
    }
    errors: Counter[str] = Counter()
    with contextlib.ExitStack() as kept:
        for number in range(1, args.connections + 1):
            attempt: dict[str, Any] = {"outcome": Outcome.OK.value, "errno": None, "local": None}
            began = time.perf_counter()
            try:
                sock = kept.enter_context(cli.connect(args.to, args.timeout))
                attempt["local"] = format_sockaddr(sock.getsockname())
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
    result.update(failed=sum(errors.values()), errors=dict(errors))
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("backlog", __doc__, serve, client,
                              client_timeout=1.0, send="text to send on each established connection")
    s.add_argument("--backlog", type=cli.non_negative_int, default=1, metavar="N",
                   help="the backlog passed to listen() (default: 1)")
    c.add_argument("--connections", type=cli.positive_int, default=4, metavar="N",
                   help="connections to open (default: 4)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
