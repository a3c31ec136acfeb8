"""A half-close: shutdown(SHUT_WR) ends one direction of a connection, and the other still works.

    python -m nodes.halfclose serve --bind 0.0.0.0 --port 65432
    python -m nodes.halfclose client --to 198.18.0.2:65432 --send "Hello, world"
    python -m nodes.halfclose client --to 198.18.0.2:65432 --end none --timeout 1

The server reads until end of file (``recv`` returns ``b""``), which is how
it knows the request is complete, however many pieces it came in; only
then does it answer, with the request's bytes reversed, and close. A
protocol with no length and no delimiter works this way: "send, shut down
writing, read to end of file" (an HTTP/1.0 request body, a shell's pipe,
``nc -N``).

The client sends ``--send`` in ``--pieces`` sends, then ends as ``--end``
says, then reads until end of file:

  shutdown  shutdown(SHUT_WR): its kernel sends a FIN, the server's recv
            returns b"", and the server answers; the client can still
            read, because only its writing is over.
  none      nothing: the server is still waiting for the rest of the
            request, the client for the answer, and neither comes; the
            client's --timeout ends it.

With ``--write-after`` the client sends once more after shutting down
writing: the kernel refuses that send at once with EPIPE (broken pipe),
and the client reads the answer all the same.

Client result (one JSON object on stdout), keys:
  outcome             ok (the answer is the request reversed, then end of
                      file), mismatch (another answer), or the failure
                      (timeout, reset, refused, ...)
  errno, detail       errno name and words of the failure, or null
  target, peer, local the server as given, and the connection's addresses
  end                 how the client ended its writing: shutdown or none
  pieces              sends the request was written in
  sent                bytes of the request sent
  write_after         what the send after the shutdown returned: "ok", an
                      errno name (EPIPE), or null if none was made
  received            bytes of answer received
  reply               the answer (first 200 bytes, as text)
  eof                 whether the read ended with end of file
  elapsed_ms          connect to the end of the reading
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

ENDS = ("shutdown", "none")
BUFSIZE = 65536


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


# -- server --------------------------------------------------------------------

def read_to_eof(sock: socket.socket) -> tuple[bytes, int]:
    """Everything the peer sends until it shuts down its writing, and how many recv calls it took."""
    data, calls = bytearray(), 0
    while True:
        chunk = sock.recv(BUFSIZE)
        calls += 1
        if not chunk:  # b"": the peer's FIN, its writing is over
            return bytes(data), calls
        data += chunk


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Read each request to end of file, then answer it reversed.

    One connection at a time: read until end of file, send the bytes back reversed, close.
    """
    with cli.listener(args, socket.SOCK_STREAM, log) as listening:
        while True:
            conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
            peer = format_sockaddr(address)
            with conn:
                conn.settimeout(args.timeout)
                try:
                    request, calls = read_to_eof(conn)
                    log.info("%s: end of file after %d bytes in %d recv calls; answering", peer, len(request), calls)
                    conn.sendall(request[::-1])  # our direction is still open: the client only shut down its own
                except TimeoutError:
                    log.warning("%s: no end of file in %g s; closing", peer, args.timeout)
                except OSError as exc:
                    log.warning("error %s: %s", peer, exc.strerror or exc)
                else:
                    log.info("%s: answered %d bytes, closed", peer, len(request))


# -- client --------------------------------------------------------------------

def send_in_pieces(sock: socket.socket, data: bytes, pieces: int) -> None:
    """Send ``data`` in up to ``pieces`` sends, a little apart, so that the server sees several recv calls."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        if start:
            time.sleep(0.05)
        sock.sendall(data[start:start + size])


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send, end the writing (or not), read to end of file, print one JSON result.

    Send the text, shut down writing as --end says, and read the answer until end of file.
    """
    request = args.send.encode()
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "peer": None,
        "local": None, "end": args.end, "pieces": args.pieces, "sent": 0, "write_after": None, "received": 0,
        "reply": None, "eof": False,
    }
    answer = bytearray()
    try:
        with cli.connect(args.to, args.timeout) as sock:
            result.update(cli.addresses(sock))
            send_in_pieces(sock, request, args.pieces)
            result["sent"] = len(request)
            if args.end == "shutdown":
                sock.shutdown(socket.SHUT_WR)  # a FIN: "that is all"; reading stays open
                if args.write_after:
                    try:
                        sock.send(b"more")
                        result["write_after"] = "ok"
                    except OSError as exc:
                        result["write_after"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            while chunk := sock.recv(BUFSIZE):  # the client's own --timeout bounds each wait
                answer += chunk
            result["eof"] = True
    except OSError as exc:
        result.update(cli.failure(exc))
    else:
        result["outcome"] = (Outcome.OK if bytes(answer) == request[::-1] else Outcome.MISMATCH).value
    result.update(received=len(answer), reply=bytes(answer[:200]).decode("utf-8", "replace"))
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("halfclose", __doc__, serve, client, send="the request")
    s.add_argument("--timeout", type=cli.seconds, default=10.0, metavar="S",
                   help="give up on a client whose end of file has not come in S seconds (default: 10)")
    c.add_argument("--end", choices=ENDS, default="shutdown",
                   help="after sending: shutdown, shutdown(SHUT_WR); none, keep writing open (default: shutdown)")
    c.add_argument("--pieces", type=cli.positive_int, default=1, metavar="N",
                   help="send the request in N sends, 50 ms apart (default: 1)")
    c.add_argument("--write-after", action="store_true",
                   help="with --end shutdown: send once more after the shutdown (it fails: EPIPE)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
