"""UDP's limits: how big a datagram may be, what a full receive buffer does, how often a refusal is told.

    python -m nodes.udplimits serve --bind 0.0.0.0 --port 65432
    python -m nodes.udplimits serve --bind 0.0.0.0 --port 65433 --rcvbuf 4096
    python -m nodes.udplimits client --to 198.18.0.2:65432 --size 65507
    python -m nodes.udplimits client --to 198.18.0.2:65432 --size 1473 --dont-fragment
    python -m nodes.udplimits client --to 198.18.0.2:65433 --burst 200 --size 1000
    python -m nodes.udplimits client --to 198.18.0.2:65434 --refusals 30

The server answers every datagram with the number of bytes it received
(8 bytes, big-endian): the client learns that a datagram arrived whole,
however many IP fragments carried it. Beside its UDP socket it listens on
TCP (``--control-port``, by default the next port number): a control
channel for ``--burst`` that no full UDP buffer can lose. Told "hold", the server stops reading its UDP
socket; told "count", it reads what its buffer kept and says how many, and
how far its host's ``Udp RcvbufErrors`` counter (/proc/net/snmp, and
``Udp6RcvbufErrors`` for datagrams that came over IPv6) rose.

The client has three lessons, on a connected socket (connect() only fixes
the peer; it is what lets ICMP errors be reported):

- one datagram of ``--size`` bytes (default): a datagram larger than IP can
  carry (65507 bytes of payload over IPv4, 65527 over IPv6) is refused by
  sendto() itself, EMSGSIZE, before anything is sent; with
  ``--dont-fragment`` (IP_MTU_DISCOVER = IP_PMTUDISC_DO, or IPV6_DONTFRAG)
  so is one that does not fit the path's MTU in a single packet;
- ``--burst N``: N datagrams as fast as sendto() takes them, while the
  server does not read. Each sendto() succeeds; the server's buffer keeps
  what fits, and its kernel drops the rest without telling anyone;
- ``--refusals N``: N datagrams to a port where nobody listens, waiting
  ``--wait`` seconds after each for the ICMP port unreachable (reported as
  ECONNREFUSED). The kernel that sends those errors limits how often it
  sends them to one peer; loopback is exempt.

Client result (one JSON object on stdout):
  outcome         single: ok (the server got every byte), error (errno EMSGSIZE:
                  sendto refused it), refused, timeout, mismatch (the server
                  got another size); burst: ok once the server has counted;
                  refusals: refused if every datagram was refused, timeout if
                  some were met with silence
  errno, detail   errno name and words of a failure, or null
  mode            "single", "burst" or "refusals"
  target, peer, local    the server as given, and the connected socket's two ends
  family          "ipv4" or "ipv6"
  size            bytes of payload per datagram
  dont_fragment   whether fragmentation was forbidden
  path_mtu        the kernel's path MTU for the peer (IP_MTU / IPV6_MTU), or null
  server_got      single: bytes the server says it received, or null
  sent            datagrams sendto() accepted
  send_errors     datagrams sendto() refused
  received        burst: datagrams the server read after the burst, or null
  lost            burst: sent - received, or null
  rcvbuf          burst: the server's SO_RCVBUF (as the kernel doubled it), or null
  rcvbuf_errors   burst: how far the server host's Udp and Udp6 RcvbufErrors rose, or null
  uncounted       burst: lost datagrams that counter does not account for, or null
  refused         refusals: datagrams answered by ECONNREFUSED, or null
  silent          refusals: datagrams met with silence, or null
  first_silent    refusals: the number (from 1) of the first one met with silence, or null
  rate_after      refusals: refusals per second from that first silence on, or null
  answers         refusals: one letter per datagram, R refused, r refused too late for its
                  wait (told at the next send), . silence, ? an answer; or null
  elapsed_ms      the whole attempt
"""

from __future__ import annotations

import argparse
import json
import logging
import selectors
import socket
import struct
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr, resolve
from nodes.outcomes import Outcome

