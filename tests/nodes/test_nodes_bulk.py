"""Bulk transfers: TCP verified by SHA-256, UDP counted by the server."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import subprocess
import threading
import time

import pytest
from nodetest import REPO, Lab, Server, call_client, node_command

from nodes.bulk import BLOCK, BUFFERS, WAKE_AT

KEYS = {"outcome", "errno", "detail", "proto", "target", "peer", "local", "bytes_sent", "bytes_received", "elapsed_ms",
        "throughput_mbps", "sha256_sent", "sha256_received", "hash_match", "datagrams_sent", "datagrams_received",
        "lost", "loss", "attempts"}


@pytest.fixture(scope="module")
def tcp(module_lab: Lab) -> Server:
    return module_lab.start("bulk", "--bind", "127.0.0.1", "--port", "0", "--timeout", "1")


@pytest.fixture(scope="module")
def udp(module_lab: Lab) -> Server:
    return module_lab.start("bulk", "--proto", "udp", "--bind", "127.0.0.1", "--port", "0")


def test_tcp_transfer_is_verified(lab: Lab, tcp: Server) -> None:
    result = lab.client("bulk", "--to", tcp.endpoint(), "--bytes", "20000000")
    assert set(result) == KEYS
    assert result["outcome"] == "ok" and result["hash_match"] is True
    assert result["bytes_sent"] == result["bytes_received"] == 20_000_000
    assert result["sha256_sent"] == result["sha256_received"] and len(result["sha256_sent"]) == 64
    assert result["throughput_mbps"] > 0 and result["datagrams_sent"] is None
    tcp.wait_for_log(rf"received 20000000 bytes .* sha256 {result['sha256_sent'][:16]}")


def test_parallel_transfers(tcp: Server) -> None:
    procs = [subprocess.Popen(node_command("bulk", "client", "--to", tcp.endpoint(), "--bytes", str(n)),
                              cwd=REPO, stdout=subprocess.PIPE, text=True) for n in (3_000_000, 1, 777_777)]
    results = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    assert [r["outcome"] for r in results] == ["ok"] * 3
    assert [r["bytes_received"] for r in results] == [3_000_000, 1, 777_777]


@pytest.fixture(scope="module")
def patient(module_lab: Lab) -> Server:
    """A server with the default idle timeout (30 s), far beyond the clients' 10 s: a stall fails the client."""
    return module_lab.start("bulk", "--bind", "127.0.0.1", "--port", "0")


@pytest.mark.parametrize("size", [WAKE_AT - 1, WAKE_AT + 1, BLOCK + 1, BLOCK + WAKE_AT // 2, BUFFERS * BLOCK,
                                  (BUFFERS + 1) * BLOCK + 100, 2 * BLOCK + WAKE_AT + 1])
def test_transfers_around_buffer_and_wake_up_sizes_arrive_whole(patient: Server, size: int) -> None:
    """The receiver's buffers go round and it asks to be woken per WAKE_AT bytes: the stream's tail still wakes it."""
    result = call_client("bulk", "--to", patient.endpoint(), "--bytes", str(size), "--timeout", "10")
    assert result["outcome"] == "ok" and result["hash_match"] is True
    assert result["bytes_received"] == size


def test_a_stream_arriving_in_small_pieces_is_hashed_whole(patient: Server) -> None:
    """Pieces far smaller than a buffer or WAKE_AT, with pauses between them: the digest is still of every byte."""
    size = 2 * BLOCK + 3 * WAKE_AT + 12345
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with socket.create_connection(("127.0.0.1", patient.port), 10) as sock:
        sock.sendall(struct.pack(">Q", size))
        for start in range(0, size, 200_000):
            sock.sendall(data[start:start + 200_000])
            time.sleep(0.002)
        count, digest = struct.unpack(">Q32s", sock.recv(40, socket.MSG_WAITALL))
    assert count == size and digest == hashlib.sha256(data).digest()


