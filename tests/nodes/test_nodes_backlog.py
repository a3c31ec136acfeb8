"""The backlog server never accepts; the client sees the queue fill, then its SYNs dropped."""

from __future__ import annotations

import pytest
from nodetest import Lab, call_client

KEYS = {"outcome", "errno", "detail", "target", "connections", "connected", "failed", "first_failure", "errors",
        "attempts", "elapsed_ms"}


@pytest.mark.parametrize("backlog", [0, 1, 3])
def test_backlog_plus_one_connections_get_in_then_connects_time_out(lab: Lab, backlog: int) -> None:
    server = lab.start("backlog", "--bind", "127.0.0.1", "--port", "0", "--backlog", str(backlog))
    result = lab.client("backlog", "--to", server.endpoint(), "--connections", str(backlog + 2), "--timeout", "0.3")
    assert set(result) == KEYS
    assert result["outcome"] == "timeout" and result["connected"] == backlog + 1
    assert result["first_failure"] == backlog + 2 and result["errors"] == {"timeout": 1}
    assert [a["outcome"] for a in result["attempts"]] == ["ok"] * (backlog + 1) + ["timeout"]
    server.wait_for_log(rf"backlog {backlog}, never accepting: the kernel queues up to {backlog + 1} connections")


def test_closed_connections_stay_queued(lab: Lab) -> None:
    server = lab.start("backlog", "--bind", "127.0.0.1", "--port", "0", "--backlog", "1")
    first = call_client("backlog", "--to", server.endpoint(), "--connections", "2", "--timeout", "0.3")
    assert first["outcome"] == "ok" and first["connected"] == 2 and first["first_failure"] is None
    again = call_client("backlog", "--to", server.endpoint(), "--connections", "1", "--timeout", "0.3")
    assert again["outcome"] == "timeout" and again["connected"] == 0


def test_a_negative_backlog_is_a_usage_error(lab: Lab) -> None:
    assert lab.run("backlog", "serve", "--backlog", "-1").returncode == 2