MAX_DATAGRAM = 65535
GOT = struct.Struct(">Q")  # the server's answer: how many bytes it received
# Linux's values; Python's socket module does not name them all.
IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
IPV6_MTU, IPV6_DONTFRAG = 24, getattr(socket, "IPV6_DONTFRAG", 62)


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def rcvbuf_errors() -> int:
    """This host's (this network namespace's) count of datagrams dropped because a receive buffer was full.

    Datagrams that came over IPv6 are counted apart, as Udp6RcvbufErrors in
    /proc/net/snmp6 (IPv4 ones to a dual-stack socket count in Udp): both
    are added.
    """
    count = 0
    with open("/proc/net/snmp") as snmp:
        udp = [line.split() for line in snmp if line.startswith("Udp:")]
    count += int(udp[1][udp[0].index("RcvbufErrors")])
    try:
        with open("/proc/net/snmp6") as snmp6:
            count += sum(int(line.split()[1]) for line in snmp6 if line.startswith("Udp6RcvbufErrors"))
    except FileNotFoundError:  # IPv6 is off on this host
        pass
    return count


class Server:
    """The UDP socket that answers sizes, and the TCP control channel that can hold it still."""

    def __init__(self, udp: socket.socket, control: socket.socket, log: logging.Logger, quiet: bool) -> None:
        self.udp, self.control, self.log, self.quiet = udp, control, log, quiet
        self.selector = selectors.DefaultSelector()
        self.errors_before = 0
        udp.setblocking(False)
        control.setblocking(False)
        self.selector.register(udp, selectors.EVENT_READ)
        self.selector.register(control, selectors.EVENT_READ)
        self.holding = False

    def run(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.udp:
                    self.answer()
                elif key.fileobj is self.control:
                    self.accept()
                else:
                    self.command(key.fileobj)  # type: ignore[arg-type]

    def answer(self) -> None:
        """recvfrom() one datagram and sendto() its sender how many bytes it held."""
        try:
            data, address = self.udp.recvfrom(MAX_DATAGRAM)
            self.udp.sendto(GOT.pack(len(data)), address)
        except BlockingIOError:
            return
        except OSError as exc:  # an ICMP error for an earlier answer
            self.log.warning("error: %s", exc.strerror or exc)
            return
        if not self.quiet:
            self.log.info("received %d bytes from %s", len(data), format_sockaddr(address))

    def accept(self) -> None:
        try:
            conn, address = self.control.accept()
        except OSError:
            return
        conn.settimeout(5)
        self.selector.register(conn, selectors.EVENT_READ)
        self.log.info("control connection from %s", format_sockaddr(address))

    def command(self, conn: socket.socket) -> None:
        """One line from the control connection: hold (stop reading UDP) or count (read what the buffer kept)."""
        try:
            line = conn.recv(64).strip()
        except OSError:
            line = b""
        if line == b"hold":
            self.holding = True
            self.selector.unregister(self.udp)  # from now on, datagrams wait in the buffer, or are dropped
            self.errors_before = rcvbuf_errors()
            self.log.info("holding: not reading udp")
            reply: dict[str, Any] = {"rcvbuf": self.udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}
        elif line == b"count" and self.holding:
            received, size = self.drain()
            reply = {"received": received, "bytes": size, "rcvbuf_errors": rcvbuf_errors() - self.errors_before}
            self.log.info("counted %d datagrams kept, %d dropped (RcvbufErrors)", received, reply["rcvbuf_errors"])
        else:
            self.end(conn)
            return
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            self.end(conn)

    def drain(self) -> tuple[int, int]:
        """Read every datagram the buffer kept, then answer datagrams again."""
        received = size = 0
        while True:
            try:
                data = self.udp.recv(MAX_DATAGRAM)
            except BlockingIOError:
                break
            received, size = received + 1, size + len(data)
        self.holding = False
        self.selector.register(self.udp, selectors.EVENT_READ)
        return received, size

    def end(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        conn.close()
        if self.holding:
            self.drain()
            self.log.info("control connection closed: reading udp again")


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Answer each datagram with its size; a TCP control channel holds the socket unread, and counts.

    UDP size server, with a receive buffer that can be held full.
    """
    with cli.listener(args, socket.SOCK_DGRAM, log) as udp:
        if args.rcvbuf:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            log.info("SO_RCVBUF %d asked, %d given", args.rcvbuf, udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        port = udp.getsockname()[1]
        args.port = args.control_port if args.control_port is not None else port + 1 if args.port else 0
        with cli.listener(args, socket.SOCK_STREAM, log) as control:
            Server(udp, control, log, args.quiet).run()


def connected(args: argparse.Namespace) -> socket.socket:
    """A UDP socket connect()ed to the server: no packet is sent, the peer is fixed, and ICMP errors reported."""
    family, sockaddr = resolve(args.to, socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if args.dont_fragment and family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)  # DF set, never fragment
        elif args.dont_fragment:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        sock.connect(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def path_mtu(sock: socket.socket) -> int | None:
    """The MTU the kernel knows for the path to the connected peer."""
    try:
        if sock.family == socket.AF_INET:
            return sock.getsockopt(socket.IPPROTO_IP, IP_MTU)
        return sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
    except OSError:
        return None


def single(sock: socket.socket, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """send() one datagram of --size bytes; recv() the server's count of what arrived."""
    payload = bytes(i % 251 for i in range(args.size))
    sock.settimeout(args.timeout)
    try:
        sock.send(payload)  # EMSGSIZE here: too big for one datagram, or for the path with DF
    except OSError as exc:
        result.update(cli.failure(exc), send_errors=1)
        return
    result["sent"] = 1
    try:
        answer = sock.recv(MAX_DATAGRAM)
    except OSError as exc:  # ECONNREFUSED: nobody listens; a timeout: the datagram, or the answer, was lost
        result.update(cli.failure(exc))
        return
    got = GOT.unpack(answer)[0] if len(answer) == GOT.size else None
    result["server_got"] = got
    result["outcome"] = (Outcome.OK if got == args.size else Outcome.MISMATCH).value


def control_line(control: socket.socket, command: bytes) -> dict[str, Any]:
    control.sendall(command + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = control.recv(1024)
        if not chunk:
            raise ConnectionResetError("the server closed the control connection")
        reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    return answer


def burst(sock: socket.socket, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Tell the server to hold, send --burst datagrams at once, then ask how many it kept."""
    peer = sock.getpeername()
    control_port = args.control_port if args.control_port is not None else peer[1] + 1
    with socket.socket(sock.family, socket.SOCK_STREAM) as control:
        control.settimeout(args.timeout)
        control.connect((peer[0], control_port, *peer[2:]))
        result["rcvbuf"] = control_line(control, b"hold")["rcvbuf"]
        payload = bytes(args.size)
        sent = errors = 0
        for _ in range(args.burst):
            try:
                sock.send(payload)  # succeeds: UDP has no flow control, nobody says the receiver is full
                sent += 1
            except OSError:
                errors += 1
        time.sleep(args.settle)  # the last datagrams cross the LAN before the server counts
        counted = control_line(control, b"count")
    result.update(sent=sent, send_errors=errors, received=counted["received"], lost=sent - counted["received"],
                  rcvbuf_errors=counted["rcvbuf_errors"],
                  uncounted=sent - counted["received"] - counted["rcvbuf_errors"],
                  outcome=Outcome.OK.value)


def refusals(sock: socket.socket, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """send() --refusals datagrams where nobody listens; after each, wait --wait seconds for ECONNREFUSED.

    An error that arrives after its wait is reported by the next call on
    the socket, the next send(): it is counted for the latest datagram met
    with silence (marked "r"), and that send() is made again.
    """
    sock.settimeout(args.wait)
    answers: list[str] = []
    sent_at: list[float] = []
    for _ in range(args.refusals):
        try:
            sock.send(b"anyone?")
        except ConnectionRefusedError:  # late: the error of an earlier datagram
            late = len(answers) - 1 - answers[::-1].index(".") if "." in answers else None
            if late is not None:
                answers[late] = "r"
            sock.send(b"anyone?")
        sent_at.append(time.monotonic())
        try:
            sock.recv(MAX_DATAGRAM)  # nothing will arrive; an ICMP error ends the wait as ECONNREFUSED
            answers.append("?")  # a datagram came back after all
        except ConnectionRefusedError:
            answers.append("R")
        except TimeoutError:
            answers.append(".")
    ended = time.monotonic()
    text = "".join(answers)
    refused, silent = sum(a in "Rr" for a in answers), text.count(".")
    first = text.index(".") if silent else None
    rate = None
    if first is not None and ended > sent_at[first]:
        rate = round(sum(a in "Rr" for a in answers[first:]) / (ended - sent_at[first]), 2)
    result.update(sent=len(answers), refused=refused, silent=silent, answers=text,
                  first_silent=None if first is None else first + 1, rate_after=rate)
    if refused == len(answers):
        result.update(outcome=Outcome.REFUSED.value, errno="ECONNREFUSED", detail="every datagram was refused")
    elif silent:
        result.update(outcome=Outcome.TIMEOUT.value, detail=f"{silent} of {len(answers)} met with silence")
    else:
        result.update(outcome=Outcome.MISMATCH.value, detail="a datagram came back")


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send datagrams to the size server and report what sendto() and the server said.

    UDP limits client: one datagram of --size bytes, a --burst, or --refusals.
    """
    mode = "burst" if args.burst else "refusals" if args.refusals else "single"
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "mode": mode, "target": str(args.to),
        "peer": None, "local": None, "family": None, "size": args.size, "dont_fragment": args.dont_fragment,
        "path_mtu": None, "server_got": None, "sent": 0, "send_errors": 0, "received": None, "lost": None,
        "rcvbuf": None, "rcvbuf_errors": None, "uncounted": None, "refused": None, "silent": None,
        "first_silent": None, "rate_after": None, "answers": None,
    }
    try:
        with connected(args) as sock:
            result |= cli.addresses(sock)
            result["family"] = "ipv4" if sock.family == socket.AF_INET else "ipv6"
            result["path_mtu"] = path_mtu(sock)
            {"single": single, "burst": burst, "refusals": refusals}[mode](sock, args, result)
    except OSError as exc:  # the name did not resolve, or the control connection failed
        result.update(cli.failure(exc))
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("udplimits", __doc__, serve, client, client_timeout=2.0)
    cli.add_quiet_argument(s)
    s.add_argument("--control-port", type=cli.port, metavar="N",
                   help="the TCP control channel's port (default: the UDP port + 1; any free port with --port 0)")
    s.add_argument("--rcvbuf", type=cli.positive_int, metavar="BYTES",
                   help="set SO_RCVBUF on the UDP socket (Linux doubles it, and keeps a minimum)")
    c.add_argument("--size", type=cli.positive_int, default=1000, metavar="BYTES",
                   help="bytes of payload per datagram (default: 1000; beyond 65507 over IPv4, 65527 over IPv6, "
                   "sendto() refuses it)")
    c.add_argument("--dont-fragment", action="store_true",
                   help="forbid fragmentation (IP_MTU_DISCOVER = IP_PMTUDISC_DO, or IPV6_DONTFRAG): "
                   "a datagram over the path MTU is refused, EMSGSIZE")
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--burst", type=cli.positive_int, metavar="N",
                      help="send N datagrams at once while the server holds its socket unread, then ask it "
                      "how many it kept (over its TCP control connection)")
    mode.add_argument("--refusals", type=cli.positive_int, metavar="N",
                      help="send N datagrams to a closed port, one at a time, counting the ECONNREFUSED answers")
    c.add_argument("--wait", type=cli.seconds, default=0.1, metavar="S",
                   help="with --refusals: seconds to wait for the error after each datagram (default: 0.1)")
    c.add_argument("--control-port", type=cli.port, metavar="N",
                   help="with --burst: the server's TCP control port (default: the UDP port + 1)")
    c.add_argument("--settle", type=cli.non_negative_seconds, default=0.2, metavar="S",
                   help="with --burst: seconds to let the last datagrams arrive before the count (default: 0.2)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
