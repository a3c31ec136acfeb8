"""Who am I to the server? It answers each client with the addresses it saw.

    python -m nodes.whoami serve --bind :: --dual-stack --port 65432
    python -m nodes.whoami client --to 198.18.0.2:65432
    python -m nodes.whoami serve --proto both --bind 0.0.0.0 --port 65432
    python -m nodes.whoami client --proto udp --to [fd50:c1ab:0:1::2]:65432 --connected

A client knows its own side of a connection; only the server knows how the
client looks from there. The server (TCP, UDP, or both on one port) answers
each TCP connection (then closes it) or each UDP datagram with one JSON line: the peer address it got from
``accept``/``recvfrom`` and the local address the client reached. That is
how an IPv4 client of a dual-stack ``::`` server turns out to be
``::ffff:198.18.0.3`` there, and how a link-local peer carries the scope of
the server's own interface. A UDP socket bound to a wildcard does not know
which of its addresses a datagram was sent to; the server asks the kernel
with ``IP_PKTINFO`` / ``IPV6_RECVPKTINFO``, and answers from that address.
A UDP client is unconnected unless ``--connected``: only a connected one is
told "refused" when nobody listens.

With ``--proto both`` the client asks over TCP, then over connected UDP, at
the same address: one program run for both halves of a cell of a table.

Client result (one JSON object on stdout), keys:
  outcome         ok (the server answered; with --proto both, over both),
                  or a failure word (refused, timeout, reset, unresolved,
                  ...): with --proto both, TCP's failure, else UDP's;
                  mismatch if the answer was not the server's JSON
  errno, detail   errno name and words of a failure, or null
  proto           "tcp", "udp" or "both"
  target          the server as given with --to
  peer, local     the client's own view: the server's and its own address
                  (HOST:PORT); with --proto both, of the TCP connection
  attempts        each address the name resolved to that was tried, in
                  getaddrinfo's order, until one answered (with --proto both,
                  TCP's): [{"peer", "outcome", "errno", "detail",
                  "elapsed_ms"}, ...]. TCP tries the next address when
                  connect() fails; UDP when no answer comes: refused at once
                  (connected), or after --timeout (unconnected)
  seen_as         the client's address as the server saw it (host only)
  seen_port       the client's port as the server saw it
  server_local    the server's address the client reached, as the server
                  saw it (host only)
  server_family   "ipv4" or "ipv6": the family of the server's socket
  tcp, udp        with --proto both: the outcome of each attempt, else null
  udp_seen_as, udp_server_local, udp_attempts   with --proto both:
                  seen_as, server_local and attempts of the UDP question,
                  else null
  elapsed_ms      from the first send (or connect) to the (last) answer
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import selectors
import socket
import sys
import time
from typing import Any

from nodes import cli
from nodes.endpoints import Endpoint, format_sockaddr, resolve, try_each
from nodes.listen import BindError, describe, open_listener
from nodes.outcomes import Outcome

MAX_DATAGRAM = 65535
KEYS = ("outcome", "errno", "detail", "proto", "target", "peer", "local", "attempts", "seen_as", "seen_port",
        "server_local", "server_family", "tcp", "udp", "udp_seen_as", "udp_server_local",
        "udp_attempts")  # the result's, in order (elapsed_ms last)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None)  # absent in 3.11


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def split(sockaddr: tuple) -> tuple[str, int]:
    """(host, port) of a socket address, the host written with its scope if it has one."""
    host, _, port = (format_sockaddr(sockaddr) or "").rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def answer(sock: socket.socket, peer: tuple, local_host: str, local_port: int) -> bytes:
    seen_as, seen_port = split(peer)
    family = "ipv6" if sock.family == socket.AF_INET6 else "ipv4"
    return json.dumps({"peer": seen_as, "peer_port": seen_port, "local": local_host,
                       "local_port": local_port, "family": family}).encode() + b"\n"


def answer_connection(conn: socket.socket, peer: tuple, log: logging.Logger) -> None:
    """Tell the client of an accepted connection how it was seen, close."""
    with conn:
        conn.setblocking(True)
        local_host, local_port = split(conn.getsockname())
        try:
            conn.sendall(answer(conn, peer, local_host, local_port))
        except OSError as exc:
            log.warning("error %s: %s", format_sockaddr(peer), exc.strerror or exc)
            return
    log.info("answered %s over tcp (it reached %s port %d)", format_sockaddr(peer), local_host, local_port)


def ask_for_destination(sock: socket.socket) -> None:
    """Have the kernel attach each datagram's destination address (where it is supported)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        elif IP_PKTINFO is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


