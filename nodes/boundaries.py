"""Message boundaries: a TCP stream forgets them, UDP datagrams keep them; send may take less than asked.

    python -m nodes.boundaries serve --bind 0.0.0.0 --port 65432
    python -m nodes.boundaries client --to 198.18.0.2:65432 --send "message" --count 10
    python -m nodes.boundaries client --to 198.18.0.2:65432 --size 4194304 --nonblocking
    python -m nodes.boundaries serve --proto udp --bind 0.0.0.0 --port 65432
    python -m nodes.boundaries client --proto udp --to 198.18.0.2:65432 --send "message" --count 10

The client writes ``--count`` messages, each with its own ``send`` calls, and
the server reports how many ``recv`` calls it took to read them, and of which
sizes. The exchange is made deterministic on purpose:

TCP: the client first sends the total as an 8-byte big-endian number, then
the messages; the server waits until every byte is in its receive queue
(``FIONREAD``) before its first ``recv``, so ten 12-byte sends are read by
one ``recv`` of 120 bytes: the stream kept the bytes and their order, not
where one ``send`` ended. A total larger than ``WAIT_LIMIT`` cannot all wait
in the receive queue: the server starts reading once the queue has stopped
growing for ``QUIET`` seconds (the client's send buffer and the server's
receive window are full), and then reads it as it comes. So a client's one
non-blocking ``send`` always meets a full pipe, never a reader that makes
room meanwhile. The server answers with one JSON line,
``{"received": N, "recv_sizes": [...]}``, and closes.

UDP: each datagram is one ``recvmsg`` result, whatever else is waiting; the
server answers each one with ``{"size": N, "truncated": bool}`` (a datagram
longer than the server's ``--bufsize`` is cut, and the rest is lost).

``send`` copies what fits in the socket's send buffer and returns that count:
on a non-blocking socket (``--nonblocking``: one ``send`` call for the whole
payload) it returns less than asked as soon as the payload is larger than
the buffer, and a program that ignores the return value loses the rest.
``sendall`` is a loop of ``send`` calls; the client counts them.

Client result (one JSON object on stdout), keys:
  outcome         ok (the server got every byte, or answered every datagram),
                  closed (the server closed first), mismatch, or a failure
                  word (refused, timeout, reset, ...)
  errno, detail   errno name and words of a failure, or null
  proto           "tcp" or "udp"
  target, peer, local   the server as given, and the socket's addresses
  attempts        each address the name resolved to that was tried, in
                  getaddrinfo's order, until one answered: [{"peer",
                  "outcome", "errno", "detail", "elapsed_ms"}, ...]. TCP tries
                  the next address when connect() fails; UDP when no answer
                  at all comes from one within --timeout
  messages        messages written (each with its own send calls)
  bytes_sent      payload bytes sent (TCP: without the 8-byte total)
  send_calls      send()/sendto() calls made for the payload
  first_send      what the first send() call returned
  receives        recv()/recvmsg() calls the server needed for the payload
                  (UDP: datagrams it answered, so far if the answers stopped)
  recv_sizes      their sizes, in order (the first 100)
  bytes_received  payload bytes the server received
  truncated       UDP: datagrams the server received cut short
  elapsed_ms      connect (or first send) to the server's last answer
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import socket
import struct
import termios
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr, resolve, try_each
from nodes.outcomes import Outcome

TOTAL = struct.Struct(">Q")
WAIT_LIMIT = 32768  # a total up to this size waits whole in the receive queue before the first recv
QUIET = 0.2  # a larger one is read once the queue has not grown for this long: the client's pipe is full
MAX_DATAGRAM = 65535
SHOWN_SIZES = 100


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


# -- server --------------------------------------------------------------------

def queued(conn: socket.socket) -> int:
    """Bytes waiting in the socket's receive queue (FIONREAD), unread."""
    return struct.unpack("i", fcntl.ioctl(conn, termios.FIONREAD, b"\0" * 4))[0]


