"""Multicast: receivers join a group, a sender sends once, the network delivers to every member.

    python -m nodes.multicast serve --bind 0.0.0.0 --port 65450 --group 239.1.2.3 --interface eth0
    python -m nodes.multicast serve --bind :: --v6only --port 65451 --group ff15::1:2:3 --interface eth0
    python -m nodes.multicast serve --bind 0.0.0.0 --port 65450
    python -m nodes.multicast client --to 239.1.2.3:65450 --interface eth0 --ttl 5 --no-loop
    python -m nodes.multicast client --to [ff15::1:2:3]:65451 --interface eth0

A group is an address of 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6); 239.0.0.0/8
and ff15::/16 are administratively (site) scoped, for a site's own use. A
receiver binds the port (with the wildcard address) and joins the group on
an interface: IP_ADD_MEMBERSHIP (IPv4), IPV6_JOIN_GROUP (IPv6). Its
kernel then accepts the group's datagrams from that network, and says so
to the network with an IGMP or MLD membership report (switches that snoop
them forward the group only where members are). Without ``--group`` the
server joins nothing: the same socket on the same port never sees the
group's datagrams from other hosts.

A sender needs no membership: it sends to the group's address. Three
socket options shape what it sends: IP_MULTICAST_IF (IPV6_MULTICAST_IF),
the interface to send from (named here, since a lab host has no default
route to pick one by); IP_MULTICAST_TTL (IPV6_MULTICAST_HOPS), how many
routers the datagram may cross (1 by default: this network only); and
IP_MULTICAST_LOOP (IPV6_MULTICAST_LOOP), whether members on the sender's
own host get a copy too (on by default).

The server answers each datagram, to its sender, with one JSON line: its
host name, the destination address the datagram carried (IP_PKTINFO,
IPV6_RECVPKTINFO), the TTL or hop limit it arrived with (IP_RECVTTL,
IPV6_RECVHOPLIMIT) and the group it joined. The client sends one datagram
and collects the answers for ``--wait`` seconds.

Client result (one JSON object on stdout):
  outcome         ok: at least one host answered; timeout: none did; refused:
                  ICMP port unreachable (a unicast --to where nobody listens);
                  or another failure
  errno, detail   errno name and words of a failure, or null
  target, local   the address sent to, and the client's own
  family          "ipv4" or "ipv6"
  ttl             the socket's multicast TTL or hop limit (1 unless --ttl said otherwise)
  loop            whether multicast loopback was on
  sent            1 once sendto() accepted the datagram, else 0
  answered        how many distinct hosts answered
  hosts           their host names, sorted, comma-separated ("" for none)
  to              the destination address(es) they saw, comma-separated
  ttls            the TTL(s) or hop limit(s) the datagram arrived with, comma-separated
  elapsed_ms      the whole attempt
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import socket
import struct
import time
from typing import Any

from nodes import cli
from nodes.endpoints import format_sockaddr, resolve
from nodes.outcomes import Outcome

MAX_DATAGRAM = 65535
# Linux's values; Python's socket module does not name them all.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: interface index, local address, destination address
PKTINFO6 = struct.Struct("=16si")  # struct in6_pktinfo: destination address, interface index
MREQN = struct.Struct("=4s4si")  # struct ip_mreqn: group, local address (any), interface index
INT = struct.Struct("=i")


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def received(ancillary: list[tuple[int, int, bytes]]) -> tuple[str | None, int | None]:
    """The destination address and the TTL (hop limit) of a received datagram, from its ancillary data."""
    to, ttl = None, None
    for level, kind, data in ancillary:
        if (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO) and len(data) >= PKTINFO.size:
            to = socket.inet_ntoa(PKTINFO.unpack_from(data)[2])
        elif (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO) and len(data) >= PKTINFO6.size:
            to = socket.inet_ntop(socket.AF_INET6, PKTINFO6.unpack_from(data)[0])
        elif (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            ttl = INT.unpack_from(data)[0]
    return to, ttl


def join(sock: socket.socket, group: str, interface: str) -> None:
    """Join ``group`` on the named interface: the kernel accepts its datagrams from that network from now on."""
    index = socket.if_nametoindex(interface)
    if sock.family == socket.AF_INET:
        membership = MREQN.pack(socket.inet_aton(group), bytes(4), index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    else:
        membership = socket.inet_pton(socket.AF_INET6, group) + INT.pack(index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Join a group (or not), receive datagrams, and tell each sender who got it, as what, with what TTL.

    Multicast receiver.
    """
    host = socket.gethostname()
    with cli.listener(args, socket.SOCK_DGRAM, log) as sock:
        if args.group:
            if (":" in args.group) != (sock.family == socket.AF_INET6):
                cli.fail(f"to join {args.group}, bind {'::' if ':' in args.group else '0.0.0.0'}")
            try:
                join(sock, args.group, args.interface)
            except OSError as exc:
                cli.fail(f"cannot join {args.group} on {args.interface}: {exc.strerror or exc}")
            log.info("joined %s on %s", args.group, args.interface)
        if sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)  # recvmsg() says what each datagram was sent to
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)  # ... and the TTL it arrived with
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        space = socket.CMSG_SPACE(PKTINFO6.size) + socket.CMSG_SPACE(INT.size)
        while True:
            data, ancillary, _, sender = sock.recvmsg(MAX_DATAGRAM, space)
            to, ttl = received(ancillary)
            log.info("received %d bytes from %s, sent to %s, TTL %s", len(data), format_sockaddr(sender), to, ttl)
            answer = {"host": host, "to": to, "ttl": ttl, "joined": args.group}
            try:
                sock.sendto(json.dumps(answer).encode(), sender)  # a unicast answer to the sender
            except OSError as exc:
                log.warning("error: %s", exc.strerror or exc)


