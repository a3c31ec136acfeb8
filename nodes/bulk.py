"""Bulk transfer: push many bytes, measure the rate, and prove they all arrived intact.

    python -m nodes.bulk serve --bind 0.0.0.0 --port 65432
    python -m nodes.bulk client --to 198.18.0.2:65432 --bytes 100000000
    python -m nodes.bulk serve --proto udp --bind 0.0.0.0 --port 65432
    python -m nodes.bulk client --proto udp --to 198.18.0.2:65432 --count 10000 --size 1400

TCP: the client sends an 8-byte big-endian length, then that many bytes;
the server hashes them with SHA-256 as they arrive and answers with the
byte count and the digest it computed (8 + 32 bytes). The client hashed
what it sent: equal digests prove every byte arrived, in order, unchanged
(``ok``); different ones say otherwise (``mismatch``). The throughput is
what the application saw, from the first byte sent to the digest back.
The server handles each client in its own thread, so one long transfer
does not hold up another; a client silent for ``--timeout`` is dropped
(after up to twice that if it falls silent in the middle of a buffer: see
``MSG_WAITALL`` below), and a stop signal ends the transfers under way
before the server exits.

What makes TCP fast here (the receiver is the slow side: SHA-256 costs
more than the kernel's copy of the same bytes):

- The receiver hashes on a second thread while the first receives, so
  that hashing and receiving overlap on two cores; hashlib lets go of the
  GIL while it hashes a large piece, so the two threads really run at once.
  Three buffers go round: one being filled, one being hashed, one ready,
  so the hashing thread always has the next piece waiting.
- Big pieces (``BLOCK``, 4 MiB): a few hundred hand-overs between the
  threads per gigabyte instead of thousands.
- ``recv_into`` a preallocated buffer and ``update`` with a memoryview
  slice of it: the bytes are copied once, from the kernel into the buffer,
  and never again (``recv`` would make a new bytes object per call, and
  slicing a bytearray copies).
- ``MSG_WAITALL``: the kernel fills the whole buffer before the call
  returns, one call per 4 MiB instead of one per burst of segments. It
  only waits on a blocking socket, so the receiver's idle timeout is the
  kernel's (``SO_RCVTIMEO``) rather than Python's ``settimeout``, which
  makes the socket non-blocking and polls before every call. The kernel
  counts that timeout from the start of each call: a client that falls
  silent in the middle of a buffer is dropped after one to two timeouts.
- ``SO_RCVLOWAT`` (``WAKE_AT``, 1 MiB): the kernel wakes the receiving
  thread only once that much has arrived, not for every few segments,
  which about halves the receiving thread's own CPU time (0.25 s per GB
  down to 0.13, measured between two lab hosts). Near the end of the
  stream it is lowered to what is still to come, or the last bytes would
  never be enough to wake it.
- The sender sends one prebuilt random block again and again with
  ``sendall``, and works out the digest of the whole stream before the
  clock starts, as a sender that made the data (or had a file's) would.
  Socket buffers are left to the kernel's autotuning: setting
  ``SO_RCVBUF`` or ``SO_SNDBUF`` would switch it off.

UDP: the client sends ``--count`` datagrams, each carrying a random
session id and a sequence number, then asks for the server's tally of that
session (an "end" datagram, repeated until answered). UDP has no flow
control and no retransmission: what the tally lacks was lost, and sending
faster than the path or the receiver can take shows it.

Client result (one JSON object on stdout), the same keys for both:
  outcome              ok (TCP: digests equal; UDP: the server's tally came
                       back), mismatch (TCP: digests differ), or a failure
                       word (refused, timeout, closed, reset, ...)
  errno, detail        errno name and words of a failure, or null
  proto                "tcp" or "udp"
  target, peer, local  the server as given, and the connection's addresses
  attempts             each address the name resolved to that was tried, in
                       getaddrinfo's order, until one worked: [{"peer",
                       "outcome", "errno", "detail", "elapsed_ms"}, ...].
                       TCP tries the next address when connect() fails; UDP
                       when no tally comes back from one (refused, timeout)
  bytes_sent           payload bytes sent (UDP: whole datagrams)
  bytes_received       bytes the server says it received
  elapsed_ms           first byte sent to the server's answer (on failure:
                       until the failure)
  throughput_mbps      bytes_received * 8 / elapsed, in Mbit/s
  sha256_sent, sha256_received, hash_match     TCP only, else null
  datagrams_sent, datagrams_received, lost, loss  UDP only, else null
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import socket
import struct
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr, resolve, try_each
from nodes.outcomes import Outcome

LENGTH = struct.Struct(">Q")
REPORT = struct.Struct(">Q32s")  # bytes received, SHA-256 digest
BLOCK = 1 << 22  # bytes per send call, and per receive buffer (4 MiB)
BUFFERS = 3  # receive buffers going round: one filled, one hashed, one ready
WAKE_AT = 1 << 20  # bytes the kernel gathers before it wakes the receiving thread (SO_RCVLOWAT)

DATA, END, TALLY = b"BLK1", b"END1", b"SUM1"
DATAGRAM_HEAD = struct.Struct(">4s8sQ")  # magic, session id, sequence number
END_DATAGRAM = struct.Struct(">4s8sQ")  # magic, session id, datagrams sent
TALLY_DATAGRAM = struct.Struct(">4s8sQQ")  # magic, session id, datagrams received, bytes received
MAX_SESSIONS = 4096  # UDP tallies kept; the oldest is forgotten first


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def kernel_timeout(conn: socket.socket, seconds: float) -> None:
    """Make ``conn`` blocking, with the kernel timing out each receive after ``seconds`` (EAGAIN).

    Python's ``settimeout`` makes a socket non-blocking and polls before
    each call, and on a non-blocking socket MSG_WAITALL does not wait.
    """
    conn.settimeout(None)
    whole = int(seconds)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                    struct.pack("ll", whole, int((seconds - whole) * 1_000_000)))


def fill(conn: socket.socket, buffer: memoryview, done: int, declared: int) -> None:
    """Receive exactly ``len(buffer)`` bytes into ``buffer``, in as few calls and wake-ups as the kernel allows.

    ``done`` of ``declared`` bytes came before. The kernel is asked to wake
    this thread for no less than ``WAKE_AT`` bytes, but never for more than
    the stream still holds once this buffer is full, plus one byte: at the
    end, what is left to come must be enough to wake it. MSG_WAITALL
    returns early only on a timeout with some bytes in, a signal, a
    shutdown or the end of the stream: the loop carries on from there.
    """
    after = declared - done - len(buffer)  # bytes of the stream that come after this buffer
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, min(WAKE_AT, after + 1))
    got = 0
    while got < len(buffer):
        n = conn.recv_into(buffer[got:], 0, socket.MSG_WAITALL)
        if not n:
            raise EOFError(f"closed after {done + got} of {declared} bytes")
        got += n


def receive_transfer(conn: socket.socket) -> tuple[int, bytes]:
    """Read a length, then that many bytes, hashing as they come; return (count, digest).

    This thread receives into one buffer while a second thread hashes the
    one before (see the module's docstring); updates go to the digest in
    the order the bytes came, since one thread makes them all, in turn.
    """
    (declared,) = LENGTH.unpack(recv_exactly(conn, LENGTH.size))
    digest = hashlib.sha256()
    size = min(BLOCK, declared)
    buffers = [memoryview(bytearray(size)) for _ in range(BUFFERS)]
    hashing: deque[Future[None]] = deque()  # the buffers handed to the hasher, oldest first
    received = turn = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        while received < declared:
            if len(hashing) == BUFFERS:  # all of them with the hasher: wait until the oldest, this turn's, is done
                hashing.popleft().result()
            piece = buffers[turn % BUFFERS][:min(size, declared - received)]
            fill(conn, piece, received, declared)
            hashing.append(hasher.submit(digest.update, piece))
            received += len(piece)
            turn += 1
        for pending in hashing:
            pending.result()
    return declared, digest.digest()


def handle_tcp(conn: socket.socket, address: Any, log: logging.Logger, timeout: float) -> None:
    peer = format_sockaddr(address)
    with conn:
        log.info("accepted %s", peer)
        kernel_timeout(conn, timeout)
        started = time.perf_counter()
        try:
            count, digest = receive_transfer(conn)
            conn.settimeout(timeout)
            conn.sendall(REPORT.pack(count, digest))
        except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO ran out (EAGAIN)
            log.warning("timed out %s: idle for %g s", peer, timeout)
        except EOFError as exc:
            log.warning("error %s: truncated transfer, %s", peer, exc)
        except OSError as exc:
            log.warning("error %s: %s", peer, exc.strerror or exc)
        else:
            took = time.perf_counter() - started
            log.info("closed %s: received %d bytes in %.3f s (%.1f Mbit/s), sha256 %s",
                     peer, count, took, count * 8 / took / 1e6 if took else 0.0, digest.hex()[:16])


def serve_tcp(listening: socket.socket, log: logging.Logger, timeout: float) -> None:
    """Accept until a stop signal; then end the transfers still under way, and wait for their threads."""
    handlers = cli.Handlers()
    try:
        while True:
            conn, address = cli.accept(listening, log)  # listening.accept(); a failed one is logged and waited out
            handlers.start(conn, handle_tcp, address, log, timeout)
    finally:
        handlers.stop()


def serve_udp(sock: socket.socket, log: logging.Logger) -> None:
    """Count datagrams per session; answer each end datagram with the session's tally."""
    sessions: OrderedDict[bytes, list[int]] = OrderedDict()  # session id -> [datagrams, bytes]
    while True:
        try:
            data, address = sock.recvfrom(65535)
            if data[:4] == DATA and len(data) >= DATAGRAM_HEAD.size:
                _, session, _ = DATAGRAM_HEAD.unpack_from(data)
                tally = sessions.get(session)
                if tally is None:
                    tally = sessions[session] = [0, 0]
                    if len(sessions) > MAX_SESSIONS:
                        sessions.popitem(last=False)
                tally[0] += 1
                tally[1] += len(data)
            elif data[:4] == END and len(data) == END_DATAGRAM.size:
                _, session, sent = END_DATAGRAM.unpack(data)
                received, size = sessions.get(session, (0, 0))
                sock.sendto(TALLY_DATAGRAM.pack(TALLY, session, received, size), address)
                log.info("tally for %s: %d of %d datagrams, %d bytes", format_sockaddr(address), received, sent, size)
            else:
                log.warning("error %s: ignored a %d-byte datagram that is not bulk data",
                            format_sockaddr(address), len(data))
        except OSError as exc:
            log.warning("error: %s", exc.strerror or exc)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Receive transfers, verify them, report what arrived.

    Bulk transfer receiver: TCP with SHA-256, or UDP with a tally.
    """
    sock_type = socket.SOCK_STREAM if args.proto == "tcp" else socket.SOCK_DGRAM
    with cli.listener(args, sock_type, log) as sock:
        serve_tcp(sock, log, args.timeout) if args.proto == "tcp" else serve_udp(sock, log)


def stream_digest(block: bytes, size: int) -> bytes:
    """SHA-256 of ``size`` bytes made of ``block`` repeated: what the sender will send."""
    digest = hashlib.sha256()
    whole, part = divmod(size, len(block))
    for _ in range(whole):
        digest.update(block)
    digest.update(block[:part])
    return digest.digest()


def send_tcp(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Send ``args.bytes`` bytes and compare the server's digest of what arrived with ours.

    The sender makes the data, so it works out the digest before the clock
    starts, as it would have a file's; the timed part is the transfer and
    the receiver hashing every byte as it arrives.
    """
    block = os.urandom(min(BLOCK, args.bytes))
    ours = stream_digest(block, args.bytes)
    with cli.connect(args.to, args.timeout, attempts=result["attempts"]) as sock:  # each address in turn
        result.update(cli.addresses(sock))
        started = time.perf_counter()
        sock.sendall(LENGTH.pack(args.bytes))
        remaining = args.bytes
        while remaining:
            piece = block[:remaining]
            sock.sendall(piece)
            result["bytes_sent"] += len(piece)
            remaining -= len(piece)
        try:
            received, theirs = REPORT.unpack(recv_exactly(sock, REPORT.size))
        except EOFError as exc:
            result.update(outcome=Outcome.CLOSED.value, detail=f"no digest came back: the server {exc}")
            return
        seconds_taken = time.perf_counter() - started
    result.update(
        outcome=Outcome.OK.value if theirs == ours and received == args.bytes else Outcome.MISMATCH.value,
        bytes_received=received, sha256_sent=ours.hex(), sha256_received=theirs.hex(), hash_match=theirs == ours,
    )
    rate(result, received, seconds_taken)


def send_udp(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Send the datagrams, then ask for the server's tally of them; to each address the name resolves to in turn.

    UDP has no handshake to fail, so an address fails when its tally never
    comes: refused (the socket is connected, so an ICMP port unreachable
    ends the run at once) or a timeout. Then the whole run is made again
    to the next address, and the counts are those of the last run.
    """
    filler = os.urandom(args.size - DATAGRAM_HEAD.size)

    def transfer(family: int, sockaddr: tuple) -> tuple[bytes, float]:
        result.update(bytes_sent=0, datagrams_sent=0)  # this address's counts only
        session = os.urandom(8)  # a session per address: one server may hear two of them, and count each apart
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)  # connected, so that "nobody listens" shows as refused
            result.update(cli.addresses(sock))
            started = time.perf_counter()
            for seq in range(args.count):
                result["bytes_sent"] += sock.send(DATAGRAM_HEAD.pack(DATA, session, seq) + filler)
                result["datagrams_sent"] += 1
                if args.interval:
                    time.sleep(args.interval)
            end = END_DATAGRAM.pack(END, session, args.count)
            deadline = time.monotonic() + args.timeout
            while True:  # the end datagram or its answer may be lost too: ask again until the time is up
                sock.send(end)
                sock.settimeout(max(0.001, min(args.timeout / 5, deadline - time.monotonic())))
                try:
                    reply = sock.recv(TALLY_DATAGRAM.size + 1)
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise
                    continue
                if len(reply) == TALLY_DATAGRAM.size and reply[:4] == TALLY and reply[4:12] == session:
                    return reply, time.perf_counter() - started

    reply, seconds_taken = try_each(resolve(args.to, socket.SOCK_DGRAM), transfer, result["attempts"])
    _, _, received, size = TALLY_DATAGRAM.unpack(reply)
    lost = args.count - received
    result.update(outcome=Outcome.OK.value, bytes_received=size, datagrams_received=received,
                  lost=lost, loss=round(lost / args.count, 4))
    rate(result, size, seconds_taken)


def rate(result: dict[str, Any], received: int, seconds_taken: float) -> None:
    result["elapsed_ms"] = round(seconds_taken * 1000, 3)
    result["throughput_mbps"] = round(received * 8 / seconds_taken / 1e6, 3) if seconds_taken > 0 else None


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send a transfer, print one JSON result.

    Bulk transfer sender.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "proto": args.proto,
        "target": str(args.to), "peer": None, "local": None, "bytes_sent": 0, "bytes_received": 0,
        "elapsed_ms": None, "throughput_mbps": None,
        "sha256_sent": None, "sha256_received": None, "hash_match": None,
        "datagrams_sent": None, "datagrams_received": None, "lost": None, "loss": None, "attempts": [],
    }
    if args.proto == "udp":
        result["datagrams_sent"] = 0
    started = time.perf_counter()
    try:
        send_tcp(args, result) if args.proto == "tcp" else send_udp(args, result)
    except OSError as exc:
        result.update(cli.failure(exc))
    if result["elapsed_ms"] is None:  # failed: say how long it took to fail
        result["elapsed_ms"] = cli.elapsed_ms(started)
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("bulk", __doc__, serve, client, client_timeout=10.0,
                              log_name=lambda args: f"bulk.{args.proto}")
    s.add_argument("--proto", choices=["tcp", "udp"], default="tcp", help="transport (default: tcp)")
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="TCP: drop a client silent for S seconds (default: 30)")
    c.add_argument("--proto", choices=["tcp", "udp"], default="tcp", help="transport (default: tcp)")
    c.add_argument("--bytes", type=cli.positive_int, default=10_000_000, metavar="N",
                   help="TCP: bytes to send (default: 10000000)")
    c.add_argument("--count", type=cli.positive_int, default=1000, metavar="N",
                   help="UDP: datagrams to send (default: 1000)")
    c.add_argument("--size", type=cli.datagram_size(DATAGRAM_HEAD.size), default=1400, metavar="BYTES",
                   help=f"UDP: bytes per datagram, {DATAGRAM_HEAD.size} to 65507 (default: 1400)")
    c.add_argument("--interval", type=cli.non_negative_seconds, default=0.0, metavar="S",
                   help="UDP: pause between datagrams (default: 0, as fast as the socket takes them)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
