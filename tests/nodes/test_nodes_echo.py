"""The blocking TCP echo server and its client."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "sent", "received", "reply", "elapsed_ms"}


@pytest.fixture(scope="module")
def echo(module_lab: Lab) -> Server:
    return module_lab.start("echo", "--bind", "127.0.0.1", "--port", "0", "--timeout", "0.5")


def test_client_gets_its_echo(lab: Lab, echo: Server) -> None:
    result = lab.client("echo", "--to", echo.endpoint(), "--send", "Hello, world")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed" and result["reply"] == "Hello, world"
    assert result["sent"] == result["received"] == 12
    assert result["peer"] == echo.endpoint() and result["local"].startswith("127.0.0.1:")
    port = result["local"].rpartition(":")[2]
    echo.wait_for_log(rf"accepted 127\.0\.0\.1:{port}\n.*closed 127\.0\.0\.1:{port} \(12 bytes echoed\)")


def test_a_large_echo_arrives_in_many_pieces_and_is_reassembled(echo: Server) -> None:
    text = "".join(chr(0x20 + i % 90) for i in range(100_000))  # within the sockets' buffers: see nodes.echo
    result = call_client("echo", "--to", echo.endpoint(), "--send", text)
    assert result["outcome"] == "echoed" and result["received"] == 100_000


def test_one_client_at_a_time_and_a_silent_one_is_timed_out(echo: Server) -> None:
    with socket.create_connection(("127.0.0.1", echo.port)) as silent:
        port = silent.getsockname()[1]
        echo.wait_for_log(rf"accepted 127\.0\.0\.1:{port}\n")  # the server serves it, so the next one waits
        result = call_client("echo", "--to", echo.endpoint(), "--send", "next")
        assert silent.recv(1) == b""
    assert result["outcome"] == "echoed"
    assert result["elapsed_ms"] >= 300, "the second client should have waited for the first one's timeout"
    echo.wait_for_log(rf"timed out 127\.0\.0\.1:{port}: idle for 0\.5 s, closing")


def test_many_clients_queue_and_all_get_their_echo(echo: Server) -> None:
    def one(i: int) -> bytes:
        with socket.create_connection(("127.0.0.1", echo.port), 10) as sock:
            data = f"client {i}".encode() * 100
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            return reply

    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(one, range(100)))
    assert replies == [f"client {i}".encode() * 100 for i in range(100)]


def test_a_client_resetting_mid_echo_does_not_stop_the_server(echo: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", echo.port))
    port = sock.getsockname()[1]
    sock.sendall(b"x" * 4_000_000)  # more than fits in the buffers while we do not read
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    echo.wait_for_log(rf"(error|closed) 127\.0\.0\.1:{port}")
    assert call_client("echo", "--to", echo.endpoint())["outcome"] == "echoed"


def fake_server(handle: Callable[[socket.socket], None]) -> tuple[int, Callable[[], None]]:
    listening = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listening.accept()
        with conn:
            handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    return listening.getsockname()[1], listening.close


@pytest.fixture
def fake() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    closers: list[Callable[[], None]] = []

    def make(handle: Callable[[socket.socket], None]) -> int:
        port, close = fake_server(handle)
        closers.append(close)
        return port

    yield make
    for close in closers:
        close()


def test_client_reports_mismatch(fake: Callable[..., int]) -> None:
    port = fake(lambda conn: conn.sendall(conn.recv(100).upper()))
    result = call_client("echo", "--to", f"127.0.0.1:{port}", "--send", "hello")
    assert result["outcome"] == "mismatch" and result["reply"] == "HELLO"


def test_client_reports_closed(fake: Callable[..., int]) -> None:
    port = fake(lambda conn: conn.sendall(conn.recv(100)[:2]))
    result = call_client("echo", "--to", f"127.0.0.1:{port}", "--send", "hello")
    assert result["outcome"] == "closed" and result["received"] == 2


def test_client_reports_timeout(fake: Callable[..., int]) -> None:
    port = fake(lambda conn: time.sleep(1))
    result = call_client("echo", "--to", f"127.0.0.1:{port}", "--timeout", "0.3")
    assert result["outcome"] == "timeout" and result["errno"] is None


def test_ipv6_loopback(lab: Lab) -> None:
    server = lab.start("echo", "--bind", "::1", "--port", "0")
    assert server.where == f"[::1]:{server.port}"
    assert call_client("echo", "--to", f"[::1]:{server.port}")["outcome"] == "echoed"
    assert call_client("echo", "--to", f"127.0.0.1:{server.port}")["outcome"] == "refused"


def test_dual_stack_and_v6only(lab: Lab) -> None:
    dual = lab.start("echo", "--bind", "::", "--dual-stack", "--port", "0")
    assert "(dual-stack)" in dual.log()
    result = call_client("echo", "--to", f"127.0.0.1:{dual.port}")
    assert result["outcome"] == "echoed"
    dual.wait_for_log(r"accepted \[::ffff:127\.0\.0\.1\]:")
    only = lab.start("echo", "--bind", "::", "--v6only", "--port", "0")
    assert "(IPv6 only)" in only.log()
    assert call_client("echo", "--to", f"127.0.0.1:{only.port}")["outcome"] == "refused"
    assert call_client("echo", "--to", f"[::1]:{only.port}")["outcome"] == "echoed"


def test_empty_bind_means_every_ipv4_address(lab: Lab) -> None:
    server = lab.start("echo", "--bind", "", "--port", "0")
    assert server.where == f"0.0.0.0:{server.port}"
    assert call_client("echo", "--to", f"127.0.0.1:{server.port}")["outcome"] == "echoed"


def link_local() -> tuple[str, str] | None:
    """A link-local IPv6 address of this host and its interface, if there is one.

    Lab bridges and their veths are left out: they come and go as Docker tests
    running beside this one create and remove labs.
    """
    for line in Path("/proc/net/if_inet6").read_text().splitlines():
        hex_address, *_, name = line.split()
        if hex_address.startswith("fe80") and not name.startswith(("br-", "veth")):
            packed = bytes.fromhex(hex_address)
            return socket.inet_ntop(socket.AF_INET6, packed), name
    return None


def test_a_link_local_address_not_on_this_host_is_refused(lab: Lab) -> None:
    done = lab.run("echo", "serve", "--bind", "fe80::dead:beef%lo", "--port", "0")
    assert done.returncode == 2 and "that address is not on this host" in done.stderr


def test_link_local_addresses_get_their_scope(lab: Lab) -> None:
    found = link_local()
    if found is None:
        pytest.skip("this host has no link-local IPv6 address on a lasting interface (lab hosts always do)")
    address, interface = found
    server = lab.start("echo", "--bind", f"{address}%{interface}", "--port", "0")
    result = call_client("echo", "--to", f"[{address}%{interface}]:{server.port}")
    assert result["outcome"] == "echoed", result
    assert result["peer"] == f"[{address}%{interface}]:{server.port}"
