"""The probe's options that make an attempt harder on a server: a slow reader, and another client held open."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nodetest import Lab

from nodes import probe as probe_program

SLOW_READER = ("--size", "262144", "--rcvbuf", "4096", "--read-delay", "0.005")


def probe(*args: str) -> dict[str, Any]:
    """Run the probe in this process (it has no subcommands): its one JSON line, parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert probe_program.main(list(args)) == 0
    (line,) = out.getvalue().splitlines()
    return json.loads(line)


@pytest.fixture
def echo_server() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], int]]:
    """An echo server, a thread per client, whose way of writing each chunk back the test gives; yields its port.

    Its send buffer is set small (8 KiB, doubled by Linux), as a LAN's is
    small next to loopback's, so that an echo piles up in it.
    """
    servers: list[socket.socket] = []

    def start(write: Callable[[socket.socket, bytes], None]) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve(conn: socket.socket) -> None:
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(65536):
                        write(conn, data)
                except OSError:
                    pass

        def accept() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return server.getsockname()[1]

    yield start
    for server in servers:
        server.close()


def test_a_slow_reader_gets_the_whole_echo_from_a_server_that_sends_it_all(echo_server: Any) -> None:
    port = echo_server(lambda conn, data: conn.sendall(data))
    seen = probe("--to", f"127.0.0.1:{port}", *SLOW_READER, "--timeout", "20")
    assert seen["outcome"] == "echoed" and seen["received"] == 262144, seen


def test_a_slow_reader_catches_a_server_that_ignores_what_send_returns(echo_server: Any) -> None:
    port = echo_server(lambda conn, data: conn.send(data))  # a timeout on the socket: send() takes what fits
    seen = probe("--to", f"127.0.0.1:{port}", *SLOW_READER, "--timeout", "3")
    assert seen["outcome"] == "timeout" and seen["received"] < 262144, seen


def test_the_slow_reader_options_are_for_tcp_and_checked() -> None:
    for bad in (["--rcvbuf", "0"], ["--read-delay", "-1"], ["--read-delay", "x"]):
        with pytest.raises(SystemExit) as stopped:
            probe("--to", "127.0.0.1:7", *bad)
        assert stopped.value.code == 2


def test_another_client_held_open_keeps_a_one_client_at_a_time_server_from_answering(lab: Lab) -> None:
    server = lab.start("echo", "--bind", "127.0.0.1", "--port", "0")
    alone = probe("--to", server.endpoint(), "--send", "Hello, world")
    assert alone["outcome"] == "echoed" and alone["held"] is None
    seen = probe("--to", server.endpoint(), "--send", "Hello, world", "--hold-other", "--timeout", "1")
    assert seen["held"] == "echoed", seen  # the first connection was served, and then kept open
    assert seen["outcome"] == "timeout" and seen["local"] is not None, seen  # the second was connected, never served


@pytest.mark.parametrize("program", ["multiconn", "asyncecho"])
def test_a_server_for_many_clients_echoes_the_second_while_the_first_is_held(lab: Lab, program: str) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0")
    seen = probe("--to", server.endpoint(), "--send", "Hello, world", "--hold-other")
    assert (seen["outcome"], seen["held"], seen["reply"]) == ("echoed", "echoed", "Hello, world"), seen


def test_when_the_held_connection_fails_the_attempt_says_so(free_port: int) -> None:
    seen = probe("--to", f"127.0.0.1:{free_port}", "--send", "Hello, world", "--hold-other")
    assert (seen["outcome"], seen["held"], seen["errno"]) == ("refused", "refused", "ECONNREFUSED"), seen
    assert seen["detail"].startswith("the other connection, to be held open:"), seen
