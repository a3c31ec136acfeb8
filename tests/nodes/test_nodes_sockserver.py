"""The socketserver echo servers: threading and forking TCP, threading UDP, IPv4 and IPv6."""

from __future__ import annotations

import socket

import pytest
from nodetest import Lab, alive, call_client, children, wait_until

TCP_KINDS = ["threading-tcp", "forking-tcp"]


@pytest.mark.parametrize("kind, proto", [("threading-tcp", "tcp"), ("forking-tcp", "tcp"), ("threading-udp", "udp")])
def test_each_kind_serves_ipv4_and_ipv6_from_one_dual_stack_socket(lab: Lab, kind: str, proto: str) -> None:
    server = lab.start("sockserver", "--kind", kind, "--bind", "::", "--dual-stack", "--port", "0")
    assert server.where == f"[::]:{server.port}" and "dual-stack" in server.log()
    first = lab.client("sockserver", "--proto", proto, "--to", f"127.0.0.1:{server.port}", "--send", "four")
    assert first["outcome"] == "echoed" and first["reply"] == "four"
    assert call_client("sockserver", "--proto", proto, "--to", f"[::1]:{server.port}")["outcome"] == "echoed"


@pytest.mark.parametrize("kind, proto", [("threading-tcp", "tcp"), ("threading-udp", "udp")])
def test_v6only_is_honoured(lab: Lab, kind: str, proto: str) -> None:
    server = lab.start("sockserver", "--kind", kind, "--bind", "::", "--v6only", "--port", "0")
    extra = ("--connected",) if proto == "udp" else ()
    assert call_client("sockserver", "--proto", proto, "--to", f"127.0.0.1:{server.port}", *extra)[
        "outcome"] == "refused"
    assert call_client("sockserver", "--proto", proto, "--to", f"[::1]:{server.port}")["outcome"] == "echoed"


@pytest.mark.parametrize("kind", TCP_KINDS)
def test_tcp_kinds_serve_clients_concurrently(lab: Lab, kind: str) -> None:
    server = lab.start("sockserver", "--kind", kind, "--bind", "127.0.0.1", "--port", "0")
    clients = [socket.create_connection(("127.0.0.1", server.port), 5) for _ in range(20)]
    try:
        if kind == "forking-tcp":
            wait_until(lambda: len(children(server.pid)) == 20, what="a process per connection")
        for i, sock in reversed(list(enumerate(clients))):  # the last to connect is answered first
            sock.sendall(f"client {i}".encode())
            assert sock.recv(100) == f"client {i}".encode()
    finally:
        for sock in clients:
            sock.close()


def test_forking_server_stops_its_children_on_sigterm(lab: Lab) -> None:
    server = lab.start("sockserver", "--kind", "forking-tcp", "--bind", "127.0.0.1", "--port", "0")
    held = [socket.create_connection(("127.0.0.1", server.port), 5) for _ in range(3)]
    try:
        forked = wait_until(lambda: len(children(server.pid)) == 3 and children(server.pid), what="3 children")
        assert server.stop() == 0
        assert not any(alive(pid) for pid in forked)
        for sock in held:
            sock.settimeout(5)
            assert sock.recv(1) == b""
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("kind", TCP_KINDS)
def test_idle_tcp_clients_are_timed_out(lab: Lab, kind: str) -> None:
    server = lab.start("sockserver", "--kind", kind, "--bind", "127.0.0.1", "--port", "0", "--timeout", "0.5")
    with socket.create_connection(("127.0.0.1", server.port), 5) as idle:
        port = idle.getsockname()[1]
        assert idle.recv(1) == b""
    server.wait_for_log(rf"timed out 127\.0\.0\.1:{port}: idle for 0\.5 s")
    assert call_client("sockserver", "--to", server.endpoint())["outcome"] == "echoed"


def test_udp_datagrams_larger_than_socketservers_default_are_whole(lab: Lab) -> None:
    server = lab.start("sockserver", "--kind", "threading-udp", "--bind", "::1", "--port", "0", "--quiet")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        data = bytes(range(256)) * 200  # 51,200 bytes: socketserver's default buffer is 8192
        sock.sendto(data, ("::1", server.port))
        assert sock.recv(65535) == data
