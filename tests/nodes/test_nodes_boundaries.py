"""The boundaries server and client: streams coalesce, datagrams keep their edges, send takes what fits."""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "proto", "target", "peer", "local", "messages", "bytes_sent", "send_calls",
        "first_send", "receives", "recv_sizes", "bytes_received", "truncated", "elapsed_ms",
        "attempts"}


@pytest.fixture(scope="module")
def tcp(module_lab: Lab) -> Server:
    return module_lab.start("boundaries", "--bind", "127.0.0.1", "--port", "0")


@pytest.fixture(scope="module")
def udp(module_lab: Lab) -> Server:
    return module_lab.start("boundaries", "--proto", "udp", "--bind", "127.0.0.1", "--port", "0", "--bufsize", "8")


def test_ten_tcp_sends_are_read_by_one_recv(lab: Lab, tcp: Server) -> None:
    result = lab.client("boundaries", "--to", tcp.endpoint(), "--send", "Hello, world", "--count", "10")
    assert set(result) == KEYS
    assert result["outcome"] == "ok" and result["messages"] == result["send_calls"] == 10
    assert result["first_send"] == 12 and result["bytes_sent"] == result["bytes_received"] == 120
    assert result["receives"] == 1 and result["recv_sizes"] == [120]
    tcp.wait_for_log(r"read 120 bytes from 127\.0\.0\.1:\d+ in 1 recv calls of \[120\]")


def test_a_big_tcp_message_is_read_in_pieces(tcp: Server) -> None:
    result = call_client("boundaries", "--to", tcp.endpoint(), "--size", "1048576")
    assert result["outcome"] == "ok" and result["bytes_received"] == 1048576 and result["receives"] > 1
    assert sum(result["recv_sizes"]) <= 1048576 and len(result["recv_sizes"]) <= 100


def test_one_nonblocking_send_takes_less_than_asked_and_the_rest_follows(tcp: Server) -> None:
    result = call_client("boundaries", "--to", tcp.endpoint(), "--size", "8388608", "--nonblocking")
    assert result["outcome"] == "ok" and 0 < result["first_send"] < 8388608
    assert result["send_calls"] >= 2 and result["bytes_sent"] == result["bytes_received"] == 8388608


def test_udp_datagrams_keep_their_boundaries_and_a_small_buffer_truncates(udp: Server) -> None:
    result = call_client("boundaries", "--proto", "udp", "--to", udp.endpoint(), "--send", "abcd", "--count", "3")
    assert result["outcome"] == "ok" and result["receives"] == 3 and result["recv_sizes"] == [4, 4, 4]
    assert result["truncated"] == 0
    cut = call_client("boundaries", "--proto", "udp", "--to", udp.endpoint(), "--send", "Hello, world")
    assert cut["recv_sizes"] == [8] and cut["truncated"] == 1 and cut["bytes_sent"] == 12
    udp.wait_for_log(r"read one datagram of 8 bytes from 127\.0\.0\.1:\d+ \(truncated\)")


def test_the_server_waits_for_the_whole_announced_total_before_reading(tcp: Server) -> None:
    with socket.create_connection(("127.0.0.1", tcp.port), 5) as sock:
        sock.sendall(struct.pack(">Q", 6) + b"abc")
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # no report: half the bytes are still missing
        sock.sendall(b"def")
        sock.settimeout(5)
        report = json.loads(sock.makefile().readline())
    assert report == {"received": 6, "recv_sizes": [6]}


def test_a_client_that_closes_early_is_logged_not_fatal(tcp: Server) -> None:
    with socket.create_connection(("127.0.0.1", tcp.port), 5) as sock:
        sock.sendall(b"\0\0")
    tcp.wait_for_log("error 127.0.0.1:\\d+: the client closed before announcing its total")
    assert call_client("boundaries", "--to", tcp.endpoint())["outcome"] == "ok"


def test_usage_errors(lab: Lab) -> None:
    assert lab.run("boundaries", "client", "--proto", "udp", "--to", "127.0.0.1:9", "--nonblocking").returncode == 2
    assert lab.run("boundaries", "client", "--proto", "udp", "--to", "127.0.0.1:9", "--size", "70000").returncode == 2


def test_udp_answers_that_stop_midway_are_still_counted() -> None:
    """A server that answers 3 datagrams of 5, then falls silent: a timeout, with the 3 that did arrive reported."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))

        def answer_three() -> None:
            for _ in range(3):
                data, source = server.recvfrom(65535)
                server.sendto(json.dumps({"size": len(data), "truncated": False}).encode(), source)

        thread = threading.Thread(target=answer_three, daemon=True)
        thread.start()
        result = call_client("boundaries", "--proto", "udp", "--to", f"127.0.0.1:{server.getsockname()[1]}",
                             "--send", "Hello, world", "--count", "5", "--timeout", "1")
        thread.join(5)
    assert result["outcome"] == "timeout", result
    assert result["receives"] == 3 and result["recv_sizes"] == [12, 12, 12] and result["bytes_received"] == 36
