"""Echo over a Unix domain socket: a path in the file system instead of an address and a port.

    python -m nodes.unixecho serve --path /tmp/echo.sock
    python -m nodes.unixecho client --path /tmp/echo.sock --send "Hello, world"

The socket API is the same as for TCP (``AF_UNIX`` instead of ``AF_INET``,
a path instead of a (host, port) pair) and so is the echo loop, reused from
``nodes.echo``: one client at a time, each with an idle timeout. What
differs is around it. The peer is another process on this host, so the
server can ask the kernel who it is (``SO_PEERCRED``: pid and uid) and logs
that. And the address is a file: it outlives a server that dies, so the
server removes a stale one at start (after checking nobody answers on it,
and that it is a socket at all) and removes its own at exit. Permissions
on the file decide who may connect.

Client result (one JSON object on stdout): the keys of ``nodes.echo``'s,
with ``target`` and ``peer`` the socket's path and ``local`` null (a client
socket is usually unnamed).
Connecting to a path nobody listens on gives ``refused``; to a path that
does not exist, ``error`` with errno ``ENOENT``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import stat
import struct
from typing import Any

from nodes import cli, echo

CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv)


def remove_stale(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to touch anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        cli.fail(f"{path} exists and is not a socket: not removing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:  # nobody listens: a leftover
            os.unlink(path)
            return
        except OSError as exc:
            cli.fail(f"cannot check {path}: {exc.strerror or exc}")
    cli.fail(f"another server is listening on {path}")


def open_listener(path: str, log: logging.Logger) -> tuple[socket.socket, tuple[int, int]]:
    """Bind and listen at ``path``; return the socket and the file's identity (device, inode)."""
    remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen()
    except OSError as exc:
        sock.close()
        cli.fail(f"cannot bind {path}: {exc.strerror or exc}")
    info = os.stat(path)
    log.info("listening on unix %s", path)
    return sock, (info.st_dev, info.st_ino)


def remove_own(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file, unless someone replaced it with another since."""
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == identity:
            os.unlink(path)
    except FileNotFoundError:
        pass


def peer_credentials(conn: socket.socket, address: Any) -> str:
    """Who is on the other end: the kernel knows, for a Unix socket."""
    try:
        pid, uid, _ = CREDENTIALS.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, CREDENTIALS.size)
        )
    except (AttributeError, OSError):  # no SO_PEERCRED on this system
        return address or "an unnamed client"
    return f"pid {pid} (uid {uid})"


def serve(args: argparse.Namespace, log: logging.Logger) -> None:
    """Echo on a Unix socket, one client at a time.

    Unix domain socket echo server.
    """
    sock, identity = open_listener(args.path, log)
    try:
        with sock:
            echo.serve_forever(sock, log, timeout=args.timeout, peer_name=peer_credentials)
    finally:
        remove_own(args.path, identity)


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Send text over a Unix socket, read the echo, print one JSON result.

    Unix domain socket echo client.
    """
    result = echo.empty_result() | {"target": args.path}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(args.timeout)
        try:
            sock.connect(args.path)
        except OSError as exc:
            result.update(cli.failure(exc))
        else:
            result["peer"] = args.path
            result["local"] = sock.getsockname() or None
            result.update(echo.exchange(sock, args.send.encode(), args.timeout))
    return result


def parser() -> argparse.ArgumentParser:
    p, s, c = cli.subcommands("unixecho", __doc__, serve, client, listen=False, client_timeout=None)
    s.add_argument("--path", type=cli.non_empty, required=True, help="socket file to create (a stale one is replaced)")
    s.add_argument("--timeout", type=cli.seconds, default=30.0, metavar="S",
                   help="close a client that sends nothing for S seconds (default: 30)")
    c.add_argument("--path", type=cli.non_empty, required=True, help="socket file of the server")
    c.add_argument("--timeout", type=cli.seconds, default=5.0, metavar="S",
                   help="give up waiting after S seconds (default: 5)")
    cli.add_send_argument(c)  # after its own --path and --timeout, as the others' comes after --to and --timeout
    return p


if __name__ == "__main__":
    raise SystemExit(main())
