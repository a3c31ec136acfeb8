"""What every node program promises: help, exit statuses, clean stops, one JSON result."""

from __future__ import annotations

import argparse
import importlib
import signal
import socket

import pytest
from nodetest import REPO, Lab, alive, call_client, children

INET_PROGRAMS = ["echo", "multiconn", "app", "udpecho", "sockserver", "asyncecho", "bulk"]
PROGRAMS = [*INET_PROGRAMS, "unixecho"]
NOT_HERE = "198.51.100.7"  # TEST-NET-2: never an address of this host

# A client run that succeeds against each server, to show it serves before it is stopped.
HELLO: dict[str, tuple[str, ...]] = {
    "echo": ("echo", "--send", "hi"),
    "multiconn": ("multiconn", "--connections", "3"),
    "app": ("app", "--value", "ring"),
    "udpecho": ("udpecho", "--send", "hi"),
    "asyncecho": ("asyncecho", "--connections", "3"),
    "bulk": ("bulk", "--bytes", "1000"),
}
GOOD = {"echoed", "ok"}


@pytest.mark.parametrize("program", PROGRAMS)
def test_each_program_is_a_runnable_module_that_says_what_it_prints(program: str) -> None:
    source = (REPO / "nodes" / f"{program}.py").read_text()
    assert 'if __name__ == "__main__":' in source  # how the orchestrator finds programs
    assert "socklab" not in source  # stdlib only, never the orchestrator
    docstring = importlib.import_module(f"nodes.{program}").__doc__
    assert "python -m nodes." in docstring and "JSON" in docstring


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_runs_and_explains_every_option(lab: Lab, program: str) -> None:
    done = lab.run(program, "--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout and "client" in done.stdout
    parser = importlib.import_module(f"nodes.{program}").parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subcommands.choices) == {"serve", "client"}
    for name, sub in subcommands.choices.items():
        for action in sub._actions:
            assert action.help, f"{program} {name} {action.option_strings} has no help"
        assert sub.format_help()  # renders (no bad % in a help string)


@pytest.mark.parametrize("program", INET_PROGRAMS)
def test_bad_port_exits_2_with_a_clear_message(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"nodes.{program}").main
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "70000"])
    assert stopped.value.code == 2
    assert "port 70000 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize("program", INET_PROGRAMS)
def test_client_needs_a_port(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"nodes.{program}").main
    extra = ["--value", "x"] if program == "app" else []
    with pytest.raises(SystemExit) as stopped:
        main(["client", "--to", "127.0.0.1", *extra])
    assert stopped.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    "program, extra",
    [(p, ()) for p in INET_PROGRAMS]
    + [("sockserver", ("--kind", "threading-udp")), ("bulk", ("--proto", "udp"))],
)
def test_address_not_on_this_host_exits_2(lab: Lab, program: str, extra: tuple[str, ...]) -> None:
    done = lab.run(program, "serve", "--bind", NOT_HERE, "--port", "0", *extra)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot bind {NOT_HERE}:0: that address is not on this host"


def test_unknown_host_name_exits_2(lab: Lab) -> None:
    done = lab.run("echo", "serve", "--bind", "no-such-host.invalid", "--port", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot bind no-such-host.invalid:0:")


def test_port_in_use_exits_2(lab: Lab) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = lab.run("multiconn", "serve", "--bind", "127.0.0.1", "--port", str(port))
    assert done.returncode == 2
    assert "already uses that address and port" in done.stderr


@pytest.mark.parametrize(
    "program, extra, client",
    [
        ("echo", (), HELLO["echo"]),
        ("multiconn", (), HELLO["multiconn"]),
        ("app", (), HELLO["app"]),
        ("app", ("--workers", "2"), HELLO["app"]),
        ("udpecho", (), HELLO["udpecho"]),
        ("sockserver", ("--kind", "threading-tcp"), HELLO["echo"]),
        ("sockserver", ("--kind", "forking-tcp"), HELLO["echo"]),
        ("sockserver", ("--kind", "threading-udp"), HELLO["udpecho"]),
        ("asyncecho", (), HELLO["asyncecho"]),
        ("bulk", (), HELLO["bulk"]),
        ("bulk", ("--proto", "udp"), ("bulk", "--proto", "udp", "--count", "10", "--interval", "0.001")),
    ],
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_servers_serve_then_stop_cleanly_on_signals(
    lab: Lab, program: str, extra: tuple[str, ...], client: tuple[str, ...], signum: int
) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0", *extra)
    result = call_client(client[0], "--to", server.endpoint(), *client[1:])
    assert result["outcome"] in GOOD, result
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
        assert server.stop(signal.SIGTERM, timeout=10) == 0, server.log()
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


@pytest.mark.parametrize("program, extra", [("echo", ()), ("multiconn", ()), ("app", ("--value", "x")),
                                             ("asyncecho", ()), ("bulk", ())])
def test_tcp_clients_report_refused_as_a_result(program: str, extra: tuple[str, ...], free_port: int) -> None:
    result = call_client(program, "--to", f"127.0.0.1:{free_port}", *extra)
    assert result["outcome"] == "refused"
    assert result["errno"] == "ECONNREFUSED"


@pytest.mark.parametrize("program, extra", [("echo", ()), ("app", ("--value", "x")), ("udpecho", ()),
                                             ("bulk", ()), ("multiconn", ()), ("asyncecho", ())])
def test_clients_report_an_unresolvable_name_as_a_result(program: str, extra: tuple[str, ...]) -> None:
    result = call_client(program, "--to", "no-such-host.invalid:65432", *extra)
    assert result["outcome"] == "unresolved"
