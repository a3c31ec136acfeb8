"""The selectors echo server and the N-connection client."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from nodetest import (
    Lab,
    Server,
    call_client,
    cpu_seconds,
    open_fds,
    rss_kib,
    wait_until,
)

KEYS = {"outcome", "errno", "detail", "target", "peer", "connections", "messages", "opened", "completed", "failed",
        "peak_open", "bytes_sent", "bytes_received", "errors", "elapsed_ms", "attempts"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("multiconn", "--bind", "127.0.0.1", "--port", "0", "--timeout", "1")


def test_default_client_run(lab: Lab, server: Server) -> None:
    result = lab.client("multiconn", "--to", server.endpoint())
    assert set(result) == KEYS
    assert result["outcome"] == "echoed"
    assert result["connections"] == result["opened"] == result["completed"] == 2 and result["failed"] == 0
    assert result["messages"] == 2
    per_connection = len("Message 1 from client.Message 2 from client.")
    assert result["bytes_sent"] == result["bytes_received"] == 2 * per_connection
    assert result["errors"] == {}


@pytest.fixture(scope="module")
def patient_server(module_lab: Lab) -> Server:
    """No idle timeout to speak of: on a loaded machine, one of 10,000 connections may wait long for its turn."""
    return module_lab.start("multiconn", "--bind", "127.0.0.1", "--port", "0", "--timeout", "300")


def test_ten_thousand_connections_at_once(patient_server: Server) -> None:
    server = patient_server
    result = call_client("multiconn", "--to", server.endpoint(), "--connections", "10000",
                         "--messages", "a", "bb", "ccc", "--timeout", "300")
    assert result["outcome"] == "echoed", result
    assert result["opened"] == result["completed"] == 10000
    assert result["bytes_received"] == 60000
    assert result["peak_open"] > 1000  # they really were open together
    wait_until(lambda: open_fds(server.pid) == server.idle_fds, timeout=120, what="every connection closed")


def test_refused_is_counted_per_connection(free_port: int) -> None:
    result = call_client("multiconn", "--to", f"127.0.0.1:{free_port}", "--connections", "5")
    assert result["outcome"] == "refused" and result["errors"] == {"refused": 5} and result["opened"] == 0


def test_idle_connections_are_closed_and_others_served(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        port = idle.getsockname()[1]
        started = time.monotonic()
        assert call_client("multiconn", "--to", server.endpoint(), "--connections", "20")["outcome"] == "echoed"
        idle.settimeout(30)  # 1 s idle, found by a sweep each second: the 30 s are for a loaded machine
        assert idle.recv(1) == b""
        assert time.monotonic() - started >= 0.9  # not before its time
    server.wait_for_log(rf"error 127\.0\.0\.1:{port}: timed out: idle for 1 s")


def test_half_close_still_gets_the_whole_echo(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        data = bytes(range(256)) * 4000
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply == data


def test_a_client_that_sends_without_reading_cannot_grow_the_server(server: Server) -> None:
    before = rss_kib(server.pid)
    sock = socket.create_connection(("127.0.0.1", server.port), 5)
    sent, stop = [0], threading.Event()

    def push() -> None:
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                sent[0] += sock.send(b"z" * 65536)
            except TimeoutError:
                continue  # the server stopped reading: backpressure, as it should
            except OSError:
                return

    pusher = threading.Thread(target=push)
    pusher.start()
    def stalled() -> bool:  # no progress for half a second: the server stopped taking more
        was = sent[0]
        time.sleep(0.5)
        return sent[0] == was and was > 0

    try:
        wait_until(stalled, timeout=20, what="the pusher to be held back")
        assert rss_kib(server.pid) - before < 6 * 1024
        assert call_client("multiconn", "--to", server.endpoint(), "--connections", "10")["outcome"] == "echoed"
    finally:
        stop.set()
        pusher.join()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert sent[0] < 64 << 20


def test_client_reports_mismatch_and_closed() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]

    def serve() -> None:
        for answer in (lambda d: d.upper(), lambda d: b""):
            conn, _ = listening.accept()
            with conn:
                data = conn.recv(100)
                if answer(data):
                    conn.sendall(answer(data))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert call_client("multiconn", "--to", f"127.0.0.1:{port}", "--connections", "1")["outcome"] == "mismatch"
        assert call_client("multiconn", "--to", f"127.0.0.1:{port}", "--connections", "1")["outcome"] == "closed"
    finally:
        listening.close()


def test_client_times_out_on_a_server_that_never_answers() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections complete in its backlog
        result = call_client("multiconn", "--to", f"127.0.0.1:{silent.getsockname()[1]}", "--connections", "3",
                             "--timeout", "0.3")
    assert result["outcome"] == "timeout" and result["errors"] == {"timeout": 3} and result["opened"] == 3


def test_running_out_of_descriptors_pauses_accepting_and_recovers(lab: Lab) -> None:
    server = lab.start("multiconn", "--bind", "127.0.0.1", "--port", "0", max_fds=64)
    held = [socket.create_connection(("127.0.0.1", server.port), 5) for _ in range(80)]
    try:
        server.wait_for_log(r"accept failed: Too many open files; pausing accepts for 0\.5 s")
        spent = cpu_seconds(server.pid)
        time.sleep(1.0)
        assert cpu_seconds(server.pid) - spent < 0.25, "spinning on a listener it cannot accept from"
    finally:
        for sock in held[:40]:
            sock.close()
    try:
        result = call_client("multiconn", "--to", server.endpoint(), "--connections", "5")
        assert result["outcome"] == "echoed", result
    finally:
        for sock in held[40:]:
            sock.close()


def test_held_connections_are_all_open_together_before_any_echo(patient_server: Server) -> None:
    result = call_client("multiconn", "--to", patient_server.endpoint(), "--connections", "500", "--hold", "0.2",
                         "--timeout", "60")
    assert result["outcome"] == "echoed", result
    assert result["peak_open"] == result["completed"] == 500
