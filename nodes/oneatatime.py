"""One client at a time: a blocking server, and a second client that is connected but not served.

    python -m nodes.oneatatime serve --bind 0.0.0.0 --port 65432
    python -m nodes.oneatatime client --to 198.18.0.2:65432 --wait 2

The server is the tutorial's first: ``accept``, then ``recv`` and
``sendall`` until the client closes, then ``accept`` again. While it is
inside that inner loop it calls nothing else, so a second client is not
served, though it is connected: the kernel completes the handshake on its
own and queues the connection in the listen backlog, and the bytes that
client sends wait in that connection's receive buffer.

The client shows it by order, not by time. It opens connection A and has
a message echoed on it (so the server is now in A's loop), keeps A open,
opens connection B and sends on it, and waits up to ``--wait`` seconds for
B's echo. Then it closes A and waits again, up to ``--timeout``, for B's
echo. Against this server, B connects at once, gets nothing while A is
open, and gets its echo once A has left. Against a server with a thread or
a process per connection (``nodes.sockserver``), B's echo comes while A is
still open.

Client result (one JSON object on stdout), keys:
  outcome                   echoed (B's echo came back, before or after A
                            left), timeout (it never did), or a failure
                            (refused, reset, ...) of either connection
  errno, detail             errno name and words of that failure, or null
  target, peer              the server as given, and its address
  first_local, second_local the local addresses of A and B
  first_echoed              whether A's own message was echoed
  connected_while_busy      whether B's connect succeeded while A was served
  echoed_while_first_open   whether B's echo came while A was still open
  echoed_after_first_left   whether B's echo came only once A was closed
  second_echo_ms            B's send to its echo, in milliseconds (or null)
  elapsed_ms                A's connect to the end
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

def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo for one client at a time: the others wait, connected, in the backlog.

    The tutorial's blocking echo server: accept, echo until the client closes, accept the next.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as listening:
        while True:
            conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
            peer = format_sockaddr(address)
            log.info("accepted %s", peer)
            with conn:
                conn.settimeout(args.timeout)  # a client silent this long loses its turn
                echoed = 0
                try:
                    while data := conn.recv(BUFSIZE):  # while here, nobody else is served
                        conn.sendall(data)
                        echoed += len(data)
                except OSError as exc:
                    log.warning("error %s: %s", peer, exc.strerror or exc)
                else:
                    log.info("closed %s (%d bytes echoed)", peer, echoed)


# -- client --------------------------------------------------------------------

def echo_within(sock: socket.socket, sent: bytes, seconds: float, reply: bytearray) -> bool:
    """Read into ``reply`` until it holds the whole echo of ``sent``; False if ``seconds`` pass first.

    A failed connection raises its error; a server that closes before the
    echo is whole raises EOFError.
    """
    deadline = time.monotonic() + seconds
    while len(reply) < len(sent):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return False
        chunk = sock.recv(len(sent) - len(reply))
        if not chunk:
            raise EOFError("the server closed before the echo came back")
        reply += chunk
    return True


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Hold connection A while B asks for its echo, then let A go; print one JSON result.

    Open A and have it echoed, open B and send on it while A stays open, then close A and wait for B's echo.
    """
    text = args.send.encode()
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "peer": None,
        "first_local": None, "second_local": None, "first_echoed": False, "connected_while_busy": False,
        "echoed_while_first_open": False, "echoed_after_first_left": False, "second_echo_ms": None,
    }
    try:
        with cli.connect(args.to, args.timeout) as first:  # A
            result.update(peer=format_sockaddr(first.getpeername()), first_local=format_sockaddr(first.getsockname()))
            first.sendall(text)
            if not echo_within(first, text, args.timeout, bytearray()):
                raise TimeoutError("A's echo did not come back")
            result["first_echoed"] = True  # so the server is in A's loop now, and stays there while A is open
            with cli.connect(args.to, args.timeout) as second:  # B: the server's kernel completes the handshake
                result.update(connected_while_busy=True, second_local=format_sockaddr(second.getsockname()))
                second.sendall(text)  # taken by B's send buffer, then the server's receive buffer
                sent = time.perf_counter()
                reply = bytearray()
                if echo_within(second, text, args.wait, reply):
                    result["echoed_while_first_open"] = True
                else:
                    first.close()  # A leaves: the server's recv returns b"", and it accepts B
                    result["echoed_after_first_left"] = echo_within(second, text, args.timeout, reply)
                if reply == text:
                    result.update(outcome=Outcome.ECHOED.value, second_echo_ms=cli.elapsed_ms(sent))
                else:
                    result.update(outcome=Outcome.TIMEOUT.value, detail="B's echo did not come back")
    except (OSError, EOFError) as exc:
        result.update(failure(exc))
    return result


def failure(exc: BaseException) -> dict[str, Any]:
    """A failed socket call in the outcome vocabulary; the server's early end of file is ``closed``."""
    if isinstance(exc, EOFError):
        return {"outcome": Outcome.CLOSED.value, "errno": None, "detail": str(exc)}
    return cli.failure(exc)


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("oneatatime", __doc__, serve, client, send="text each connection sends")
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="close a client that sends nothing for S seconds, so the next one gets its turn (default: 30)")
    c.add_argument("--wait", type=cli.seconds, default=1.0, metavar="S",
                   help="how long B waits for its echo while A is still open (default: 1)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
