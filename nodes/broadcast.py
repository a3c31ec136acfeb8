"""UDP broadcast: one sendto() that every host of the network receives, once the sender says SO_BROADCAST.

    python -m nodes.broadcast serve --bind 0.0.0.0 --port 65440
    python -m nodes.broadcast client --to 198.18.0.255:65440
    python -m nodes.broadcast client --to 198.18.0.255:65440 --no-so-broadcast

A network's broadcast address (its subnet with every host bit set,
198.18.0.255 for 198.18.0.0/24) names every host on it at once. The
sender's kernel refuses to send there unless the socket has SO_BROADCAST
set: sendto() fails with EACCES, a guard against broadcasting by mistake.
With it, one datagram leaves, addressed to the whole network, and every
host's kernel takes it; on each, a socket bound to the port with the
wildcard address (0.0.0.0) receives it, and a socket bound to the host's own
unicast address does not (the datagram is not addressed to that address).

The server is such a receiver. Each datagram it receives it answers, to the
sender, with one JSON line: its host name, the destination address the
datagram carried (IP_PKTINFO: the broadcast address, not its own) and the
text. The client sends one datagram, then collects answers for ``--wait``
seconds: it learns which hosts received it.

Client result (one JSON object on stdout):
  outcome         ok: at least one host answered; timeout: none did;
                  denied (errno EACCES): sendto() to a broadcast address
                  without SO_BROADCAST; refused: ICMP port unreachable
                  (a unicast --to where nobody listens); or another failure
  errno, detail   errno name and words of a failure, or null
  target, local   the address sent to, and the client's own
  so_broadcast    whether SO_BROADCAST was set
  sent            1 once sendto() accepted the datagram, else 0
  answered        how many distinct hosts answered
  hosts           their host names, sorted, comma-separated ("" for none)
  to              the destination address(es) they saw, comma-separated
  peers           the addresses the answers came from, sorted
  elapsed_ms      the whole attempt
"""

from __future__ import annotations

import argparse
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
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's values; Python's socket module does not name them all
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: interface index, local address, destination address


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def destination(ancillary: list[tuple[int, int, bytes]]) -> str | None:
    """The destination address of a received IPv4 datagram, from its IP_PKTINFO ancillary data."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= PKTINFO.size:
            return socket.inet_ntoa(PKTINFO.unpack_from(data)[2])
    return None


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Receive datagrams (broadcast ones too) and tell each sender who got it and as what.

    Broadcast receiver.
    """
    host = socket.gethostname()
    with cli.listener(args, socket.SOCK_DGRAM, log) as sock:
        if sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)  # recvmsg() says what each datagram was sent to
        while True:
            data, ancillary, _, sender = sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(PKTINFO.size))
            to = destination(ancillary)
            log.info("received %d bytes from %s, sent to %s", len(data), format_sockaddr(sender), to)
            answer = {"host": host, "to": to, "text": data[:200].decode("utf-8", "replace")}
            try:
                sock.sendto(json.dumps(answer).encode(), sender)  # a unicast answer to the sender
            except OSError as exc:
                log.warning("error: %s", exc.strerror or exc)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send one datagram (to a broadcast address, say) and collect who answers.

    Broadcast sender.
    """
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "target": str(args.to), "local": None,
        "so_broadcast": args.so_broadcast, "sent": 0, "answered": 0, "hosts": "", "to": "", "peers": [],
    }
    answers: dict[str, dict[str, Any]] = {}
    try:
        family, sockaddr = resolve(args.to, socket.SOCK_DGRAM, socket.AF_INET)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            if args.so_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            # Unconnected, the socket hears answers from any host; IP_RECVERR lets it hear ICMP errors too
            # (nobody listens at a unicast --to). No host answers a broadcast with an ICMP error.
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            sock.sendto(args.send.encode(), sockaddr)  # EACCES for a broadcast address without SO_BROADCAST
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
    result.update(answered=len(hosts), hosts=",".join(hosts), peers=sorted(answers),
                  to=",".join(sorted({str(answer["to"]) for answer in answers.values()})))
    if hosts:
        result["outcome"] = Outcome.OK.value
    else:
        result.update(outcome=Outcome.TIMEOUT.value, detail=f"no answer within {args.wait:g} s")
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("broadcast", __doc__, serve, client, client_timeout=None,
                              send="text to send")
    c.add_argument("--to", type=cli.endpoint, required=True, metavar="ADDR:PORT",
                   help="where to send: a network's broadcast address (198.18.0.255:65440), or one host's")
    c.add_argument("--no-so-broadcast", dest="so_broadcast", action="store_false",
                   help="do not set SO_BROADCAST: a broadcast address is then refused (EACCES)")
    c.add_argument("--wait", type=cli.seconds, default=1.0, metavar="S",
                   help="collect answers for S seconds after sending (default: 1)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
