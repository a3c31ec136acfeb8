"""The keepalive client sets the kernel's probe timers and holds an idle connection; the server echoes.

A peer that vanishes (the ETIMEDOUT of the lesson) needs a firewall between
two hosts: scenarios/keepalive.toml shows it. Here, on loopback, the peer's
kernel always answers, so what is tested is the client's own logic.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "keepalive", "idle", "interval", "count", "noticed",
        "noticed_ms", "step", "elapsed_ms"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("keepalive", "--bind", "127.0.0.1", "--port", "0")


def test_with_keepalive_a_live_peer_answers_the_probes_and_still_echoes(lab: Lab, server: Server) -> None:
    """Idle 1 s, probes 1 s apart, 2 unanswered would end it: 3.5 s of silence means the probes were answered."""
    result = lab.client("keepalive", "--to", server.endpoint(), "--keepalive", "--idle", "1", "--interval", "1",
                        "--count", "2", "--idle-for", "3.5")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed" and result["step"] == "echo", result
    assert (result["idle"], result["interval"], result["count"]) == (1, 1, 2)
    assert result["noticed"] is False and result["noticed_ms"] is None
    server.wait_for_log(r"closed 127\.0\.0\.1:\d+ \(12 bytes echoed\)")


def test_without_keepalive_no_timers_are_reported(server: Server) -> None:
    result = call_client("keepalive", "--to", server.endpoint(), "--idle-for", "0.2")
    assert result["outcome"] == "echoed" and result["keepalive"] is False
    assert (result["idle"], result["interval"], result["count"]) == (None, None, None)


@pytest.fixture
def closing_server() -> Iterator[int]:
    """A listener that closes each connection at once: the idle wait ends early, with end of file."""
    listening = socket.create_server(("127.0.0.1", 0))

    def close_each() -> None:
        with listening:
            conn, _ = listening.accept()
            conn.close()

    thread = threading.Thread(target=close_each)
    thread.start()
    yield listening.getsockname()[1]
    thread.join(5)


def test_a_peer_that_closes_during_the_wait_is_noticed(closing_server: int) -> None:
    result = call_client("keepalive", "--to", f"127.0.0.1:{closing_server}", "--keepalive", "--idle-for", "5")
    assert result["outcome"] == "closed" and result["step"] == "idle" and result["noticed"] is True, result
    assert result["noticed_ms"] < 4000


def test_zero_probes_is_a_usage_error(lab: Lab) -> None:
    done = lab.run("keepalive", "client", "--to", "127.0.0.1:9", "--keepalive", "--count", "0")
    assert done.returncode == 2 and "--count" in done.stderr