def test_a_wrong_digest_is_a_mismatch() -> None:
    listening = socket.create_server(("127.0.0.1", 0))

    def liar() -> None:
        conn, _ = listening.accept()
        with conn:
            (length,) = struct.unpack(">Q", conn.recv(8, socket.MSG_WAITALL))
            got = 0
            while got < length:
                got += len(conn.recv(65536))
            conn.sendall(struct.pack(">Q32s", got, b"\x00" * 32))

    threading.Thread(target=liar, daemon=True).start()
    try:
        result = call_client("bulk", "--to", f"127.0.0.1:{listening.getsockname()[1]}", "--bytes", "100000")
    finally:
        listening.close()
    assert result["outcome"] == "mismatch" and result["hash_match"] is False and result["bytes_received"] == 100000


def test_a_truncated_transfer_is_logged_and_the_server_goes_on(tcp: Server) -> None:
    with socket.create_connection(("127.0.0.1", tcp.port), 5) as sock:
        port = sock.getsockname()[1]
        sock.sendall(struct.pack(">Q", 1000) + b"only ten!!")
    tcp.wait_for_log(rf"error 127\.0\.0\.1:{port}: truncated transfer, closed after 10 of 1000 bytes")
    assert call_client("bulk", "--to", tcp.endpoint(), "--bytes", "1000")["outcome"] == "ok"


def test_a_silent_client_is_timed_out(tcp: Server) -> None:
    with socket.create_connection(("127.0.0.1", tcp.port), 5) as sock:
        port = sock.getsockname()[1]
        sock.sendall(struct.pack(">Q", 1000))
        assert sock.recv(1) == b""
    tcp.wait_for_log(rf"timed out 127\.0\.0\.1:{port}: idle for 1 s")


def test_a_client_silent_in_the_middle_of_a_buffer_is_timed_out(tcp: Server) -> None:
    """The kernel's receive timeout (SO_RCVTIMEO) ends a MSG_WAITALL wait that some bytes began."""
    with socket.create_connection(("127.0.0.1", tcp.port), 10) as sock:
        port = sock.getsockname()[1]
        sock.sendall(struct.pack(">Q", 3 * BLOCK) + bytes(BLOCK + 1000))
        assert sock.recv(1) == b""
    tcp.wait_for_log(rf"timed out 127\.0\.0\.1:{port}: idle for 1 s")


def test_udp_paced_transfer_arrives_whole(udp: Server) -> None:
    result = call_client("bulk", "--proto", "udp", "--to", udp.endpoint(), "--count", "500", "--size", "500",
                         "--interval", "0.001")
    assert set(result) == KEYS
    assert result["outcome"] == "ok"
    assert result["datagrams_sent"] == result["datagrams_received"] == 500 and result["lost"] == 0
    assert result["bytes_sent"] == result["bytes_received"] == 250_000 and result["hash_match"] is None


def test_udp_blast_reports_what_arrived(udp: Server) -> None:
    result = call_client("bulk", "--proto", "udp", "--to", udp.endpoint(), "--count", "20000", "--size", "1400")
    assert result["outcome"] == "ok"
    assert result["datagrams_sent"] == 20000 and 0 < result["datagrams_received"] <= 20000
    assert result["lost"] == 20000 - result["datagrams_received"]
    assert result["bytes_received"] == 1400 * result["datagrams_received"]
    assert result["loss"] == round(result["lost"] / 20000, 4)


def test_udp_junk_is_ignored(udp: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"not bulk data", ("127.0.0.1", udp.port))
        port = sock.getsockname()[1]
    udp.wait_for_log(rf"error 127\.0\.0\.1:{port}: ignored a 13-byte datagram")
    assert call_client("bulk", "--proto", "udp", "--to", udp.endpoint(), "--count", "3")["outcome"] == "ok"


def test_udp_to_nobody_is_refused(free_port: int) -> None:
    result = call_client("bulk", "--proto", "udp", "--to", f"127.0.0.1:{free_port}", "--count", "50",
                         "--interval", "0.001")
    assert result["outcome"] == "refused" and result["errno"] == "ECONNREFUSED"


def test_stops_at_once_on_sigterm_during_a_transfer(lab: Lab) -> None:
    server = lab.start("bulk", "--bind", "127.0.0.1", "--port", "0")
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        sock.sendall(struct.pack(">Q", 10**12) + bytes(100_000))  # a handler thread now waits for the rest
        server.wait_for_log(r"accepted 127\.0\.0\.1:")
        started = time.monotonic()
        assert server.stop(timeout=25) == 0
        assert time.monotonic() - started < 20  # not waiting out its 30 s idle timeout
