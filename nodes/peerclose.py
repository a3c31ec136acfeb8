"""When the other side closes: end of file, connection reset, broken pipe.

    python -m nodes.peerclose serve --bind 0.0.0.0 --port 65432 --mode close
    python -m nodes.peerclose client --to 198.18.0.2:65432 --steps send,recv
    python -m nodes.peerclose client --to 198.18.0.2:65432 --steps send,recv,send,wait,send

The server takes one connection at a time and ends it as ``--mode`` says,
always after the client's first message has arrived, so that what the client
sees never depends on timing:

  close    read the message, then close(): a FIN. The client's recv returns
           b"" (end of file).
  unread   wait until the message has arrived but never read it, then
           close(): closing a socket with unread data aborts the connection
           with a RST instead of a FIN. The client's recv fails: ECONNRESET.
  abort    read the message, then close() with SO_LINGER set to 0 seconds:
           the deliberate way to send a RST.

The client makes the steps given, in order, and stops at the first that
fails: ``send`` (one send of the text), ``recv`` (one recv: data, end of
file, or an error) and ``wait`` (until the peer's RST has arrived, read from
the kernel's TCP_INFO on Linux; a short pause elsewhere). Writing after the
peer closed succeeds once: the bytes go out, and the peer's kernel answers
with a RST. It still keeps its end of the connection (in FIN-WAIT-2 once its
FIN is acknowledged), but no program holds it, and close() gave up reading
too: data that nobody can ever read is refused with a RST. The next write fails
with EPIPE (broken pipe; Python ignores SIGPIPE, so it is an exception, not
the end of the process).

Client result (one JSON object on stdout), keys:
  outcome         the outcome of the last step made: ok (send, wait, or a
                  recv with data), closed (a recv returned end of file), or
                  the failure that stopped the steps (reset, broken-pipe,
                  refused, timeout, ...)
  errno, detail   errno name and words of that failure, or null
  target, peer, local   the server as given, and the connection's addresses
  steps           each step made: {"step", "outcome", "errno", "bytes", "elapsed_ms"}
  steps_done      how many steps were made
  failed_step     the name of the step that failed, or null
  elapsed_ms      connect to the end of the last step
"""

from __future__ import annotations

import argparse
import logging
import select
import socket
import struct
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

MODES = ("close", "unread", "abort")
STEPS = ("send", "recv", "wait")
TCP_CLOSE = 7  # tcpi_state once the connection is gone (after a RST, say)


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


# -- server --------------------------------------------------------------------

def end(conn: socket.socket, mode: str, timeout: float) -> str:
    """Wait for the client's message, then end the connection as ``mode`` says; say what was done."""
    readable, _, _ = select.select([conn], [], [], timeout)
    if not readable:
        return f"nothing arrived in {timeout:g} s; closed"
    if mode == "unread":
        return "closed with the message unread: the kernel sends a RST"
    data = conn.recv(65536)
    if mode == "abort":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return f"read {len(data)} bytes, closed with SO_LINGER 0: a RST"
    return f"read {len(data)} bytes, closed: a FIN"


def serve_forever(sock: socket.socket, args: argparse.Namespace, log: logging.Logger) -> None:
    while True:
        conn, address = cli.accept(sock, log)  # sock.accept(); a failed one is logged and waited out
        peer = format_sockaddr(address)
        with conn:
            try:
                done = end(conn, args.mode, args.timeout)
            except OSError as exc:
                log.warning("error %s: %s", peer, exc.strerror or exc)
                continue
        log.info("%s: %s", peer, done)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """End each connection as the mode says.

    Take one connection at a time; once the client's first message has arrived, end it with a FIN or a RST.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as sock:
        log.info("mode %s", args.mode)
        serve_forever(sock, args, log)


# -- client --------------------------------------------------------------------

def wait_for_reset(sock: socket.socket, timeout: float) -> bool:
    """Wait until the kernel has torn the connection down (a RST arrived); False if it did not in time."""
    if not hasattr(socket, "TCP_INFO"):  # not Linux: a pause long enough for a LAN
        time.sleep(min(timeout, 0.2))
        return True
    deadline = time.monotonic() + timeout
    while sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] != TCP_CLOSE:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def step(sock: socket.socket, name: str, text: bytes, timeout: float) -> dict[str, Any]:
    made: dict[str, Any] = {"step": name, "outcome": Outcome.OK.value, "errno": None, "bytes": 0, "elapsed_ms": 0.0}
    started = time.perf_counter()
    try:
        if name == "send":
            made["bytes"] = sock.send(text)
        elif name == "recv":
            made["bytes"] = len(data := sock.recv(65536))
            if not data:
                made["outcome"] = Outcome.CLOSED.value
        elif not wait_for_reset(sock, timeout):
            made["outcome"] = Outcome.TIMEOUT.value
    except OSError as exc:
        made.update(cli.failure(exc))  # outcome, errno and a detail, which marks the step as failed
    made["elapsed_ms"] = cli.elapsed_ms(started)
    return made


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Make send/recv/wait steps, print what each returned, as JSON.

    Connect, make the steps in order, and report what each one returned.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "peer": None,
        "local": None, "steps": [], "steps_done": 0, "failed_step": None,
    }
    try:
        sock = cli.connect(args.to, args.timeout)
    except OSError as exc:
        result.update(cli.failure(exc))
    else:
        with sock:
            result.update(cli.addresses(sock))
            for name in args.steps:
                made = step(sock, name, args.send.encode(), args.timeout)
                detail = made.pop("detail", None)
                result["steps"].append(made)
                result.update(outcome=made["outcome"], errno=made["errno"], detail=detail)
                if detail is not None:
                    result["failed_step"] = name
                    break
            result["steps_done"] = len(result["steps"])
    return result


def steps(text: str) -> list[str]:
    """An argparse type: comma-separated steps."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STEPS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: give steps among {', '.join(STEPS)}, separated by commas")
    return names


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("peerclose", __doc__, serve, client, send="what each send step sends")
    s.add_argument("--mode", choices=MODES, default="close",
                   help="close: read, then close (FIN); unread: close without reading (RST); "
                        "abort: read, then close with SO_LINGER 0 (RST) (default: close)")
    s.add_argument("--timeout", type=cli.seconds, default=10.0, metavar="S",
                   help="close a client that sends nothing for S seconds (default: 10)")
    c.add_argument("--steps", type=steps, default=["send", "recv"], metavar="STEPS",
                   help="comma-separated steps among send, recv, wait (default: send,recv)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
