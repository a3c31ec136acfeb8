"""Echo with ``asyncio`` streams: one coroutine per connection, thousands of them on one thread.

    python -m nodes.asyncecho serve --bind 0.0.0.0 --port 65432
    python -m nodes.asyncecho client --to 198.18.0.2:65432 --connections 10000 --concurrency 2000

The server is the selectors loop of ``nodes.multiconn`` again, but written
as straight-line code: ``await reader.read()`` suspends this connection's
coroutine until bytes arrive and lets the event loop run the others.
``await writer.drain()`` is the flow control: it waits while the client is
not reading, so a slow reader cannot make the server buffer without limit.
Each read and each drain is bounded by the idle timeout.

The client starts ``--connections`` coroutines, at most ``--concurrency``
connected at a time; each connects, sends, reads the echo back and closes.

Client result (one JSON object on stdout), keys:
  outcome         echoed when every connection got its echo back; otherwise
                  the most frequent failure (mismatch, closed, refused,
                  timeout, reset, ...)
  errno, detail   errno name and words of that failure, or null
  target, peer    the server as given, and the address every connection went to
  attempts        when the name resolved to several addresses: how that one
                  was chosen, before the N connections, with a connection to
                  each in turn until one was accepted (then closed at once,
                  not counted), as [{"peer", "outcome", "errno", "detail",
                  "elapsed_ms"}, ...]; [] with one address (an IP address)
  connections     connections asked for
  concurrency     the cap on simultaneous connections
  opened          connections that were established
  completed       connections whose echo came back unchanged
  failed          connections that did not complete
  peak_open       the most connections open at the same moment
  bytes_sent, bytes_received
  errors          {outcome: count} for the connections that failed
  elapsed_ms      first connect to last close, in milliseconds
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome
from nodes.tally import Tally, client_result

BUFSIZE = 65536


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


class EchoService:
    """The connection handler, and the bookkeeping needed to stop every connection at exit."""

    def __init__(self, log: logging.Logger, idle_timeout: float, quiet: bool) -> None:
        self.log, self.idle_timeout, self.quiet = log, idle_timeout, quiet
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        peer = format_sockaddr(writer.get_extra_info("peername")) or "?"
        if not self.quiet:
            self.log.info("accepted %s", peer)
        echoed, clean = 0, False
        try:
            while True:
                async with asyncio.timeout(self.idle_timeout):
                    data = await reader.read(BUFSIZE)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
                echoed += len(data)
            clean = True
        except TimeoutError:
            self.log.warning("timed out %s: idle for %g s, closing", peer, self.idle_timeout)
        except OSError as exc:
            self.log.warning("error %s: %s", peer, exc.strerror or exc)
        finally:
            # close() would first flush what the client has not read, and a
            # client that does not read would keep the socket forever: abort.
            writer.close() if clean else writer.transport.abort()
            self.tasks.discard(task)
        if not self.quiet:
            self.log.info("closed %s (%d bytes echoed)", peer, echoed)


async def serve_async(listening: socket.socket, log: logging.Logger, idle_timeout: float, quiet: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    service = EchoService(log, idle_timeout, quiet)
    # asyncio listens again on the socket it is given, with backlog=100 unless told otherwise.
    server = await asyncio.start_server(service.handle, sock=listening, backlog=socket.SOMAXCONN, limit=BUFSIZE)
    async with server:
        await stop.wait()
    for task in list(service.tasks):
        task.cancel()
    await asyncio.gather(*service.tasks, return_exceptions=True)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo for many clients with asyncio streams.

    asyncio streams echo server.
    """
    listening = cli.listener(args, socket.SOCK_STREAM, log)
    cli.raise_fd_limit(log)
    asyncio.run(serve_async(listening, log, args.timeout, args.quiet))  # the loop takes the stop signals over


