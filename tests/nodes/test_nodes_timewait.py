"""The timewait server serves one connection, closes first, and leaves its port in TIME_WAIT."""

from __future__ import annotations

import errno
import socket

import pytest
from nodetest import Lab

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "sent", "received", "reply", "server_closed_first",
        "elapsed_ms"}


def bind(port: int, reuse: bool) -> None:
    with socket.socket() as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_one_connection_then_time_wait_holds_the_port(lab: Lab) -> None:
    server = lab.start("timewait", "--bind", "127.0.0.1", "--port", "0")
    result = lab.client("timewait", "--to", server.endpoint(), "--send", "Hello, world")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed" and result["server_closed_first"] and result["reply"] == "Hello, world"
    assert server.proc.wait(10) == 0, server.log()
    assert "stays in TIME_WAIT" in server.log()
    with pytest.raises(OSError) as taken:
        bind(server.port, reuse=False)
    assert taken.value.errno == errno.EADDRINUSE
    bind(server.port, reuse=True)


def test_without_so_reuseaddr_on_the_old_socket_not_even_a_new_one_with_it_can_bind(lab: Lab) -> None:
    server = lab.start("timewait", "--bind", "127.0.0.1", "--port", "0", "--no-reuse-addr")
    assert lab.client("timewait", "--to", server.endpoint())["outcome"] == "echoed"
    assert server.proc.wait(10) == 0, server.log()
    with pytest.raises(OSError) as taken:
        bind(server.port, reuse=True)
    assert taken.value.errno == errno.EADDRINUSE


def test_it_stops_listening_once_it_has_its_connection(lab: Lab) -> None:
    server = lab.start("timewait", "--bind", "127.0.0.1", "--port", "0")
    with socket.create_connection(("127.0.0.1", server.port), 5):
        server.wait_for_log("stopped listening")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), 5).close()