def destination(sock: socket.socket, ancillary: list[tuple[int, int, bytes]]) -> tuple[str, list]:
    """The address a datagram was sent to, and the ancillary data that makes a reply come from it.

    Without PKTINFO (not Linux, say) the socket's own address is all there is.
    """
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == getattr(socket, "IPV6_PKTINFO", None) and len(data) >= 20:
            return socket.inet_ntop(socket.AF_INET6, data[:16]), [(level, kind, data[:20])]
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            address = data[8:12]  # in_pktinfo: ifindex, spec_dst, addr; a reply sets spec_dst
            return socket.inet_ntop(socket.AF_INET, address), [(level, kind, bytes(4) + address + bytes(4))]
    return split(sock.getsockname())[0], []


def answer_datagram(sock: socket.socket, log: logging.Logger) -> None:
    """Answer one datagram, from the very address it was sent to, as a multi-homed UDP server must."""
    port = sock.getsockname()[1]
    try:
        _, ancillary, _, peer = sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(64))
        local_host, reply_from = destination(sock, ancillary)
        sock.sendmsg([answer(sock, peer, local_host, port)], reply_from, 0, peer)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:  # e.g. an ICMP error reported for an earlier answer
        log.warning("error: %s", exc.strerror or exc)
        return
    log.info("answered %s over udp (it reached %s port %d)", format_sockaddr(peer), local_host, port)


