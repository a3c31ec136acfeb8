"""The UDP echo server and its client, single and counted."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "mode", "connected", "target", "peer", "local", "sent", "received", "lost",
        "duplicated", "reordered", "corrupted", "loss", "bytes_sent", "bytes_received", "rtt_ms_min", "rtt_ms_avg",
        "rtt_ms_max", "reply", "elapsed_ms", "attempts"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("udpecho", "--bind", "127.0.0.1", "--port", "0")


def test_single_datagram_unconnected(lab: Lab, server: Server) -> None:
    result = lab.client("udpecho", "--to", server.endpoint(), "--send", "Hello, world")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed" and result["mode"] == "single" and not result["connected"]
    assert result["reply"] == "Hello, world" and result["sent"] == result["received"] == 1
    assert result["peer"] == server.endpoint() and result["rtt_ms_min"] > 0
    port = result["local"].rpartition(":")[2]
    server.wait_for_log(rf"echoed 12 bytes to 127\.0\.0\.1:{port}")


def test_single_datagram_connected(server: Server) -> None:
    result = call_client("udpecho", "--to", server.endpoint(), "--connected")
    assert result["outcome"] == "echoed" and result["connected"] and result["local"].startswith("127.0.0.1:")


def test_nobody_listening_connected_is_refused_unconnected_times_out(free_port: int) -> None:
    refused = call_client("udpecho", "--to", f"127.0.0.1:{free_port}", "--connected")
    assert refused["outcome"] == "refused" and refused["errno"] == "ECONNREFUSED"
    silent = call_client("udpecho", "--to", f"127.0.0.1:{free_port}", "--timeout", "0.3")
    assert silent["outcome"] == "timeout" and silent["lost"] == 1 and silent["loss"] == 1.0


def test_counted_datagrams_all_come_back(server: Server) -> None:
    # Paced so that the socket buffers can ride out a busy machine's scheduling gaps.
    result = call_client("udpecho", "--to", server.endpoint(), "--count", "500", "--interval", "0.001",
                         "--size", "100", "--connected")
    assert result["outcome"] == "echoed", result
    assert (result["sent"], result["received"], result["lost"], result["duplicated"], result["corrupted"]) == (
        500, 500, 0, 0, 0)
    assert result["bytes_sent"] == result["bytes_received"] == 50_000 and result["loss"] == 0.0
    assert 0 < result["rtt_ms_min"] <= result["rtt_ms_avg"] <= result["rtt_ms_max"]


def test_large_datagrams(server: Server) -> None:
    result = call_client("udpecho", "--to", server.endpoint(), "--count", "5", "--size", "60000",
                         "--interval", "0.05")  # the receive buffer holds only three of these
    assert result["outcome"] == "echoed" and result["bytes_received"] == 300_000


class Mangler(threading.Thread):
    """An echo server that drops, duplicates, delays past the next, and (optionally) damages datagrams."""

    def __init__(self, corrupt: bool) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port, self.corrupt = self.sock.getsockname()[1], corrupt

    def run(self) -> None:
        held = None
        while True:
            try:
                data, source = self.sock.recvfrom(65535)
            except OSError:
                return
            seq = struct.unpack(">Q", data[:8])[0]
            if seq % 10 == 3:
                continue  # lost
            if self.corrupt and seq == 42:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            if seq % 10 == 7:
                held = data  # sent after the next one: reordered
                continue
            self.sock.sendto(data, source)
            if seq % 10 == 5:
                self.sock.sendto(data, source)  # duplicated
            if held is not None:
                self.sock.sendto(held, source)
                held = None


@pytest.fixture
def mangler() -> Iterator[type[Mangler]]:
    made: list[Mangler] = []

    def make(corrupt: bool) -> Mangler:
        made.append(Mangler(corrupt))
        made[-1].start()
        return made[-1]

    yield make  # type: ignore[misc]  # a factory fixture: pytest hands the function itself to tests
    for m in made:
        m.sock.close()


def test_loss_duplicates_and_reordering_are_counted_exactly(mangler: type[Mangler]) -> None:
    peer = mangler(corrupt=False)
    result = call_client("udpecho", "--to", f"127.0.0.1:{peer.port}", "--count", "100", "--interval", "0.001",
                         "--timeout", "2")
    assert result["outcome"] == "ok", result  # some came back, intact
    assert (result["sent"], result["received"], result["lost"]) == (100, 90, 10)
    assert (result["duplicated"], result["reordered"], result["corrupted"]) == (10, 10, 0)
    assert result["loss"] == 0.1


def test_a_damaged_echo_is_a_mismatch(mangler: type[Mangler]) -> None:
    peer = mangler(corrupt=True)
    result = call_client("udpecho", "--to", f"127.0.0.1:{peer.port}", "--count", "50", "--interval", "0.001",
                         "--timeout", "2")
    assert result["outcome"] == "mismatch" and result["corrupted"] == 1 and result["received"] == 44


def test_ipv6_and_dual_stack(lab: Lab) -> None:
    server = lab.start("udpecho", "--bind", "::", "--dual-stack", "--port", "0")
    assert call_client("udpecho", "--to", f"[::1]:{server.port}")["outcome"] == "echoed"
    v4 = call_client("udpecho", "--to", f"127.0.0.1:{server.port}")
    assert v4["outcome"] == "echoed" and v4["peer"] == f"127.0.0.1:{server.port}"
    server.wait_for_log(r"echoed 12 bytes to \[::ffff:127\.0\.0\.1\]:")


def test_v6only_does_not_answer_ipv4(lab: Lab) -> None:
    server = lab.start("udpecho", "--bind", "::", "--v6only", "--port", "0")
    assert call_client("udpecho", "--to", f"127.0.0.1:{server.port}", "--connected")["outcome"] == "refused"
