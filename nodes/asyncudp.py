"""UDP echo with asyncio: a DatagramProtocol, one transport for every client, callbacks instead of streams.

    python -m nodes.asyncudp serve --bind 0.0.0.0 --port 65432
    python -m nodes.asyncudp client --to 198.18.0.2:65432 --clients 10 --count 20

asyncio has no streams for UDP: there is no connection to read from, only
datagrams. ``loop.create_datagram_endpoint`` gives a transport (the
socket) and a protocol object whose ``datagram_received(data, addr)`` the
event loop calls for each datagram that arrives, from whichever client;
``transport.sendto(data, addr)`` answers it. One transport, one protocol,
every client: unlike asyncio streams (``nodes.asyncecho``) there is no
coroutine per client, and nothing to accept or close. ICMP errors arrive as
``error_received(exc)``.

The client runs ``--clients`` endpoints in one event loop, each its own
socket connected to the server (``remote_addr``: the kernel then reports
ICMP errors, and drops datagrams from anyone else). Each is a coroutine
that sends ``--count`` numbered datagrams one at a time, awaiting each
echo (a future the protocol resolves) before the next, for at most
``--timeout`` seconds each: every endpoint has one datagram in flight at
most, so no buffer can overflow, however many run at once.

Client result (one JSON object on stdout):
  outcome         echoed: every datagram came back unchanged; ok: some were
                  lost (timed out) but those that came back were unchanged;
                  mismatch: an echo differed; timeout: nothing came back;
                  refused: ICMP port unreachable (nobody listens); or another
                  failure word
  errno, detail   errno name and words of a failure, or null
  target, peer    the server as given, and the address the echoes came from
  clients         endpoints (sockets) run side by side in one event loop
  count           datagrams each endpoint sends
  sent, received  datagrams sent, and echoes received, over every endpoint
  lost            datagrams whose echo did not come in time
  corrupted       echoes that differed from what was sent
  peak_in_flight  the most datagrams awaiting their echo at one moment
  locals          distinct local ports the endpoints used (one socket each)
  elapsed_ms      the whole attempt
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, cast

from nodes import cli
from nodes.endpoints import format_sockaddr, resolve
from nodes.outcomes import Outcome

HEADER = struct.Struct(">II")  # endpoint number, datagram number


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


class EchoServer(asyncio.DatagramProtocol):
    """The whole server: the event loop calls ``datagram_received`` for every datagram of every client."""

    def __init__(self, log: logging.Logger, quiet: bool) -> None:
        self.log, self.quiet = log, quiet
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # the socket: no connection, whatever the name

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)
        peer = format_sockaddr(addr) or "?"
        if peer not in self.clients:
            self.clients.add(peer)
            if not self.quiet:
                self.log.info("first datagram from %s (%d clients so far)", peer, len(self.clients))

    def error_received(self, exc: Exception) -> None:  # an ICMP error for an earlier echo
        self.log.warning("error: %s", getattr(exc, "strerror", None) or exc)


async def serve_async(sock: socket.socket, log: logging.Logger, quiet: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    transport, protocol = await loop.create_datagram_endpoint(lambda: EchoServer(log, quiet), sock=sock)
    try:
        await stop.wait()
    finally:
        transport.close()
    log.info("served %d clients", len(protocol.clients))


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo every datagram to its sender, from an asyncio DatagramProtocol.

    asyncio UDP echo server.
    """
    sock = cli.listener(args, socket.SOCK_DGRAM, log)
    asyncio.run(serve_async(sock, log, args.quiet))  # the loop takes the stop signals over


@dataclass
class Tally:
    """What every endpoint of the client saw, together."""

    sent: int = 0
    received: int = 0
    lost: int = 0
    corrupted: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    peers: set[str] = field(default_factory=set)
    locals: set[str] = field(default_factory=set)
    errors: list[Exception] = field(default_factory=list)


class EchoClient(asyncio.DatagramProtocol):
    """One endpoint: hands each echo to the coroutine awaiting it."""

    def __init__(self) -> None:
        self.waiting: asyncio.Future[bytes] | None = None
        self.error: Exception | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(data)

    def error_received(self, exc: Exception) -> None:  # ECONNREFUSED: the ICMP port unreachable
        self.error = exc
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(exc)


async def endpoint(number: int, family: int, sockaddr: tuple, args: argparse.Namespace, tally: Tally) -> None:
    """One connected datagram endpoint: --count datagrams, each sent once its predecessor's echo came back."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(EchoClient, remote_addr=sockaddr[:2], family=family)
    tally.locals.add(format_sockaddr(transport.get_extra_info("sockname")) or "?")
    try:
        for seq in range(args.count):
            data = HEADER.pack(number, seq) + bytes(seq % 251 for _ in range(args.size - HEADER.size))
            protocol.waiting = loop.create_future()
            transport.sendto(data)  # connected: no address
            tally.sent += 1
            tally.in_flight += 1
            tally.peak_in_flight = max(tally.peak_in_flight, tally.in_flight)
            try:
                echo = await asyncio.wait_for(protocol.waiting, args.timeout)
            except TimeoutError:
                tally.lost += 1
                continue
            finally:
                tally.in_flight -= 1
            tally.received += 1
            tally.corrupted += echo != data
            tally.peers.add(format_sockaddr(transport.get_extra_info("peername")) or "?")
    finally:
        transport.close()


async def run_clients(family: int, sockaddr: tuple, args: argparse.Namespace, tally: Tally) -> None:
    results = await asyncio.gather(*(endpoint(n, family, sockaddr, args, tally) for n in range(args.clients)),
                                   return_exceptions=True)
    tally.errors += [result for result in results if isinstance(result, Exception)]


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Run --clients datagram endpoints in one event loop; each sends --count numbered datagrams, one at a time.

    asyncio UDP echo client.
    """
    tally = Tally()
    result: dict[str, Any] = {"outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to),
                              "peer": None, "clients": args.clients, "count": args.count}
    try:
        family, sockaddr = resolve(args.to, socket.SOCK_DGRAM)[0]
        asyncio.run(run_clients(family, sockaddr, args, tally))
    except OSError as exc:  # the name did not resolve
        tally.errors.append(exc)
    if tally.errors:
        result |= cli.failure(tally.errors[0])
    if tally.corrupted:
        result["outcome"] = Outcome.MISMATCH.value
    elif tally.received and tally.received == tally.sent and not tally.errors:
        result["outcome"] = Outcome.ECHOED.value
    elif tally.received:
        result["outcome"] = Outcome.OK.value
    elif not tally.errors:
        result.update(outcome=Outcome.TIMEOUT.value, detail=f"no echo within {args.timeout:g} s")
    return result | {"peer": ",".join(sorted(tally.peers)) or None, "sent": tally.sent, "received": tally.received,
                     "lost": tally.lost, "corrupted": tally.corrupted, "peak_in_flight": tally.peak_in_flight,
                     "locals": len(tally.locals)}


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("asyncudp", __doc__, serve, client, client_timeout=2.0)
    cli.add_quiet_argument(s)
    c.add_argument("--clients", type=cli.positive_int, default=1, metavar="N",
                   help="datagram endpoints (one socket each) run side by side in one event loop (default: 1)")
    c.add_argument("--count", type=cli.positive_int, default=1, metavar="N",
                   help="numbered datagrams each endpoint sends, one at a time (default: 1)")
    c.add_argument("--size", type=cli.datagram_size(HEADER.size), default=64, metavar="BYTES",
                   help="bytes per datagram, 8 to 65507 (default: 64)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
