"""UDP echo: datagrams, not a stream; nothing is resent, nothing is in order, nobody is connected.

    python -m nodes.udpecho serve --bind :: --dual-stack --port 65432
    python -m nodes.udpecho client --to 198.18.0.2:65432 --send "Hello, world"
    python -m nodes.udpecho client --to 198.18.0.2:65432 --connected
    python -m nodes.udpecho client --to 198.18.0.2:65432 --count 1000 --interval 0.001 --size 200

The server sends each datagram back to the address it came from. There is
no connection to accept or close: one socket serves every client.

The client shows the two ways to use a UDP socket. Unconnected
(``sendto``/``recvfrom``), it learns nothing when nobody listens: the
kernel's ICMP "port unreachable" is not delivered to it, so it just times
out. With ``--connected`` it calls ``connect`` first (no packet is sent: it
only fixes the peer), and then that ICMP error surfaces as ECONNREFUSED,
outcome ``refused``.

A name may resolve to several addresses (IPv6 first, often), and a server
may listen on only some of them. The client tries each, in order, as a TCP
client does; but UDP has no handshake that can fail, so an address fails
when no echo at all comes back from it: at once with ``--connected`` (the
ICMP port unreachable surfaces as ECONNREFUSED), only after ``--timeout``
without it. The same datagrams then go to the next address; the counts are
those of the last address tried, and ``attempts`` lists each one. An
address that echoed anything is the one, however lossy.

With ``--count N`` the client sends N numbered datagrams, ``--interval``
seconds apart, and counts what the network did to them: lost, duplicated,
reordered (arrived after a later one), corrupted.

Client result (one JSON object on stdout), the same keys in both modes:
  outcome         echoed: every datagram came back unchanged; ok: some were
                  lost but those that came back were unchanged; mismatch: a
                  reply differed from what was sent; timeout: nothing came
                  back; refused (with --connected), or another failure word
  errno, detail   errno name and words of a failure, or null
  mode            "single" or "count"
  connected       whether the socket was connected
  target, peer    the server as given; the address replies came from
  local           the client's address
  attempts        each address the name resolved to that was tried, in
                  getaddrinfo's order, until one echoed: [{"peer", "outcome",
                  "errno", "detail", "elapsed_ms"}, ...]; an address that
                  echoed nothing is refused (--connected) or timeout (above)
  sent, received  datagrams sent, and distinct datagrams echoed back
  lost, duplicated, reordered, corrupted   datagram counts
  loss            lost / sent (0.0 to 1.0)
  bytes_sent, bytes_received
  rtt_ms_min, rtt_ms_avg, rtt_ms_max       round trips of the first copies, or null
  reply           the reply text in single mode (first 200 bytes), else null
  elapsed_ms      first send to the end of waiting
"""

from __future__ import annotations

import argparse
import logging
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr, resolve, try_each
from nodes.outcomes import Outcome

