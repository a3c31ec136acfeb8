"""The asyncio UDP echo: one DatagramProtocol for every client; clients as concurrent datagram endpoints."""

from __future__ import annotations

import socket
import threading

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "clients", "count", "sent", "received", "lost", "corrupted",
        "peak_in_flight", "locals", "elapsed_ms"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("asyncudp", "--bind", "::", "--dual-stack", "--port", "0")


def test_many_endpoints_in_one_loop_are_all_echoed_by_one_protocol(lab: Lab, server: Server) -> None:
    result = lab.client("asyncudp", "--to", server.endpoint(), "--clients", "30", "--count", "10")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed", result
    assert (result["sent"], result["received"], result["lost"], result["corrupted"]) == (300, 300, 0, 0)
    assert result["locals"] == 30 and 2 <= result["peak_in_flight"] <= 30, result
    assert result["peer"] == server.endpoint()
    server.wait_for_log(r"first datagram from \[::ffff:127\.0\.0\.1\]:\d+ \(30 clients so far\)")


def test_ipv6_too(server: Server) -> None:
    result = call_client("asyncudp", "--to", server.endpoint("::1"), "--count", "3", "--size", "1000")
    assert result["outcome"] == "echoed" and result["received"] == 3 and result["peer"] == server.endpoint("::1")


def test_a_server_that_never_answers_is_a_timeout_and_each_datagram_is_lost() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        result = call_client("asyncudp", "--to", f"127.0.0.1:{silent.getsockname()[1]}", "--clients", "2",
                             "--count", "2", "--timeout", "0.2")
    assert (result["outcome"], result["sent"], result["received"], result["lost"]) == ("timeout", 4, 0, 4), result


def test_a_changed_echo_is_a_mismatch() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as liar:
        liar.bind(("127.0.0.1", 0))
        liar.settimeout(5)

        def answer() -> None:
            data, source = liar.recvfrom(65535)
            liar.sendto(bytes([data[0] ^ 0xFF]) + data[1:], source)

        thread = threading.Thread(target=answer)
        thread.start()
        result = call_client("asyncudp", "--to", f"127.0.0.1:{liar.getsockname()[1]}", "--size", "20")
        thread.join()
    assert result["outcome"] == "mismatch" and result["corrupted"] == 1, result


def test_the_server_stops_and_says_how_many_clients_it_served(lab: Lab) -> None:
    server = lab.start("asyncudp", "--bind", "127.0.0.1", "--port", "0", "--quiet")
    assert call_client("asyncudp", "--to", server.endpoint(), "--clients", "3")["outcome"] == "echoed"
    assert server.stop() == 0
    assert "served 3 clients" in server.log() and "first datagram" not in server.log()
