"""The backlog server never accepts; the client sees the queue fill, then its SYNs dropped."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest
from nodetest import Lab, call_client

KEYS = {"outcome", "errno", "detail", "target", "connections", "connected", "failed", "first_failure", "errors",
        "early", "written", "reset", "unacked", "attempts", "elapsed_ms"}
ATTEMPT_KEYS = {"outcome", "errno", "local", "sent", "then", "unacked_bytes", "elapsed_ms"}


@pytest.mark.parametrize("backlog", [0, 1, 3])
def test_backlog_plus_one_connections_get_in_then_connects_time_out(lab: Lab, backlog: int) -> None:
    server = lab.start("backlog", "--bind", "127.0.0.1", "--port", "0", "--backlog", str(backlog))
    result = lab.client("backlog", "--to", server.endpoint(), "--connections", str(backlog + 2), "--timeout", "0.3")
    assert set(result) == KEYS
    assert result["outcome"] == "timeout" and result["connected"] == backlog + 1
    assert result["first_failure"] == backlog + 2 and result["errors"] == {"timeout": 1}
    assert [a["outcome"] for a in result["attempts"]] == ["ok"] * (backlog + 1) + ["timeout"]
    assert all(set(attempt) == ATTEMPT_KEYS for attempt in result["attempts"])
    assert result["early"] == result["written"] == result["reset"] == result["unacked"] == 0
    server.wait_for_log(rf"backlog {backlog}, never accepting: the kernel queues up to {backlog + 1} connections")


def test_closed_connections_stay_queued(lab: Lab) -> None:
    server = lab.start("backlog", "--bind", "127.0.0.1", "--port", "0", "--backlog", "1")
    first = call_client("backlog", "--to", server.endpoint(), "--connections", "2", "--timeout", "0.3")
    assert first["outcome"] == "ok" and first["connected"] == 2 and first["first_failure"] is None
    again = call_client("backlog", "--to", server.endpoint(), "--connections", "1", "--timeout", "0.3")
    assert again["outcome"] == "timeout" and again["connected"] == 0


def test_a_negative_backlog_is_a_usage_error(lab: Lab) -> None:
    assert lab.run("backlog", "serve", "--backlog", "-1").returncode == 2


def test_a_backlog_above_somaxconn_is_logged_as_the_kernel_clamps_it(lab: Lab) -> None:
    limit = int(Path("/proc/sys/net/core/somaxconn").read_text())
    server = lab.start("backlog", "--bind", "127.0.0.1", "--port", "0", "--backlog", str(limit + 1))
    server.wait_for_log(rf"backlog {limit + 1} asked, net.core.somaxconn {limit} allows {limit}, never accepting: "
                        rf"the kernel queues up to {limit + 1} connections")


def test_early_connections_are_written_to_last(lab: Lab) -> None:
    """On loopback a handshake is over at once: the early connection is queued, its bytes acknowledged."""
    server = lab.start("backlog", "--bind", "127.0.0.1", "--port", "0", "--backlog", "1")
    result = lab.client("backlog", "--to", server.endpoint(), "--connections", "3", "--early", "1",
                        "--timeout", "0.3", "--send", "twelve bytes")
    assert result["outcome"] == "timeout" and result["first_failure"] == 3 and result["connected"] == 2
    assert result["early"] == 1 and result["written"] == 1 and result["reset"] == 0 and result["unacked"] == 0
    early, queued, dropped = result["attempts"]
    assert early["sent"] == 12 and early["then"] == "timeout" and early["unacked_bytes"] == 0  # silence, but acked
    assert queued["sent"] is None and queued["then"] is None and dropped["outcome"] == "timeout"


def test_an_early_connection_reset_after_its_send_is_counted(lab: Lab) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def abort_on_data() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(100)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close(): a RST

        thread = threading.Thread(target=abort_on_data, daemon=True)
        thread.start()
        result = lab.client("backlog", "--to", f"127.0.0.1:{listener.getsockname()[1]}", "--connections", "1",
                            "--early", "1", "--timeout", "5")
        thread.join(5)
    assert result["outcome"] == "reset" and result["errno"] == "ECONNRESET" and result["first_failure"] is None
    assert result["connected"] == 1 and result["written"] == 1 and result["reset"] == 1
    assert result["attempts"][0]["then"] == "reset"


def test_more_early_connections_than_connections_is_a_usage_error(lab: Lab) -> None:
    done = lab.run("backlog", "client", "--to", "127.0.0.1:9", "--connections", "2", "--early", "3")
    assert done.returncode == 2 and "--early 3 is more than the 2 --connections" in done.stderr