MAX_DATAGRAM = 65535
SEQUENCE = struct.Struct(">Q")  # the number at the front of each counted datagram


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo every datagram to its sender.

    UDP echo server.
    """
    with cli.listener(args, socket.SOCK_DGRAM, log) as sock:
        while True:
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM)
                sock.sendto(data, address)
            except OSError as exc:  # e.g. an ICMP error reported for an earlier reply
                log.warning("error: %s", exc.strerror or exc)
                continue
            if not args.quiet:
                log.info("echoed %d bytes to %s", len(data), format_sockaddr(address))


@dataclass
class Counts:
    """What came back, datagram by datagram."""

    sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    highest: int = -1
    sent_at: dict[int, float] = field(default_factory=dict)
    rtts: list[float] = field(default_factory=list)  # of first copies, in ms
    error: OSError | None = None  # what stopped the exchange early, if anything

    @property
    def received(self) -> int:
        return len(self.rtts)

    def fields(self) -> dict[str, Any]:
        lost = self.sent - self.received
        rtts = self.rtts
        return {
            "sent": self.sent, "received": self.received, "lost": lost, "duplicated": self.duplicated,
            "reordered": self.reordered, "corrupted": self.corrupted,
            "loss": round(lost / self.sent, 4) if self.sent else 0.0,
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
            "rtt_ms_min": round(min(rtts), 3) if rtts else None,
            "rtt_ms_avg": round(sum(rtts) / len(rtts), 3) if rtts else None,
            "rtt_ms_max": round(max(rtts), 3) if rtts else None,
        }


def numbered(seq: int, size: int) -> bytes:
    """Datagram number ``seq``: its number, then filler derived from it, so damage shows."""
    filler = bytes([seq % 251]) * (size - SEQUENCE.size)
    return SEQUENCE.pack(seq) + filler


class Echoes:
    """A UDP socket that sends and receives, connected or not."""

    def __init__(self, sock: socket.socket, sockaddr: tuple, connected: bool) -> None:
        self.sock, self.sockaddr, self.connected = sock, sockaddr, connected
        self.peer: str | None = None
        if connected:
            sock.connect(sockaddr)

    def send(self, data: bytes) -> int:
        return self.sock.send(data) if self.connected else self.sock.sendto(data, self.sockaddr)

    def receive(self) -> bytes:
        data, source = self.sock.recvfrom(MAX_DATAGRAM)
        self.peer = format_sockaddr(source)
        return data


def single(echoes: Echoes, text: bytes, timeout: float, counts: Counts) -> str | None:
    """Send one datagram, wait for one back; return the reply text."""
    echoes.sock.settimeout(timeout)
    started = time.perf_counter()
    try:
        counts.bytes_sent = echoes.send(text)
        counts.sent = 1
        reply = echoes.receive()
    except OSError as exc:
        counts.error = exc
        return None
    counts.bytes_received = len(reply)
    counts.rtts.append((time.perf_counter() - started) * 1000)
    if reply != text:
        counts.corrupted = 1
    return reply[:200].decode("utf-8", "replace")


def counted(echoes: Echoes, count: int, size: int, interval: float, timeout: float, counts: Counts) -> None:
    """Send ``count`` numbered datagrams at the given pace; collect echoes until ``timeout`` after the last.

    An error (ECONNREFUSED on a connected socket) ends the run, keeping the counts so far.
    """
    sock = echoes.sock
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    next_send = time.perf_counter()
    give_up = float("inf")
    try:
        while True:
            now = time.perf_counter()
            if counts.sent < count and now >= next_send:
                data = numbered(counts.sent, size)
                try:
                    counts.bytes_sent += echoes.send(data)
                except BlockingIOError:  # the socket's send buffer is full: try again shortly
                    selector.select(0.001)
                    continue
                counts.sent_at[counts.sent] = now
                counts.sent += 1
                next_send += interval
                if counts.sent == count:
                    give_up = now + timeout
            drain(echoes, counts, size)
            if counts.sent == count and (counts.received == count or now >= give_up):
                return
            wait = (next_send if counts.sent < count else give_up) - time.perf_counter()
            if wait > 0:
                selector.select(wait)
    except OSError as exc:
        counts.error = exc
    finally:
        selector.close()


def drain(echoes: Echoes, counts: Counts, size: int) -> None:
    """Take every echo waiting in the socket and judge it."""
    while True:
        try:
            data = echoes.receive()
        except BlockingIOError:
            return
        arrived = time.perf_counter()
        counts.bytes_received += len(data)
        seq = SEQUENCE.unpack_from(data)[0] if len(data) >= SEQUENCE.size else -1
        if seq not in counts.sent_at or data != numbered(seq, size):
            counts.corrupted += 1
            continue
        sent_at = counts.sent_at[seq]
        if sent_at < 0:  # marked when the first copy came back
            counts.duplicated += 1
            continue
        counts.rtts.append((arrived - sent_at) * 1000)
        counts.sent_at[seq] = -1.0
        if seq < counts.highest:
            counts.reordered += 1
        counts.highest = max(counts.highest, seq)


def verdict(counts: Counts, timeout: float) -> dict[str, Any]:
    """The outcome: a failure only if nothing at all came back."""
    said: dict[str, Any] = cli.failure(counts.error) if counts.error else {"errno": None, "detail": None}
    if counts.corrupted:
        said["outcome"] = Outcome.MISMATCH.value
    elif counts.received == counts.sent:
        said["outcome"] = Outcome.ECHOED.value
    elif counts.received:
        said["outcome"] = Outcome.OK.value
    elif not counts.error:
        said.update(outcome=Outcome.TIMEOUT.value, detail=f"no echo within {timeout:g} s")
    return said


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send datagrams, count the echoes, print one JSON result.

    UDP echo client: one datagram, or --count numbered ones.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None,
        "mode": "count" if args.count else "single", "connected": args.connected,
        "target": str(args.to), "peer": None, "local": None, "attempts": [],
    }
    counts: Counts | None = None
    reply: str | None = None

    def exchange(family: int, sockaddr: tuple) -> None:
        nonlocal counts, reply
        counts, reply = Counts(), None
        result.update(peer=None, local=None)
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                echoes = Echoes(sock, sockaddr, args.connected)
                if args.count:
                    counted(echoes, args.count, args.size, args.interval, args.timeout, counts)
                else:
                    reply = single(echoes, args.send.encode(), args.timeout, counts)
                result["peer"] = echoes.peer
                result["local"] = format_sockaddr(sock.getsockname())
        except OSError as exc:  # socket() or connect() refused this address
            counts.error = exc
        if not (counts.received or counts.corrupted):  # nothing came back from this address: try the next
            raise counts.error or TimeoutError(f"no echo within {args.timeout:g} s")

    try:
        try_each(resolve(args.to, socket.SOCK_DGRAM), exchange, result["attempts"])
    except OSError as exc:  # the name did not resolve, or no address echoed: said below, from the last one's counts
        if counts is None:
            result |= cli.failure(exc)
    if counts is not None:
        result |= verdict(counts, args.timeout)
    return result | (counts or Counts()).fields() | {"reply": reply}


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("udpecho", __doc__, serve, client,
                              client_timeout=2.0, send="single mode: the text to send")
    cli.add_quiet_argument(s)
    c.add_argument("--connected", action="store_true",
                   help="connect() the socket first, so that ICMP errors (port unreachable) are reported")
    c.add_argument("--count", type=cli.positive_int, metavar="N",
                   help="send N numbered datagrams and count lost, duplicated and reordered echoes")
    c.add_argument("--interval", type=cli.non_negative_seconds, default=0.001, metavar="S",
                   help="with --count: seconds between datagrams (default: 0.001; 0 sends as fast as the "
                   "socket allows, and UDP has no flow control: expect loss)")
    c.add_argument("--size", type=cli.datagram_size(SEQUENCE.size), default=64, metavar="BYTES",
                   help="with --count: bytes per datagram, 8 to 65507 (default: 64)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
