"""The probe, run as a program against small servers on loopback."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import ROOT


def probe(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "nodes.probe", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    return json.loads(line)


@pytest.fixture
def tcp_server() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection TCP server whose behaviour the test gives; yield its port."""
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(handle: Callable[[socket.socket], None]) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve() -> None:
            with server.accept()[0] as conn:
                handle(conn)

        threads.append(threading.Thread(target=serve, daemon=True))
        threads[-1].start()
        return server.getsockname()[1]

    yield start
    for server in servers:
        server.close()
    for thread in threads:
        thread.join(timeout=5)


def echo(conn: socket.socket) -> None:
    while data := conn.recv(4096):
        conn.sendall(data)


def test_an_echo_is_echoed_with_its_evidence(tcp_server) -> None:
    port = tcp_server(echo)
    seen = probe("--to", f"127.0.0.1:{port}", "--send", "Hello, world")
    assert seen["outcome"] == "echoed"
    assert (seen["sent"], seen["received"], seen["reply"]) == (12, 12, "Hello, world")
    assert seen["peer"] == f"127.0.0.1:{port}" and seen["local"].startswith("127.0.0.1:")
    assert seen["errno"] is None and seen["elapsed_ms"] > 0


def test_an_echo_that_arrives_in_pieces_is_still_echoed(tcp_server) -> None:
    def trickle(conn: socket.socket) -> None:
        data = b""
        while len(data) < 12:
            data += conn.recv(12 - len(data))
        for byte in data:
            conn.sendall(bytes([byte]))

    seen = probe("--to", f"127.0.0.1:{tcp_server(trickle)}", "--send", "Hello, world")
    assert seen["outcome"] == "echoed"


def test_other_bytes_back_are_a_mismatch(tcp_server) -> None:
    def shout(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100).upper())

    seen = probe("--to", f"127.0.0.1:{tcp_server(shout)}", "--send", "hello")
    assert (seen["outcome"], seen["reply"]) == ("mismatch", "HELLO")


def test_a_server_that_closes_without_answering_is_closed(tcp_server) -> None:
    def hang_up(conn: socket.socket) -> None:
        conn.recv(100)

    seen = probe("--to", f"127.0.0.1:{tcp_server(hang_up)}", "--send", "hello")
    assert (seen["outcome"], seen["received"]) == ("closed", 0)


def test_a_silent_server_is_a_timeout(tcp_server) -> None:
    done = threading.Event()
    seen = probe("--to", f"127.0.0.1:{tcp_server(lambda conn: done.wait(5))}", "--send", "hi", "--timeout", "0.3")
    done.set()
    assert seen["outcome"] == "timeout" and seen["elapsed_ms"] >= 250


def half_echo(then: Callable[[socket.socket], object]) -> Callable[[socket.socket], None]:
    """A server that reads "Hello, world", echoes "Hello" only, waits for it to arrive, then does ``then``."""

    def handle(conn: socket.socket) -> None:
        data = b""
        while len(data) < 12:
            data += conn.recv(12 - len(data))
        conn.sendall(data[:5])
        time.sleep(0.2)
        then(conn)

    return handle


def test_a_timeout_half_way_keeps_what_crossed_before_it(tcp_server) -> None:
    done = threading.Event()
    seen = probe("--to", f"127.0.0.1:{tcp_server(half_echo(lambda conn: done.wait(5)))}", "--send", "Hello, world",
                 "--timeout", "1")
    done.set()
    assert (seen["outcome"], seen["errno"]) == ("timeout", None)
    assert (seen["sent"], seen["received"], seen["reply"]) == (12, 5, "Hello")
    assert seen["attempts"][-1]["received"] == 5


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends a RST


def test_a_reset_half_way_keeps_what_crossed_before_it(tcp_server) -> None:
    seen = probe("--to", f"127.0.0.1:{tcp_server(half_echo(reset))}", "--send", "Hello, world")
    assert (seen["outcome"], seen["errno"]) == ("reset", "ECONNRESET")
    assert (seen["sent"], seen["received"], seen["reply"]) == (12, 5, "Hello")