def sender_options(sock: socket.socket, args: argparse.Namespace) -> None:
    """The interface, TTL and loopback of the multicast datagrams this socket sends, per family."""
    if sock.family == socket.AF_INET:
        level, interface, ttl, loop = (socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.IP_MULTICAST_TTL,
                                       socket.IP_MULTICAST_LOOP)
        recverr = IP_RECVERR
    else:
        level, interface, ttl, loop = (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.IPV6_MULTICAST_HOPS,
                                       socket.IPV6_MULTICAST_LOOP)
        recverr = IPV6_RECVERR
    if args.interface:
        index = socket.if_nametoindex(args.interface)
        sock.setsockopt(level, interface, MREQN.pack(bytes(4), bytes(4), index) if level == socket.IPPROTO_IP
                        else INT.pack(index))
    if args.ttl is not None:
        sock.setsockopt(level, ttl, args.ttl)
    sock.setsockopt(level, loop, int(args.loop))
    # Unconnected, the socket hears answers from any host; RECVERR lets it hear ICMP errors too (nobody
    # listens at a unicast --to). No host answers a multicast datagram with an ICMP error.
    sock.setsockopt(level, recverr, 1)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send one datagram to a group (or to one host) and collect who answers.

    Multicast sender.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "local": None,
        "family": None, "ttl": None, "loop": args.loop, "sent": 0, "answered": 0, "hosts": "", "to": "",
        "ttls": "",
    }
    answers: dict[str, dict[str, Any]] = {}
    try:
        family, sockaddr = resolve(args.to, socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sender_options(sock, args)
            result["family"] = "ipv4" if family == socket.AF_INET else "ipv6"
            result["ttl"] = sock.getsockopt(*((socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) if family == socket.AF_INET
                                              else (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS)))
            sock.sendto(args.send.encode(), sockaddr)
            result["sent"] = 1
            result["local"] = format_sockaddr(sock.getsockname())
            deadline = time.monotonic() + args.wait
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, sender = sock.recvfrom(MAX_DATAGRAM)
                except TimeoutError:
                    break
                answers[format_sockaddr(sender) or "?"] = json.loads(data)
    except OSError as exc:
        result.update(cli.failure(exc))
        return result
    hosts = sorted({answer["host"] for answer in answers.values()})
    result.update(answered=len(hosts), hosts=",".join(hosts),
                  to=",".join(sorted({str(answer["to"]) for answer in answers.values()})),
                  ttls=",".join(sorted({str(answer["ttl"]) for answer in answers.values()})))
    if hosts:
        result["outcome"] = Outcome.OK.value
    else:
        result.update(outcome=Outcome.TIMEOUT.value, detail=f"no answer within {args.wait:g} s")
    return result


def group(text: str) -> str:
    """An argparse type: a multicast group, 224.0.0.0/4 or ff00::/8."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None
    if not address.is_multicast:
        raise argparse.ArgumentTypeError(f"{text}: a group is an address of 224.0.0.0/4 or ff00::/8 "
                                         "(239.x.y.z or ff15::x for your own)")
    return str(address)


def interface(text: str) -> str:
    """An argparse type: the name of one of this host's interfaces."""
    try:
        socket.if_nametoindex(text)
    except OSError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interface of this host") from None
    return text


def ttl(text: str) -> int:
    value = cli.whole_number(text, 0, "must not be negative")
    if value > 255:
        raise argparse.ArgumentTypeError(f"{value}: a TTL is 0 to 255")
    return value


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("multicast", __doc__, serve, client, client_timeout=None, send="text to send")
    s.add_argument("--group", type=group, metavar="GROUP",
                   help="join this group (239.1.2.3 with --bind 0.0.0.0, ff15::1:2:3 with --bind ::); "
                   "without it, join nothing")
    s.add_argument("--interface", type=interface, default="lo", metavar="NAME",
                   help="with --group: the interface to join on (default: lo)")
    c.add_argument("--to", type=cli.endpoint, required=True, metavar="ADDR:PORT",
                   help="where to send: a group (239.1.2.3:65450, [ff15::1:2:3]:65451), or one host")
    c.add_argument("--interface", type=interface, metavar="NAME",
                   help="send multicast out of this interface (IP_MULTICAST_IF, IPV6_MULTICAST_IF; default: the "
                   "interface of the route to the group)")
    c.add_argument("--ttl", type=ttl, metavar="N",
                   help="set the multicast TTL (IPv6: hop limit): how many routers the datagram may cross, "
                   "0 to 255 (the kernel's default: 1, this network only)")
    c.add_argument("--no-loop", dest="loop", action="store_false",
                   help="multicast loopback off: members on the sender's own host get no copy")
    c.add_argument("--wait", type=cli.seconds, default=1.0, metavar="S",
                   help="collect answers for S seconds after sending (default: 1)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
