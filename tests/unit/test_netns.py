"""tests.netns: a thread moves into a network namespace of its own, loopback up, and comes back; or nothing changes."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import netns


def in_a_thread(body: Callable[[], Any]) -> Any:
    """Run ``body`` on a thread of its own: a namespace is a thread's, so this session's main thread never moves."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(body())
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


def echo_on_loopback(family: socket.AddressFamily, address: str) -> bytes:
    with socket.create_server((address, 0), family=family) as server, \
            socket.create_connection(server.getsockname()[:2], timeout=5) as client:
        accepted, _ = server.accept()
        with accepted:
            client.sendall(b"hello")
            return accepted.recv(5)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="needs root on Linux")
def test_a_thread_moves_into_a_namespace_of_its_own_with_loopback_up_and_comes_back() -> None:
    here = netns.current()

    def body() -> tuple[bool, str, bytes, bytes, set[str], str]:
        with netns.private_network() as moved:
            inside = netns.current()
            v4 = echo_on_loopback(socket.AF_INET, "127.0.0.1")
            v6 = echo_on_loopback(socket.AF_INET6, "::1")
            interfaces = {line.split()[-1] for line in Path("/proc/thread-self/net/if_inet6").read_text().splitlines()
                          if line.startswith("fe80")}
        return moved, inside, v4, v6, interfaces, netns.current()

    moved, inside, v4, v6, link_local, after = in_a_thread(body)
    assert moved and inside != here, "the thread was not moved"
    assert (v4, v6) == (b"hello", b"hello"), "lo is not up in the new namespace"
    if shutil.which("ip"):
        assert link_local == set(netns.LINK_LOCAL_PAIR), "no link-local addresses, as a lab host has"
    assert after == here and netns.current() == here


def test_without_root_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    here = netns.current()
    with netns.private_network() as moved:
        assert not moved and netns.current() == here


class RefusingLibc:
    """A libc whose unshare fails, as under a seccomp profile or without CAP_SYS_ADMIN."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def unshare(self, flags: int) -> int:
        return -1


def test_a_refused_unshare_changes_nothing_and_leaks_no_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.ctypes, "CDLL", RefusingLibc)
    here, descriptors = netns.current(), len(os.listdir("/proc/self/fd"))
    assert netns.enter() is None
    assert netns.current() == here and len(os.listdir("/proc/self/fd")) == descriptors
