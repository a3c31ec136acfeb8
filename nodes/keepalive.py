"""TCP keepalive: how an idle connection notices a peer that vanished, and what happens without it.

    python -m nodes.keepalive serve --bind 0.0.0.0 --port 65432
    python -m nodes.keepalive client --to 198.18.0.2:65432 --keepalive --idle-for 6
    python -m nodes.keepalive client --to 198.18.0.2:65432 --idle-for 6 --timeout 2

An idle TCP connection sends nothing, so a peer that vanished (its host
crashed, its cable pulled, a firewall now dropping its packets) is never
noticed: a program blocked in ``recv`` waits for ever. SO_KEEPALIVE makes
the kernel probe a connection that has been idle for TCP_KEEPIDLE seconds,
every TCP_KEEPINTVL seconds; a live peer's kernel answers each probe (the
program sees nothing of it), and after TCP_KEEPCNT unanswered probes the
kernel gives up on the connection: the blocked ``recv`` fails with
ETIMEDOUT. (Without the options, Linux starts probing after 2 hours.)

The server echoes each connection (a thread each) until the client closes.

The client connects, sets the keepalive options if ``--keepalive``, and
waits ``--idle-for`` seconds in ``recv``, expecting nothing: the server
never speaks first. If the kernel gives up on the connection meanwhile,
that ``recv`` fails, and the client says when. If the wait passes, the
client sends ``--send`` and reads the echo, with ``--timeout`` for it.

Client result (one JSON object on stdout), keys:
  outcome         echoed (the connection outlived the wait and the echo
                  came back), or the failure: timeout with errno ETIMEDOUT
                  (the kernel gave up on the connection during the wait),
                  timeout with errno null (the echo did not come in
                  --timeout), reset, refused, ...
  errno, detail   errno name and words of the failure, or null
  target, peer, local   the server as given, and the connection's addresses
  keepalive       whether SO_KEEPALIVE was set
  idle, interval, count   TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT as the
                  kernel reports them after setting (null without --keepalive)
  noticed         whether the connection failed during the idle wait
  noticed_ms      when it failed, from the connection's start (or null)
  step            where it ended: connect, idle (the wait) or echo
  elapsed_ms      connect to the end
"""

from __future__ import annotations

import argparse
import logging
import select
import socket
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

BUFSIZE = 65536


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


# -- server --------------------------------------------------------------------

def echo(conn: socket.socket, peer: str, log: logging.Logger) -> None:
    """Echo one connection until its client closes; a connection the client's kernel gave up on ends here too."""
    with conn:
        total = 0
        try:
            while data := conn.recv(BUFSIZE):
                conn.sendall(data)
                total += len(data)
        except OSError as exc:
            log.warning("error %s: %s", peer, exc.strerror or exc)
        else:
            log.info("closed %s (%d bytes echoed)", peer, total)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo each connection on a thread of its own.

    Echo every connection at once, each on its own thread, until its client closes.
    """
    handlers = cli.Handlers()
    try:
        with cli.listener(args, socket.SOCK_STREAM, log) as listening:
            while True:
                conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
                peer = format_sockaddr(address) or "?"
                log.info("accepted %s", peer)
                handlers.start(conn, echo, peer, log)
    finally:
        handlers.stop()  # shuts every connection down, which ends its thread's recv


# -- client --------------------------------------------------------------------

def keep_alive(sock: socket.socket, idle: int, interval: int, count: int) -> dict[str, int]:
    """Turn keepalive on with these timers; return them as the kernel now has them."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)  # seconds of silence before the first probe
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)  # seconds between unanswered probes
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)  # unanswered probes before giving up
    return {
        "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    }


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Hold an idle connection, with keepalive or without, then echo on it; print one JSON result.

    Connect, wait --idle-for seconds with nothing to send, then send and read the echo.
    """
    text = args.send.encode()
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "peer": None,
        "local": None, "keepalive": args.keepalive, "idle": None, "interval": None, "count": None,
        "noticed": False, "noticed_ms": None, "step": "connect",
    }
    try:
        sock = cli.connect(args.to, args.timeout)
    except OSError as exc:
        return result | cli.failure(exc)
    started = time.perf_counter()
    with sock:
        result.update(cli.addresses(sock))
        if args.keepalive:
            result.update(keep_alive(sock, args.idle, args.interval, args.count))
        try:
            result["step"] = "idle"
            # The server never speaks first: the socket turns readable only if the connection ends,
            # and then recv raises the kernel's error (or returns b"", the server's FIN).
            readable, _, _ = select.select([sock], [], [], args.idle_for)
            if readable:
                unasked = sock.recv(BUFSIZE)
                result.update(noticed=True, noticed_ms=cli.elapsed_ms(started),
                              outcome=(Outcome.MISMATCH if unasked else Outcome.CLOSED).value,
                              detail="the server sent something unasked" if unasked else "the server closed")
                return result
            result["step"] = "echo"
            sock.settimeout(args.timeout)
            sock.sendall(text)
            reply = bytearray()
            while len(reply) < len(text) and (chunk := sock.recv(len(text) - len(reply))):
                reply += chunk
        except OSError as exc:
            result.update(cli.failure(exc))
            if result["step"] == "idle":
                result.update(noticed=True, noticed_ms=cli.elapsed_ms(started))
        else:
            result["outcome"] = (Outcome.ECHOED if reply == text else Outcome.CLOSED).value
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("keepalive", __doc__, serve, client, client_timeout=2.0,
                              send="text to echo after the wait")
    c.add_argument("--keepalive", action="store_true",
                   help="set SO_KEEPALIVE, with the --idle, --interval and --count timers")
    c.add_argument("--idle", type=cli.positive_int, default=1, metavar="S",
                   help="TCP_KEEPIDLE: seconds idle before the first probe (default: 1)")
    c.add_argument("--interval", type=cli.positive_int, default=1, metavar="S",
                   help="TCP_KEEPINTVL: seconds between probes (default: 1)")
    c.add_argument("--count", type=cli.positive_int, default=2, metavar="N",
                   help="TCP_KEEPCNT: unanswered probes before the connection is given up (default: 2)")
    c.add_argument("--idle-for", type=cli.seconds, default=6.0, metavar="S",
                   help="how long to hold the connection idle before sending (default: 6)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
