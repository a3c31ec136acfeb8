"""Blocking TCP echo: the first lesson, one client at a time.

    python -m nodes.echo serve --bind 127.0.0.1 --port 65432
    python -m nodes.echo client --to 127.0.0.1:65432 --send "Hello, world"

The server accepts a connection and sends back whatever it reads until the
client closes (``recv`` returns ``b""``), then accepts the next one. While it
serves one client the others wait, already connected, in the listen backlog:
that is the limit this lesson shows. A per-client idle timeout keeps one
silent client from holding everybody else up forever.

TCP is a byte stream, not a message service: one ``send`` may arrive as
several ``recv`` results. So the client sends with ``sendall`` and keeps
reading until as many bytes came back as it sent. Sending everything before
reading anything has a limit, shown rather than hidden: the text must fit in
the two sockets' buffers (hundreds of KiB). Beyond that the server blocks
sending the echo nobody reads, the client blocks sending what the server no
longer reads, and the client reports ``timeout``; ``nodes.multiconn`` reads
while it writes and has no such limit.

Client result (one JSON object on stdout), keys:
  outcome      echoed (the same bytes came back), mismatch (other bytes),
               closed (EOF before the whole echo), or a failure word
               (refused, timeout, reset, unresolved, ...)
  errno        errno name of the failure, or null
  detail       the failure in words, or null
  target       the server as given with --to
  peer, local  the connection's addresses (HOST:PORT), null if not connected
  sent         bytes sent
  received     bytes received
  reply        what came back (first 200 bytes, as text)
  elapsed_ms   connect to last byte, in milliseconds
"""

from __future__ import annotations

import argparse
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

BUFSIZE = 65536


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def serve_forever(
    listening: socket.socket,
    log: logging.Logger,
    *,
    timeout: float,
    peer_name: Callable[[socket.socket, Any], str] = lambda conn, addr: format_sockaddr(addr) or "?",
) -> None:
    """Echo for each client in turn, until interrupted.

    Whatever one client does (vanish, stall, reset) ends only its own
    connection: the loop logs it and goes back to ``accept``.
    """
    while True:
        conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
        with conn:
            peer = peer_name(conn, address)
            log.info("accepted %s", peer)
            conn.settimeout(timeout)
            try:
                echoed = echo_until_eof(conn)
            except TimeoutError:
                log.warning("timed out %s: idle for %g s, closing", peer, timeout)
            except OSError as exc:
                log.warning("error %s: %s", peer, exc.strerror or exc)
            else:
                log.info("closed %s (%d bytes echoed)", peer, echoed)


def echo_until_eof(conn: socket.socket) -> int:
    """Send back every byte received until the peer closes; return the count."""
    total = 0
    while data := conn.recv(BUFSIZE):
        conn.sendall(data)
        total += len(data)
    return total


def exchange(sock: socket.socket, data: bytes, timeout: float) -> dict[str, Any]:
    """Send ``data`` and read until as many bytes came back, or EOF, or the time is up.

    The timeout is one budget for the whole exchange, not per call, so a
    trickling server cannot stretch it.
    """
    result: dict[str, Any] = {"sent": 0, "received": 0, "reply": None}
    end = time.monotonic() + timeout

    def arm() -> None:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(remaining)

    reply = bytearray()
    try:
        arm()
        sock.sendall(data)
        result["sent"] = len(data)
        while len(reply) < len(data):
            arm()
            chunk = sock.recv(len(data) - len(reply))
            if not chunk:
                break
            reply += chunk
    except OSError as exc:
        result.update(cli.failure(exc))
    else:
        if reply == data:
            result["outcome"] = Outcome.ECHOED.value
        elif len(reply) < len(data):
            result.update(outcome=Outcome.CLOSED.value, detail="the server closed before the whole echo came back")
        else:
            result["outcome"] = Outcome.MISMATCH.value
    result["received"] = len(reply)
    result["reply"] = bytes(reply[:200]).decode("utf-8", "replace")
    return result


def empty_result() -> dict[str, Any]:
    """Every key of the client result, so that the set never depends on the outcome (``elapsed_ms`` is the frame's)."""
    return {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None,
        "target": None, "peer": None, "local": None,
        "sent": 0, "received": 0, "reply": None,
    }


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send text, read the echo, print one JSON result.

    Send text over TCP and check that it comes back unchanged.
    """
    result = empty_result() | {"target": str(args.to)}
    try:
        with cli.connect(args.to, args.timeout) as sock:
            result.update(cli.addresses(sock))
            result.update(exchange(sock, args.send.encode(), args.timeout))  # which reports its own failures
    except OSError as exc:  # connecting failed
        result.update(cli.failure(exc))
    return result


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo for one client at a time.

    Blocking TCP echo server.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as listening:
        serve_forever(listening, log, timeout=args.timeout)


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("echo", __doc__, serve, client, send="text to send")
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="close a client that sends nothing for S seconds, so the next one gets its turn (default: 30)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
