"""What every node program promises at work: servers serve, then stop cleanly on signals; clients report, not crash.

Parametrized over the programs found in nodes/ (``nodetest.programs``), so
that every lesson program, a new one included, keeps the conventions: a
server started the way the lab starts it serves a client (where the test
knows one that succeeds), stops on SIGTERM and SIGINT with exit status 0
and "stopped" as its last log line, and leaves no process behind; a
client reports a refused connection and a name that does not resolve as
its JSON result.
"""

from __future__ import annotations

import signal
import socket

import pytest
from nodetest import Lab, alive, call_client, children, inet_clients, inet_servers, variants

SERVERS = inet_servers()
CLIENTS = inet_clients()
REQUIRED = {"app": ("--value", "x")}  # what a client needs besides --to
REFUSED = {"udpecho": ("--connected",)}  # only a connected UDP socket hears that nobody listens

# A client run that succeeds against a program's server, and its outcome. Not here: timewait (its server
# exits after one client: test_nodes_timewait) and backlog (its server never accepts: test_nodes_backlog).
HELLO: dict[str, tuple[tuple[str, ...], str]] = {
    "echo": (("--send", "hi"), "echoed"),
    "multiconn": (("--connections", "3"), "echoed"),
    "app": (("--value", "ring"), "ok"),
    "udpecho": (("--send", "hi"), "echoed"),
    "sockserver": (("--send", "hi"), "echoed"),
    "asyncecho": (("--connections", "3"), "echoed"),
    "bulk": (("--bytes", "1000", "--count", "10", "--interval", "0.001"), "ok"),
    "whoami": ((), "ok"),
    "boundaries": ((), "ok"),
    "peerclose": ((), "closed"),  # the default mode: read, then close; the client's recv sees end of file
    "oneatatime": ((), "echoed"),
    "halfclose": ((), "ok"),
    "nagle": (("--rounds", "3"), "ok"),
    "keepalive": (("--idle-for", "0.1"), "echoed"),
    "bindname": ((), "echoed"),
    "asyncudp": ((), "echoed"),
}
STARTS = [(p, extra) for p in SERVERS for extra in variants(p)] + [("app", ("--workers", "2"))]


def hello(program: str, extra: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """The client for a server started with ``extra``: the same transport (a sockserver kind's, too)."""
    if program not in HELLO:
        return None
    args, outcome = HELLO[program]
    if extra[:1] == ("--proto",):
        args = ("--proto", extra[1], *args)
    elif extra[:1] == ("--kind",):
        args = ("--proto", "udp" if extra[1].endswith("udp") else "tcp", *args)
    return args, outcome


@pytest.mark.parametrize("program, extra", STARTS)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_servers_serve_then_stop_cleanly_on_signals(
    lab: Lab, program: str, extra: tuple[str, ...], signum: int
) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0", *extra)
    client = hello(program, extra)
    if client is not None:
        args, outcome = client
        result = call_client(program, "--to", server.endpoint(), *args)
        assert result["outcome"] == outcome, result
    forked = children(server.pid)
    assert server.stop(signum) == 0, server.log()
    log = server.log()
    assert log.splitlines()[-1].endswith(" stopped"), log  # after every handler, thread or process, ended
    assert "Traceback" not in log and "Error" not in log, log
    assert not any(alive(pid) for pid in forked), f"a forked process outlived its server\n{log}"


@pytest.mark.parametrize("program, extra, opening", [
    ("bulk", (), (1000).to_bytes(8, "big") + b"only ten b"),  # a transfer of 1000 bytes, 10 sent
    ("sockserver", ("--kind", "threading-tcp"), b"hi"),  # echoed; the client then says nothing more
])
def test_a_thread_per_connection_server_ends_its_open_conversations_when_stopped(
    lab: Lab, program: str, extra: tuple[str, ...], opening: bytes
) -> None:
    """The stop wakes each handler (no waiting out the 30 s idle timeout) and waits for it to finish.

    Abandoned handler threads could hang the interpreter's exit; a handler
    that finished has logged how its conversation ended before "stopped".
    """
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0", *extra)
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        sock.sendall(opening)
        peer = f"127.0.0.1:{sock.getsockname()[1]}"
        server.wait_for_log(f"accepted {peer}")
        assert server.stop(signal.SIGTERM, timeout=20) == 0, server.log()
    lines = server.log().splitlines()
    assert lines[-1].endswith(" stopped"), server.log()
    assert any(peer in line and "accepted" not in line for line in lines[:-1]), server.log()


def test_unix_server_stops_cleanly_and_removes_its_socket(lab: Lab) -> None:
    path = lab.directory / "echo.sock"
    server = lab.start("unixecho", "--path", str(path))
    assert call_client("unixecho", "--path", str(path))["outcome"] == "echoed"
    assert server.stop() == 0
    assert not path.exists()
    assert server.log().rstrip().endswith("stopped")


@pytest.mark.parametrize("program", CLIENTS)
def test_clients_report_refused_as_a_result(program: str, free_port: int) -> None:
    extra = (*REQUIRED.get(program, ()), *REFUSED.get(program, ()))
    result = call_client(program, "--to", f"127.0.0.1:{free_port}", *extra)
    assert result["outcome"] == "refused", result
    assert result["errno"] == "ECONNREFUSED"


@pytest.mark.parametrize("program", CLIENTS)
def test_clients_report_an_unresolvable_name_as_a_result(program: str) -> None:
    result = call_client(program, "--to", "no-such-host.invalid:65432", *REQUIRED.get(program, ()))
    assert result["outcome"] == "unresolved", result
