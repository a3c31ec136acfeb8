"""The oneatatime server serves one connection at a time; the client shows a second one waiting, by order."""

from __future__ import annotations

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "first_local", "second_local", "first_echoed",
        "connected_while_busy", "echoed_while_first_open", "echoed_after_first_left", "second_echo_ms", "elapsed_ms"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("oneatatime", "--bind", "127.0.0.1", "--port", "0")


def test_the_second_client_is_connected_but_echoed_only_after_the_first_left(lab: Lab, server: Server) -> None:
    result = lab.client("oneatatime", "--to", server.endpoint(), "--wait", "0.5")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed", result
    assert result["first_echoed"] and result["connected_while_busy"]
    assert not result["echoed_while_first_open"] and result["echoed_after_first_left"]
    assert result["second_echo_ms"] >= 500
    first, second = result["first_local"], result["second_local"]
    log = server.wait_for_log(rf"accepted {second}").string
    assert log.index(f"closed {first}") < log.index(f"accepted {second}"), log


def test_a_thread_per_connection_echoes_the_second_while_the_first_is_open(lab: Lab) -> None:
    threading = lab.start("sockserver", "--kind", "threading-tcp", "--bind", "127.0.0.1", "--port", "0")
    result = call_client("oneatatime", "--to", threading.endpoint(), "--wait", "5")
    assert result["outcome"] == "echoed" and result["echoed_while_first_open"], result
    assert not result["echoed_after_first_left"] and result["second_echo_ms"] < 5000


def test_a_server_that_closes_at_once_is_closed(lab: Lab) -> None:
    closing = lab.start("peerclose", "--bind", "127.0.0.1", "--port", "0", "--mode", "close")
    result = call_client("oneatatime", "--to", closing.endpoint(), "--timeout", "2")
    assert result["outcome"] == "closed" and not result["first_echoed"], result


def test_a_bad_wait_is_a_usage_error(lab: Lab) -> None:
    done = lab.run("oneatatime", "client", "--to", "127.0.0.1:9", "--wait", "0")
    assert done.returncode == 2 and "--wait" in done.stderr
