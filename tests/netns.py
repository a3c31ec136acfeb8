"""A network namespace of the test process's own, so that its loopback connections stay out of the host's tables.

Why: the node tests (tests/nodes) open more than 10,000 connections on
127.0.0.1. In the host's own network namespace, where the Docker engine's
iptables rules make the kernel track connections, each of them leaves an
entry in the connection-tracking table for minutes (TIME_WAIT alone is
kept 120 s), and the engine dumps that whole table on every endpoint it
removes: a lab's teardown then takes 0.3-0.7 s longer (BENCHMARKS.md,
"teardown"). A namespace made with ``unshare(CLONE_NEWNET)`` has only its
own ``lo`` and no firewall rules, so nothing there makes the kernel track a
connection, and whatever happens on its loopback is gone with it.

A namespace belongs to a thread: ``enter`` moves the calling thread (the
test session's main thread); the threads and processes it starts from then
on are born there, and those already running stay where they are. The
Docker engine is reached over its unix socket, a path in the file system,
which works from any network namespace. Only root (CAP_SYS_ADMIN) may do
this, on Linux; anywhere else ``enter`` returns None and nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000  # <sched.h>
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914  # <linux/sockios.h>
IFF_UP = 0x1
LINK_LOCAL_PAIR = ("linklocal0", "linklocal1")  # not br-* or veth*: tests take those for the engine's, come and go
_IFREQ = struct.Struct("16sH14x")  # struct ifreq: the interface's name, then ifr_flags (a short) in a 24-byte union


THIS_THREADS = "/proc/thread-self/ns/net"  # the calling thread's, not the process's first thread's


def current() -> str:
    """The calling thread's network namespace, as the kernel names it (``net:[4026531840]``)."""
    return os.readlink(THIS_THREADS)


def enter() -> int | None:
    """Move the calling thread into a new network namespace with ``lo`` up.

    Returns a file descriptor of the namespace it was in, for ``leave``; or
    None, having changed nothing, where that cannot be done (not Linux, not
    root, the kernel or a seccomp profile refuses).
    """
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    previous = os.open(THIS_THREADS, os.O_RDONLY | os.O_CLOEXEC)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(previous)
        return None
    try:
        loopback_up()
    except OSError:
        leave(previous)
        return None
    link_local_interfaces()
    return previous


def leave(previous: int) -> None:
    """Back to the namespace ``enter`` left (the new one goes once nothing in it is left)."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if libc.setns(previous, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns back to the test session's network namespace: {os.strerror(error)}")
    finally:
        os.close(previous)


def loopback_up() -> None:
    """``ip link set lo up``, as an ioctl: a new namespace's ``lo`` starts down (no 127.0.0.1, no ::1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        name = b"lo"
        _, flags = _IFREQ.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ.pack(name, 0)))
        fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ.pack(name, flags | IFF_UP))


def link_local_interfaces() -> bool:
    """A veth pair, both ends up, so that the namespace has link-local IPv6 addresses as a lab host has; best effort.

    A host's own namespace has them on whatever interfaces it has (or not:
    the test of scoped link-local addresses skips then); a new one has only
    ``lo``. With duplicate address detection off they are usable at once.
    False (and the namespace as it was) without ``ip`` or veth.
    """
    ip = shutil.which("ip")
    if ip is None:
        return False
    try:  # /proc/sys/net is the namespace of the thread that opens it: this one's, the new one
        Path("/proc/sys/net/ipv6/conf/default/accept_dad").write_text("0")
    except OSError:
        return False
    first, second = LINK_LOCAL_PAIR
    for argv in ([ip, "link", "add", first, "type", "veth", "peer", "name", second], [ip, "link", "set", first, "up"],
                 [ip, "link", "set", second, "up"]):
        if subprocess.run(argv, capture_output=True, timeout=10).returncode != 0:
            return False
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if any(line.split()[-1] == first for line in Path("/proc/thread-self/net/if_inet6").read_text().splitlines()):
            return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def private_network() -> Iterator[bool]:
    """The body runs in a network namespace of its own if it can (True), else where it was (False)."""
    previous = enter()
    try:
        yield previous is not None
    finally:
        if previous is not None:
            leave(previous)