def receive_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_stream(conn: socket.socket, bufsize: int, timeout: float) -> dict[str, Any]:
    """Read the announced total, then the payload in recv calls of up to ``bufsize``; report their sizes."""
    header = receive_exactly(conn, TOTAL.size)
    if len(header) < TOTAL.size:
        raise ConnectionError("the client closed before announcing its total")
    (total,) = TOTAL.unpack(header)
    deadline = time.monotonic() + timeout
    if total <= WAIT_LIMIT:  # let it all arrive first, so that nothing but the stream decides the pieces
        while queued(conn) < total and time.monotonic() < deadline:
            time.sleep(0.002)
    else:  # it cannot all wait here: start reading once the pipe is full (the queue stopped growing)
        size, still_since = queued(conn), time.monotonic()
        while time.monotonic() - still_since < QUIET and time.monotonic() < deadline:
            time.sleep(0.01)
            if (now := queued(conn)) != size:
                size, still_since = now, time.monotonic()
    sizes: list[int] = []
    received = 0
    while received < total:
        chunk = conn.recv(min(bufsize, total - received))
        if not chunk:
            break
        sizes.append(len(chunk))
        received += len(chunk)
    return {"received": received, "recv_sizes": sizes}


def serve_tcp(sock: socket.socket, args: argparse.Namespace, log: logging.Logger) -> None:
    while True:
        conn, address = cli.accept(sock, log)  # sock.accept(); a failed one is logged and waited out
        peer = format_sockaddr(address)
        with conn:
            conn.settimeout(args.timeout)
            try:
                report = read_stream(conn, args.bufsize, args.timeout)
                conn.sendall(json.dumps(report).encode() + b"\n")
            except (OSError, ConnectionError) as exc:
                log.warning("error %s: %s", peer, getattr(exc, "strerror", None) or exc)
                continue
        sizes = report["recv_sizes"]
        log.info("read %d bytes from %s in %d recv calls%s", report["received"], peer, len(sizes),
                 f" of {sizes}" if len(sizes) <= 10 else "")