def test_a_partial_reply_is_cut_as_a_whole_one_is(tcp_server) -> None:
    """The reply field shows the first 200 bytes, of a partial reply as of a whole one."""

    def echo_then_reset(conn: socket.socket) -> None:
        data = b""
        while len(data) < 1000:
            data += conn.recv(1000 - len(data))
        conn.sendall(data[:300])
        time.sleep(0.2)
        reset(conn)

    seen = probe("--to", f"127.0.0.1:{tcp_server(echo_then_reset)}", "--size", "1000")
    assert (seen["outcome"], seen["sent"], seen["received"]) == ("reset", 1000, 300)
    assert seen["reply"] == ("0123456789abcdef" * 13)[:200]


def test_sent_counts_what_send_took_when_the_server_stops_reading(tcp_server) -> None:
    """Not all or nothing: the bytes the kernel took before the server stopped reading and the time ran out."""
    size = 32 << 20  # more than both sides' socket buffers hold
    done = threading.Event()

    def read_a_little(conn: socket.socket) -> None:
        data = b""
        while len(data) < 1000:
            data += conn.recv(1000 - len(data))
        conn.sendall(data)
        done.wait(5)

    seen = probe("--to", f"127.0.0.1:{tcp_server(read_a_little)}", "--size", str(size), "--timeout", "1")
    done.set()
    assert seen["outcome"] == "timeout" and seen["received"] == 1000
    assert 1000 < seen["sent"] < size, seen["sent"]


def test_udp_says_what_it_sent_when_nothing_comes_back() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, so no ICMP port unreachable: the datagram is just never answered
        seen = probe("--proto", "udp", "--to", f"127.0.0.1:{silent.getsockname()[1]}", "--send", "hello",
                     "--timeout", "0.3")
    assert (seen["outcome"], seen["sent"], seen["received"], seen["reply"]) == ("timeout", 5, 0, None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = probe("--proto", "udp", "--to", f"127.0.0.1:{port}", "--connected", "--send", "hello")
    assert (refused["outcome"], refused["sent"], refused["received"]) == ("refused", 5, 0)


def test_a_closed_port_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    seen = probe("--to", f"127.0.0.1:{port}")
    assert (seen["outcome"], seen["errno"]) == ("refused", "ECONNREFUSED")


def test_udp_unconnected_waits_but_connected_hears_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert probe("--proto", "udp", "--to", f"127.0.0.1:{port}", "--timeout", "0.3")["outcome"] == "timeout"
    assert probe("--proto", "udp", "--to", f"127.0.0.1:{port}", "--connected")["outcome"] == "refused"


def test_udp_echo_and_a_truncated_datagram() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))

        def reflect() -> None:
            for _ in range(2):
                data, source = server.recvfrom(65535)
                server.sendto(data, source)

        thread = threading.Thread(target=reflect, daemon=True)
        thread.start()
        target = f"127.0.0.1:{server.getsockname()[1]}"
        assert probe("--proto", "udp", "--to", target, "--send", "datagram")["outcome"] == "echoed"
        cut = probe("--proto", "udp", "--to", target, "--send", "datagram", "--bufsize", "4")
        thread.join(5)
    assert (cut["outcome"], cut["truncated"], cut["reply"]) == ("mismatch", True, "data")


def test_bind_only_reports_free_taken_and_foreign_addresses() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert probe("--bind", f"127.0.0.1:{port}")["outcome"] == "addr-in-use"
    assert probe("--bind", "127.0.0.1:0")["outcome"] == "ok"
    assert probe("--bind", "192.0.2.1:0")["errno"] == "EADDRNOTAVAIL"


def test_a_name_tries_each_address_in_turn() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    seen = probe("--to", f"localhost:{port}")
    assert seen["outcome"] == "refused"
    assert len(seen["attempts"]) == len({a[4] for a in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)})


def test_bad_arguments_exit_2_with_a_reason() -> None:
    result = subprocess.run([sys.executable, "-m", "nodes.probe", "--to", "127.0.0.1:99999"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "out of range" in result.stderr
    result = subprocess.run([sys.executable, "-m", "nodes.probe", "--to", "fd00::1:80"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "brackets" in result.stderr
