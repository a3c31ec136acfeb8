"""The nagle server answers length-and-body requests; the client counts the rounds that waited for an ACK."""

from __future__ import annotations

import pytest
from nodetest import Lab, Server

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "nodelay", "writes", "rounds", "stall_ms", "stalled",
        "median_ms", "max_ms", "rounds_ms", "elapsed_ms"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("nagle", "--bind", "127.0.0.1", "--port", "0")


def test_write_write_read_stalls_on_the_delayed_ack(lab: Lab, server: Server) -> None:
    """Linux delays an ACK 40 ms at least: with Nagle on, nearly every round after the first waits that long."""
    result = lab.client("nagle", "--to", server.endpoint(), "--rounds", "20")
    assert set(result) == KEYS
    assert result["outcome"] == "ok" and result["rounds"] == 20 and len(result["rounds_ms"]) == 20
    assert result["nodelay"] is False and result["writes"] == 2
    assert result["stalled"] >= 15, result
    assert result["median_ms"] >= 30, result
    assert result["stalled"] == sum(ms >= 30 for ms in result["rounds_ms"])
    server.wait_for_log(r"closed 127\.0\.0\.1:\d+ \(20 requests answered\)")


@pytest.mark.parametrize("cure", [("--nodelay",), ("--writes", "1")], ids=["nodelay", "one-write"])
def test_no_delay_or_one_write_removes_the_stall(lab: Lab, server: Server, cure: tuple[str, ...]) -> None:
    result = lab.client("nagle", "--to", server.endpoint(), "--rounds", "20", *cure)
    assert result["outcome"] == "ok" and result["rounds"] == 20
    assert result["median_ms"] < 20 and result["stalled"] <= 5, result


def test_a_server_that_is_not_nagles_is_a_mismatch_or_closed(lab: Lab) -> None:
    echo = lab.start("echo", "--bind", "127.0.0.1", "--port", "0")  # echoes the 4-byte length: not b"ok"
    result = lab.client("nagle", "--to", echo.endpoint(), "--rounds", "3", "--timeout", "2")
    assert result["outcome"] == "mismatch" and result["rounds"] == 0, result


def test_a_bad_writes_count_is_a_usage_error(lab: Lab) -> None:
    done = lab.run("nagle", "client", "--to", "127.0.0.1:9", "--writes", "3")
    assert done.returncode == 2 and "--writes" in done.stderr


@pytest.mark.parametrize("stall", ["0", "-5", "soon"])
def test_a_bad_stall_threshold_is_a_usage_error(lab: Lab, stall: str) -> None:
    done = lab.run("nagle", "client", "--to", "127.0.0.1:9", "--stall-ms", stall)
    assert done.returncode == 2 and "milliseconds" in done.stderr
