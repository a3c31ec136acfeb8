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
import socket
import time
from collections import Counter
from typing import Any

from nodes.cli import (
    add_client_arguments,
    add_listen_arguments,
    connect,
    elapsed_ms,
    failure,
    listener,
    positive_int,
    print_result,
    setup_logging,
    stop_on_signals,
)
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

DEFAULT_SEND = "Hello, world"


def non_negative_int(text: str) -> int:
    """An argparse type: a count that may be 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def serve(args: argparse.Namespace) -> int:
    log = setup_logging("backlog")
    stop_on_signals()
    with listener(args, socket.SOCK_STREAM, log, backlog=args.backlog), contextlib.suppress(KeyboardInterrupt):
        log.info("backlog %d, never accepting: the kernel queues up to %d connections", args.backlog,
                 args.backlog + 1)
        while True:
            time.sleep(3600)
    log.info("stopped")
    return 0


def client(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {
        "outcome": Outcome.OK.value, "errno": None, "detail": None, "target": str(args.to),
        "connections": args.connections, "connected": 0, "failed": 0, "first_failure": None, "errors": {},
        "attempts": [], "elapsed_ms": 0.0,
    }
    started = time.perf_counter()
    errors: Counter[str] = Counter()
    with contextlib.ExitStack() as kept:
        for number in range(1, args.connections + 1):
            attempt: dict[str, Any] = {"outcome": Outcome.OK.value, "errno": None, "local": None}
            began = time.perf_counter()
            try:
                sock = kept.enter_context(connect(args.to, args.timeout))
                attempt["local"] = format_sockaddr(sock.getsockname())
                sock.sendall(args.send.encode())
                result["connected"] += 1
            except OSError as exc:
                failed = failure(exc)
                attempt.update(outcome=failed["outcome"], errno=failed["errno"])
                errors[failed["outcome"]] += 1
                if result["first_failure"] is None:
                    result.update(failed, first_failure=number)
            attempt["elapsed_ms"] = elapsed_ms(began)
            result["attempts"].append(attempt)
    result.update(failed=sum(errors.values()), errors=dict(errors), elapsed_ms=elapsed_ms(started))
    print_result(result)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.backlog", description=__doc__.split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="{serve,client}")
    s = commands.add_parser("serve", help="listen with a small backlog and never accept",
                            description="Listen with the given backlog and never call accept().")
    add_listen_arguments(s)
    s.add_argument("--backlog", type=non_negative_int, default=1, metavar="N",
                   help="the backlog passed to listen() (default: 1)")
    c = commands.add_parser("client", help="open connections one after another, print one JSON result",
                            description="Open connections one after another, keep them open, and report "
                                        "which ones were established.")
    add_client_arguments(c, default_timeout=1.0)
    c.add_argument("--connections", type=positive_int, default=4, metavar="N",
                   help="connections to open (default: 4)")
    c.add_argument("--send", default=DEFAULT_SEND, metavar="TEXT",
                   help=f"text to send on each established connection (default: {DEFAULT_SEND!r})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return serve(args) if args.command == "serve" else client(args)


if __name__ == "__main__":
    raise SystemExit(main())