class Hold:
    """Keeps established connections silent until all of them have settled, and ``seconds`` more.

    A connection settles when it is established or fails to be; then every
    one is open at the same moment, which is what a concurrency test wants.
    """

    def __init__(self, seconds: float, connections: int) -> None:
        self.seconds, self.unsettled = seconds, connections
        self.released = asyncio.Event()

    def settle(self) -> None:
        self.unsettled -= 1
        if self.unsettled == 0:
            asyncio.get_running_loop().call_later(self.seconds, self.released.set)


async def one_connection(family: int, sockaddr: tuple, data: bytes, timeout: float, tally: Tally,
                         hold: Hold | None = None) -> None:
    """Connect, send, read the echo, close; count what happened."""
    loop = asyncio.get_running_loop()
    writer, connected = None, False
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # out of descriptors: a failure like any other
        tally.raised(exc)
        if hold:
            hold.settle()
        return
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            # Connecting to the resolved address ourselves: open_connection(host, port)
            # would run getaddrinfo once per connection.
            try:
                await loop.sock_connect(sock, sockaddr)
            finally:
                if hold:
                    hold.settle()
            connected = True
            tally.connected()
            if hold:
                await hold.released.wait()
            reader, writer = await asyncio.open_connection(sock=sock, limit=BUFSIZE)
            writer.write(data)
            await writer.drain()
            tally.bytes_sent += len(data)
            try:
                reply = await reader.readexactly(len(data))
            except asyncio.IncompleteReadError as exc:
                tally.bytes_received += len(exc.partial)
                tally.failed(Outcome.CLOSED.value, None, "the server closed before the whole echo came back")
                return
            tally.bytes_received += len(reply)
            if reply == data:
                tally.completed += 1
            else:
                tally.failed(Outcome.MISMATCH.value, None, "the echo differs from what was sent")
    except TimeoutError:
        tally.failed(Outcome.TIMEOUT.value, None, f"not done within {timeout:g} s")
    except OSError as exc:
        tally.raised(exc)
    finally:
        if writer is not None:
            writer.transport.abort()  # the echo is in, or it failed: nothing left worth flushing
        else:
            sock.close()
        tally.open_now -= connected


async def run_connections(args: argparse.Namespace, family: int, sockaddr: tuple, tally: Tally) -> None:
    data = args.send.encode()
    gate = asyncio.Semaphore(args.concurrency)
    hold = Hold(args.hold, args.connections) if args.hold is not None else None

    async def gated() -> None:
        async with gate:
            await one_connection(family, sockaddr, data, args.timeout, tally, hold)

    await asyncio.gather(*(gated() for _ in range(args.connections)))


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Run N echo connections concurrently, print one JSON result.

    Open N connections with asyncio, at most --concurrency at a time.
    """
    if args.hold is not None and args.concurrency and args.concurrency < args.connections:
        cli.fail("--hold keeps every connection open until all are: it cannot wait behind --concurrency")
    args.concurrency = min(args.concurrency or args.connections, args.connections)
    tally = Tally(connections=args.connections)

    def connections(family: int, sockaddr: tuple) -> None:
        asyncio.run(run_connections(args, family, sockaddr, tally))

    return client_result(args.to, tally, connections, timeout=args.timeout, concurrency=args.concurrency)


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("asyncecho", __doc__, serve, client,
                              client_timeout=10.0, send="text sent on each connection")
    s.add_argument("--timeout", type=cli.seconds, default=60.0, metavar="S",
                   help="close a connection that is idle (or does not read its echo) for S seconds (default: 60)")
    cli.add_quiet_argument(s)
    c.add_argument("--connections", type=cli.positive_int, default=1, metavar="N",
                   help="connections to make (default: 1)")
    c.add_argument("--concurrency", type=cli.positive_int, metavar="C",
                   help="at most C connections at a time (default: all of them at once)")
    c.add_argument("--hold", type=cli.non_negative_seconds, metavar="S",
                   help="keep each connection silent until all are open, then S seconds more, so that they are "
                   "all open together (needs every connection at once: no --concurrency; count S in --timeout)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
