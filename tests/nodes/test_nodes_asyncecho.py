"""The asyncio streams echo server and its many-connection client."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from nodetest import Lab, Server, call_client, open_fds, rss_kib, wait_until

KEYS = {"outcome", "errno", "detail", "target", "peer", "connections", "concurrency", "opened", "completed",
        "failed", "peak_open", "bytes_sent", "bytes_received", "errors", "elapsed_ms", "attempts"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("asyncecho", "--bind", "127.0.0.1", "--port", "0", "--timeout", "1", "--quiet")


def test_one_connection(lab: Lab, server: Server) -> None:
    result = lab.client("asyncecho", "--to", server.endpoint(), "--send", "Hello, world")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed" and result["completed"] == 1 and result["bytes_received"] == 12


def test_ten_thousand_connections(lab: Lab) -> None:
    # Minutes, not seconds, for the server's idle timeout and the client's: with 10,000 coroutines taking
    # turns on a loaded machine, a connection can sit for a long while between its connect and its echo.
    server = lab.start("asyncecho", "--bind", "127.0.0.1", "--port", "0", "--quiet", "--timeout", "300")
    result = call_client("asyncecho", "--to", server.endpoint(), "--connections", "10000", "--timeout", "300")
    assert result["outcome"] == "echoed", result
    assert result["opened"] == result["completed"] == 10000 and result["failed"] == 0
    assert result["peak_open"] > 1000
    wait_until(lambda: open_fds(server.pid) == server.idle_fds, timeout=120, what="every connection closed")


def test_the_concurrency_cap_holds(server: Server) -> None:
    result = call_client("asyncecho", "--to", server.endpoint(), "--connections", "300", "--concurrency", "25")
    assert result["outcome"] == "echoed" and result["completed"] == 300
    assert result["concurrency"] == 25 and 1 <= result["peak_open"] <= 25


def test_idle_and_non_reading_clients_are_dropped_with_bounded_memory(server: Server) -> None:
    before = rss_kib(server.pid)
    idle = socket.create_connection(("127.0.0.1", server.port), 5)
    flooder = socket.create_connection(("127.0.0.1", server.port), 5)
    pushed = [0]

    def flood() -> None:  # sends and never reads: drain() must hold the server back
        try:
            while pushed[0] < 64 << 20:
                pushed[0] += flooder.send(b"f" * 65536)
        except OSError:
            return

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        assert call_client("asyncecho", "--to", server.endpoint(), "--connections", "50")["outcome"] == "echoed"
        assert idle.recv(1) == b""
        thread.join(10)
        assert not thread.is_alive(), "the flooding client was never cut off"
        assert pushed[0] < 64 << 20
        assert rss_kib(server.pid) - before < 8 * 1024
    finally:
        idle.close()
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        flooder.close()
    server.wait_for_log(r"timed out 127\.0\.0\.1:\d+: idle for 1 s")


def test_client_reports_mismatch_closed_and_timeout() -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]

    def serve() -> None:
        for reply in (b"HELLO, WORLD", b"He", None):
            conn, _ = listening.accept()
            with conn:
                conn.recv(100)
                if reply is None:
                    time.sleep(1)
                else:
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        to = f"127.0.0.1:{port}"
        assert call_client("asyncecho", "--to", to)["outcome"] == "mismatch"
        assert call_client("asyncecho", "--to", to)["outcome"] == "closed"
        late = call_client("asyncecho", "--to", to, "--timeout", "0.3")
        assert late["outcome"] == "timeout" and late["errors"] == {"timeout": 1}
    finally:
        listening.close()


def test_sigterm_with_open_connections_stops_at_once(lab: Lab) -> None:
    server = lab.start("asyncecho", "--bind", "::1", "--port", "0")
    held = [socket.create_connection(("::1", server.port), 5) for _ in range(50)]
    try:
        wait_until(lambda: server.log().count(" accepted ") == 50, what="50 connections accepted")
        started = time.monotonic()
        assert server.stop(timeout=30) == 0
        assert time.monotonic() - started < 20  # not waiting out their 60 s idle timeout
    finally:
        for sock in held:
            sock.close()


def test_held_connections_are_all_open_together_before_any_echo(lab: Lab) -> None:
    server = lab.start("asyncecho", "--bind", "127.0.0.1", "--port", "0", "--quiet")
    result = call_client("asyncecho", "--to", server.endpoint(), "--connections", "500", "--hold", "0.2",
                         "--timeout", "60")
    assert result["outcome"] == "echoed", result
    assert result["peak_open"] == result["completed"] == 500


def test_hold_cannot_wait_behind_a_concurrency_cap(lab: Lab) -> None:
    result = subprocess.run([sys.executable, "-m", "nodes.asyncecho", "client", "--to", "127.0.0.1:9",
                             "--connections", "10", "--concurrency", "2", "--hold", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--hold" in result.stderr