def open_sockets(args: argparse.Namespace, log: logging.Logger) -> list[socket.socket]:
    """Bind UDP, TCP or both on one port, or exit 2 with the reason.

    UDP first: once TCP listens (what readiness checks), both are there. With
    --port 0 the TCP socket takes the port UDP got, which TCP may have in use:
    then both are tried again on another port.
    """
    kinds = {"udp": [socket.SOCK_DGRAM], "tcp": [socket.SOCK_STREAM]}.get(args.proto,
                                                                          [socket.SOCK_DGRAM, socket.SOCK_STREAM])
    for _ in range(20):
        opened: list[socket.socket] = []
        try:
            for kind in kinds:
                port = opened[0].getsockname()[1] if opened else args.port
                opened.append(open_listener(Endpoint(args.bind, port), kind, v6only=args.v6only))
        except BindError as exc:
            for sock in opened:
                sock.close()
            if not (args.port == 0 and opened and exc.errno == errno.EADDRINUSE):
                cli.fail(exc.strerror or str(exc))
            continue
        except socket.gaierror as exc:
            cli.fail(f"cannot bind {Endpoint(args.bind, args.port)}: {exc.strerror}")
        for sock in opened:
            log.info("listening on %s", describe(sock))
        return opened
    cli.fail("no port free for both TCP and UDP")


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Answer each client with the addresses it was seen with.

    Answer each TCP connection or UDP datagram with the peer and local address the server saw, as one JSON line.
    """
    with contextlib.ExitStack() as stack, selectors.DefaultSelector() as selector:
        acceptor: cli.Acceptor | None = None
        for sock in open_sockets(args, log):
            stack.enter_context(sock)
            if sock.type == socket.SOCK_STREAM:
                acceptor = cli.Acceptor(sock, selector, log, batch=1)  # registers it, with None as its key's data
            else:
                sock.setblocking(False)
                ask_for_destination(sock)
                selector.register(sock, selectors.EVENT_READ, sock)
        while True:  # answer whichever socket is ready: a connection to accept, or a datagram
            for key, _ in selector.select(acceptor.wait(None) if acceptor else None):
                if key.data is not None:
                    answer_datagram(key.data, log)
                elif acceptor is not None:
                    for conn, peer in acceptor.accept():  # sock.accept(), without blocking
                        answer_connection(conn, peer, log)
            if acceptor is not None:
                acceptor.resume_if_due(time.monotonic())


def ask_tcp(args: argparse.Namespace, result: dict[str, Any]) -> bytes:
    with cli.connect(args.to, args.timeout, attempts=result["attempts"]) as sock:  # each address in turn
        result.update(cli.addresses(sock))
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        return reply


def ask_udp(args: argparse.Namespace, result: dict[str, Any]) -> bytes:
    """Ask over UDP: each address the name resolves to in turn, until one answers.

    UDP has no handshake to fail, so an address fails when no answer comes
    from it: a connected socket hears ECONNREFUSED (the ICMP port
    unreachable) on its recv, at once; an unconnected one hears nothing and
    waits ``--timeout``; either way, the next address is asked.
    """

    def question(family: int, sockaddr: tuple) -> bytes:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(args.timeout)
            if args.connected or args.proto == "both":  # only a connected socket hears of ICMP errors (refused)
                sock.connect(sockaddr)
                sock.send(b"who am I?")
            else:
                sock.sendto(b"who am I?", sockaddr)
            result["local"] = format_sockaddr(sock.getsockname())
            reply, source = sock.recvfrom(MAX_DATAGRAM)
            result["peer"] = format_sockaddr(source)
            return reply

    return try_each(resolve(args.to, socket.SOCK_DGRAM), question, result["attempts"])


def ask(proto: str, args: argparse.Namespace) -> dict[str, Any]:
    """One question over one transport: what the client saw, and what the server says it saw."""
    result: dict[str, Any] = {
        "outcome": Outcome.ERROR.value, "errno": None, "detail": None, "peer": None, "local": None,
        "seen_as": None, "seen_port": None, "server_local": None, "server_family": None, "attempts": [],
    }
    try:
        reply = (ask_tcp if proto == "tcp" else ask_udp)(args, result)
    except OSError as exc:
        result.update(cli.failure(exc))
        return result
    try:
        seen = json.loads(reply)
        result.update(seen_as=seen["peer"], seen_port=seen["peer_port"], server_local=seen["local"],
                      server_family=seen["family"], outcome=Outcome.OK.value)
    except (ValueError, KeyError, TypeError):
        result.update(outcome=Outcome.MISMATCH.value, detail=f"not a whoami answer: {reply[:100]!r}")
    return result


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Ask the server how it sees this client, print one JSON result.

    Ask a whoami server which addresses it saw, and print them.
    """
    result: dict[str, Any] = {"proto": args.proto, "target": str(args.to)}
    if args.proto == "both":  # TCP's result, with UDP's beside it; the outcome is ok only if both are
        tcp, udp = ask("tcp", args), ask("udp", args)
        result |= tcp | {"tcp": tcp["outcome"], "udp": udp["outcome"], "udp_seen_as": udp["seen_as"],
                         "udp_server_local": udp["server_local"], "udp_attempts": udp["attempts"]}
        if tcp["outcome"] == Outcome.OK.value and udp["outcome"] != Outcome.OK.value:
            result.update(outcome=udp["outcome"], errno=udp["errno"], detail=f"UDP: {udp['detail']}")
    else:
        result |= ask(args.proto, args) | {"tcp": None, "udp": None, "udp_seen_as": None, "udp_server_local": None,
                                           "udp_attempts": None}
    return {key: result[key] for key in KEYS}


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("whoami", __doc__, serve, client)
    s.add_argument("--proto", choices=["tcp", "udp", "both"], default="tcp",
                   help="transport; both: TCP and UDP on the same port (default: tcp)")
    c.add_argument("--proto", choices=["tcp", "udp", "both"], default="tcp",
                   help="transport; both: ask over TCP, then over connected UDP (default: tcp)")
    c.add_argument("--connected", action="store_true",
                   help="UDP: connect() first, so that an ICMP port unreachable is reported (refused)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
