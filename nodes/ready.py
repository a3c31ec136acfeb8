"""Wait until a service is ready: a socket listens, its log says so, or a command says so.

Readiness is observed, never slept for: the lab asks this program (on the
service's own host) to poll ``/proc/net/{tcp,tcp6,udp,udp6,unix}`` until a
socket listens where the service was told to. Reading the tables instead of
connecting leaves a one-client-at-a-time server undisturbed, and costs one
exec for the whole wait instead of one per try. For programs that are not
socklab's, two more conditions: ``log:REGEX`` (a line of the service's log
matches) and ``command:LINE`` (a shell command line exits 0).

    python -m nodes.ready tcp://127.0.0.1:65432 --timeout 10 --pidfile /lab/run/echo.pid
    python -m nodes.ready 'log:Listening on' --log /lab/log/app.log

Exit status: 0 ready, 1 not ready in time, 3 the service exited first.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from nodes import cli

TCP_LISTEN = 0x0A
UDP_UNCONNECTED = 0x07  # a bound, unconnected UDP socket shows state CLOSE
UNIX_LISTENING = 1 << 16  # __SO_ACCEPTCON in the Flags column

NOT_READY, SERVICE_GONE = 1, 3
POLL_SECONDS = 0.02
COMMAND_POLL_SECONDS = 0.2  # a command costs a process per try


def decode_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net addresses are 32-bit words in host byte order, printed in hex."""
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b"".join(struct.pack("=I", w) for w in words))


def inet_sockets(proto: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]]:
    """(local address, port, state) for every IPv4 and IPv6 socket of a protocol."""
    found = []
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:  # IPv6 disabled
            continue
        for line in lines:
            fields = line.split()
            address, port = fields[1].split(":")
            found.append((decode_address(address), int(port, 16), int(fields[3], 16)))
    return found


def listening(url: str) -> bool:
    """Is a socket ready at ``tcp://ADDR:PORT``, ``udp://ADDR:PORT`` or ``unix:///PATH``?

    A socket on the wildcard address of the same family counts, as does an
    IPv6 wildcard for an IPv4 address (a dual-stack ``::`` socket).
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return unix_listening(parts.path)
    wanted_state = TCP_LISTEN if parts.scheme == "tcp" else UDP_UNCONNECTED
    host = parts.hostname or ""
    wanted = ipaddress.ip_address(host.split("%")[0]) if host not in ("", "*") else None
    for address, port, state in inet_sockets(parts.scheme):
        if port != parts.port or state != wanted_state:
            continue
        if wanted is None or address == wanted or address.is_unspecified:
            return True
    return False


def unix_listening(path: str) -> bool:
    """A stream socket at ``path`` that listens, or a datagram socket bound there."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[7] != path:
            continue
        flags, kind = int(fields[3], 16), int(fields[4], 16)
        if flags & UNIX_LISTENING or kind == socket.SOCK_DGRAM:
            return True
    return False


def alive(pidfile: Path | None) -> bool:
    """False once the service's process is gone (its pidfile names a dead pid).

    No pidfile yet, or one still being written (empty), names nobody yet:
    the service is still starting.
    """
    if pidfile is None:
        return True
    try:
        pid = int(pidfile.read_text())
    except (FileNotFoundError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but owned by another user
        return True
    return True


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.ready", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("url", metavar="CONDITION",
                   help="tcp://ADDR:PORT, udp://ADDR:PORT or unix:///PATH (ADDR * for any address); "
                   "log:REGEX (a line of the --log file matches); command:LINE (sh -c LINE exits 0)")
    p.add_argument("--timeout", type=cli.seconds, default=10.0, metavar="S",
                   help="give up after S seconds (default: 10)")
    p.add_argument("--pidfile", type=Path, help="stop waiting if the process named here exits")
    p.add_argument("--log", type=Path, metavar="FILE", help="the service's log, for log:REGEX")
    return p


def condition(args: argparse.Namespace) -> Callable[[], bool]:
    """The test that the wait repeats, or a usage error for a condition that cannot be tested."""
    if args.url.startswith("log:"):
        try:
            pattern = re.compile(args.url.removeprefix("log:"))
        except re.error as exc:
            cli.fail(f"{args.url!r}: not a regular expression ({exc})")
        if args.log is None:
            cli.fail(f"{args.url!r}: give the service's log with --log FILE")
        return lambda: logged(args.log, pattern)
    if args.url.startswith("command:"):
        line = args.url.removeprefix("command:")
        return lambda: subprocess.run(["sh", "-c", line], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, check=False).returncode == 0
    parts = urlsplit(args.url)
    if parts.scheme not in ("tcp", "udp", "unix"):
        cli.fail(f"{args.url!r}: use tcp://ADDR:PORT, udp://ADDR:PORT, unix:///PATH, log:REGEX or command:LINE")
    if parts.scheme != "unix":
        try:
            if parts.port is None:
                raise ValueError("no port given")
        except ValueError as exc:  # urlsplit refuses ports out of range
            cli.fail(f"{args.url!r}: {exc}")
    return lambda: listening(args.url)


def logged(log: Path, pattern: re.Pattern[str]) -> bool:
    """Whether a line of the log matches (a log not written yet matches nothing)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return False
    return any(pattern.search(line) for line in text.splitlines())


def wait(args: argparse.Namespace) -> int:
    """Poll until the condition holds; the exit status says how the wait ended."""
    ready = condition(args)
    pause = COMMAND_POLL_SECONDS if args.url.startswith("command:") else POLL_SECONDS
    deadline = time.monotonic() + args.timeout
    while not ready():
        if not alive(args.pidfile):
            print(f"the service exited before {args.url} was ready", file=sys.stderr)
            return SERVICE_GONE
        if time.monotonic() > deadline:
            print(f"nothing ready at {args.url} after {args.timeout:g} s", file=sys.stderr)
            return NOT_READY
        time.sleep(pause)
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv, client=wait)


if __name__ == "__main__":
    raise SystemExit(main())
