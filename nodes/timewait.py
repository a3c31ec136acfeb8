"""TIME_WAIT: the side that closes first keeps the connection's port for a while after it is gone.

    python -m nodes.timewait serve --bind 0.0.0.0 --port 65432
    python -m nodes.timewait client --to 198.18.0.2:65432 --send "Hello, world"

The server serves exactly one connection and exits. It stops listening as
soon as it has accepted, echoes the client's message, and closes first
(shutdown, a FIN), then waits for the client's FIN before it closes its
socket. The side that closes first is the one that enters TIME_WAIT: the
kernel keeps the connection (server address and port, client address and
port) for 60 s after both FINs, so that stray segments of it cannot be
mistaken for a new connection's. The process is gone, no socket listens,
and yet the port is taken: a new bind() there fails with EADDRINUSE unless
both the old socket and the new one set SO_REUSEADDR (this server sets it,
as ``nodes.listen`` does for every server here, unless ``--no-reuse-addr``). ``ss -tan`` shows the
TIME-WAIT entry on the server's host.

The client sends its message, reads until the server's end of file, and
closes only then.

Client result (one JSON object on stdout), keys:
  outcome              echoed (the message came back, then end of file),
                       mismatch, closed (end of file before the whole echo),
                       or a failure word (refused, timeout, reset, ...)
  errno, detail        errno name and words of a failure, or null
  target, peer, local  the server as given, and the connection's addresses
  sent, received       bytes
  reply                what came back (first 200 bytes, as text)
  server_closed_first  true when the server's FIN arrived before the client closed
  elapsed_ms           connect to the server's end of file
"""

from __future__ import annotations

import argparse
import logging
import socket
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Serve one connection, close first, exit.

    Echo one message on one connection, close first (so TIME_WAIT is on this side), and exit.
    """
    with cli.listener(args, socket.SOCK_STREAM, log, reuse_addr=not args.no_reuse_addr) as listening:
        conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
    log.info("accepted %s, stopped listening", format_sockaddr(address))
    with conn:
        conn.settimeout(args.timeout)
        try:
            data = conn.recv(65536)
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            log.info("echoed %d bytes and closed first (FIN)", len(data))
            while conn.recv(65536):  # until the client's FIN
                pass
        except OSError as exc:
            log.warning("error %s: %s", format_sockaddr(address), exc.strerror or exc)
        else:
            local = format_sockaddr(conn.getsockname())
            log.info("the client closed too: %s stays in TIME_WAIT on this host for 60 s", local)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send a message, read until the server closes, print one JSON result.

    Send a message and read the echo until the server closes first.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "peer": None,
        "local": None, "sent": 0, "received": 0, "reply": None, "server_closed_first": False,
    }
    text = args.send.encode()
    try:
        with cli.connect(args.to, args.timeout) as sock:
            result.update(cli.addresses(sock))
            sock.sendall(text)
            result["sent"] = len(text)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            result["server_closed_first"] = True  # its end of file came while this socket was open
    except OSError as exc:
        result.update(cli.failure(exc))
    else:
        result.update(received=len(reply), reply=reply[:200].decode("utf-8", "replace"))
        if reply == text:
            result["outcome"] = Outcome.ECHOED.value
        else:
            result["outcome"] = (Outcome.CLOSED if len(reply) < len(text) else Outcome.MISMATCH).value
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("timewait", __doc__, serve, client, send="text to send")
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="give up on a client silent for S seconds (default: 30)")
    s.add_argument("--no-reuse-addr", action="store_true",
                   help="do not set SO_REUSEADDR: then while TIME_WAIT lasts, not even a socket that sets it "
                        "can bind the port")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