def serve_udp(sock: socket.socket, args: argparse.Namespace, log: logging.Logger) -> None:
    while True:
        try:
            data, _, flags, address = sock.recvmsg(args.bufsize)
            truncated = bool(flags & socket.MSG_TRUNC)
            sock.sendto(json.dumps({"size": len(data), "truncated": truncated}).encode(), address)
        except OSError as exc:  # e.g. an ICMP error reported for an earlier answer
            log.warning("error: %s", exc.strerror or exc)
            continue
        log.info("read one datagram of %d bytes from %s%s", len(data), format_sockaddr(address),
                 " (truncated)" if truncated else "")


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Report how the client's messages were received.

    Read each client's messages and answer with the sizes of the recv calls that read them.
    """
    kind = socket.SOCK_STREAM if args.proto == "tcp" else socket.SOCK_DGRAM
    with cli.listener(args, kind, log) as sock:
        (serve_tcp if args.proto == "tcp" else serve_udp)(sock, args, log)


# -- client --------------------------------------------------------------------

def payload(args: argparse.Namespace) -> list[bytes]:
    """The messages to write: ``--count`` copies of the text, or of ``--size`` pattern bytes."""
    message = (b"0123456789abcdef" * (args.size // 16 + 1))[: args.size] if args.size else args.send.encode()
    return [message] * args.count


def send_all(sock: socket.socket, data: bytes, result: dict[str, Any]) -> None:
    """What ``sendall`` does, counting the send calls: send until every byte is taken."""
    view = memoryview(data)
    while view:
        taken = sock.send(view)
        if result["first_send"] is None:
            result["first_send"] = taken
        result["send_calls"] += 1
        result["bytes_sent"] += taken
        view = view[taken:]


def stream(args: argparse.Namespace, result: dict[str, Any]) -> None:
    messages = payload(args)
    with cli.connect(args.to, args.timeout, attempts=result["attempts"]) as sock:  # each address in turn
        result.update(cli.addresses(sock))
        sock.sendall(TOTAL.pack(sum(map(len, messages))))
        if args.nonblocking:  # one send call for everything: it takes what fits in the buffer
            whole = b"".join(messages)
            sock.setblocking(False)
            try:
                taken = sock.send(whole)
            except BlockingIOError:
                taken = 0
            sock.settimeout(args.timeout)
            result.update(first_send=taken, send_calls=1, bytes_sent=taken)
            send_all(sock, whole[taken:], result)
        else:
            for message in messages:
                send_all(sock, message, result)
        result["messages"] = len(messages)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    if not reply:
        result.update(outcome=Outcome.CLOSED.value, detail="the server closed without a report")
        return
    report = json.loads(reply)
    sizes = report["recv_sizes"]
    result.update(receives=len(sizes), recv_sizes=sizes[:SHOWN_SIZES], bytes_received=report["received"])
    same = report["received"] == result["bytes_sent"]
    result["outcome"] = (Outcome.OK if same else Outcome.MISMATCH).value


def datagrams(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Send each message as a datagram and collect the server's answers, one per datagram.

    UDP has no handshake to fail, so an address the name resolves to fails
    when not one answer comes back from it in ``--timeout`` (this socket is
    unconnected: an ICMP port unreachable is not reported to it); then the
    same messages go to the next address. Once an answer came, what follows
    (a timeout while waiting for the others, say) is that address's result.
    """
    messages = payload(args)

    def exchange(family: int, sockaddr: tuple) -> tuple[list[int], int, OSError | None]:
        result.update(first_send=None, send_calls=0, bytes_sent=0, peer=None)  # this address's counts only
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(args.timeout)
            for message in messages:
                taken = sock.sendto(message, sockaddr)
                result["first_send"] = taken if result["first_send"] is None else result["first_send"]
                result["send_calls"] += 1
                result["bytes_sent"] += taken
            result["messages"] = len(messages)
            result["local"] = format_sockaddr(sock.getsockname())
            sizes: list[int] = []
            truncated = 0
            try:
                while len(sizes) < len(messages):
                    reply, source = sock.recvfrom(MAX_DATAGRAM)
                    result["peer"] = format_sockaddr(source)
                    answer = json.loads(reply)
                    sizes.append(answer["size"])
                    truncated += bool(answer["truncated"])
            except OSError as exc:
                if not sizes:
                    raise  # nothing came back from this address: try the next
                return sizes, truncated, exc
        return sizes, truncated, None

    sizes, truncated, late = try_each(resolve(args.to, socket.SOCK_DGRAM), exchange, result["attempts"])
    result.update(receives=len(sizes), recv_sizes=sizes[:SHOWN_SIZES], bytes_received=sum(sizes),
                  truncated=truncated, outcome=Outcome.OK.value)
    if late is not None:  # the server answered some datagrams, then no more: what did arrive stays reported
        raise late


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Write messages, print how the server received them, as JSON.

    Write messages over TCP or UDP and report how the server's recv calls cut them.
    """
    if args.nonblocking and args.proto != "tcp":
        cli.fail("--nonblocking is for TCP: a UDP send takes a whole datagram or nothing")
    if args.proto == "udp" and (args.size or len(args.send.encode())) > cli.MAX_UDP_PAYLOAD:
        cli.fail(f"a UDP datagram carries at most {cli.MAX_UDP_PAYLOAD} bytes over IPv4")
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "proto": args.proto,
        "target": str(args.to), "peer": None, "local": None, "messages": 0, "bytes_sent": 0, "send_calls": 0,
        "first_send": None, "receives": None, "recv_sizes": None, "bytes_received": None, "truncated": None,
        "attempts": [],
    }
    try:
        (stream if args.proto == "tcp" else datagrams)(args, result)
    except OSError as exc:
        result.update(cli.failure(exc))
    except (ValueError, KeyError, TypeError) as exc:
        result.update(outcome=Outcome.MISMATCH.value, detail=f"not a boundaries report: {exc}")
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("boundaries", __doc__, serve, client)
    s.add_argument("--proto", choices=["tcp", "udp"], default="tcp", help="transport (default: tcp)")
    s.add_argument("--bufsize", type=cli.positive_int, default=65536, metavar="N",
                   help="read at most N bytes per recv call; a longer datagram is truncated (default: 65536)")
    s.add_argument("--timeout", type=cli.seconds, default=10.0, metavar="S",
                   help="give up on a TCP client silent for S seconds (default: 10)")
    c.add_argument("--proto", choices=["tcp", "udp"], default="tcp", help="transport (default: tcp)")
    what = c.add_mutually_exclusive_group()
    cli.add_send_argument(what, "the message to write")
    what.add_argument("--size", type=cli.positive_int, metavar="N", help="write N pattern bytes as the message instead")
    c.add_argument("--count", type=cli.positive_int, default=1, metavar="N",
                   help="write the message N times, each with its own send calls (default: 1)")
    c.add_argument("--nonblocking", action="store_true",
                   help="TCP: one send() call for the whole payload on a non-blocking socket (reported as "
                        "first_send), then send the rest")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
