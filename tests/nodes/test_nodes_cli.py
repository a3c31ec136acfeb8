"""The frame the node programs share (nodes.cli), in process: argument types, accepting, running a program."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import selectors
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nodetest import Lab, Server, call_client, cpu_seconds

from nodes import cli, probe

LOG = logging.getLogger("test")


def test_non_empty_text() -> None:
    assert cli.non_empty("x") == "x"
    with pytest.raises(argparse.ArgumentTypeError, match="at least one character"):
        cli.non_empty("")


def test_endpoint_text_is_checked_but_kept_as_written() -> None:
    assert cli.endpoint_text("localhost:80") == "localhost:80"
    with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
        cli.endpoint_text("127.0.0.1:99999")


@pytest.mark.parametrize("args", [["--to", "127.0.0.1:9", "--timeout", "0"], ["--to", "127.0.0.1:9", "--send", ""],
                                  ["--to", "127.0.0.1:9", "--size", "0"], ["--to", "127.0.0.1:9", "--bufsize", "-1"],
                                  ["--to", "[::1:9"]])
def test_the_probe_refuses_what_it_cannot_do_as_a_usage_error(args: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        probe.main(args)
    assert stopped.value.code == 2


class Refusing:
    """A listening socket whose accept fails as told, then accepts."""

    def __init__(self, *errnos: int) -> None:
        self.errnos = list(errnos)

    def accept(self) -> tuple[Any, Any]:
        if self.errnos:
            code = self.errnos.pop(0)
            raise OSError(code, errno.errorcode[code])
        return "conn", ("127.0.0.1", 1)


def test_a_blocking_accept_pauses_when_out_of_descriptors_and_rides_out_the_rest(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(cli.time, "sleep", slept.append)
    listening = Refusing(errno.EMFILE, errno.ECONNABORTED, errno.ENFILE)
    with caplog.at_level(logging.WARNING):
        assert cli.accept(listening, LOG) == ("conn", ("127.0.0.1", 1))  # type: ignore[arg-type,comparison-overlap]  # a stand-in
    assert slept == [cli.ACCEPT_PAUSE, 0.01, cli.ACCEPT_PAUSE]  # never a retry at once
    assert [r.getMessage().partition(";")[0] for r in caplog.records] == [
        "accept failed: EMFILE", "accept failed: ECONNABORTED", "accept failed: ENFILE"]


class OutOfDescriptors(socket.socket):
    """A real listening socket (so a selector can watch it) whose accept says EMFILE."""

    def accept(self) -> tuple[socket.socket, Any]:
        raise OSError(errno.EMFILE, "Too many open files")


@pytest.fixture
def refusing_listener() -> Iterator[socket.socket]:
    with OutOfDescriptors(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_the_non_blocking_acceptor_leaves_the_selector_while_out_of_descriptors(
    refusing_listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    with selectors.DefaultSelector() as selector:
        acceptor = cli.Acceptor(refusing_listener, selector, LOG, batch=8)
        assert refusing_listener in [key.fileobj for key in selector.get_map().values()]
        with caplog.at_level(logging.WARNING):
            assert list(acceptor.accept()) == []
        assert "pausing accepts for 0.5 s" in caplog.text
        assert not selector.get_map()  # not watched: a readable listener it cannot accept from would spin
        left = acceptor.wait(None)  # how long a select may block: no longer than the pause
        assert left is not None and left <= cli.ACCEPT_PAUSE
        assert acceptor.wait(0.1) == 0.1
        acceptor.resume_if_due(0.0)  # not due yet
        assert not selector.get_map()
        acceptor.freed()  # a connection closed: there is room again
        assert len(selector.get_map()) == 1 and acceptor.wait(None) is None


def run(parser: argparse.ArgumentParser, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(parser, argv)
    out, err = capsys.readouterr()
    return code, out, err


def program(serve: cli.Serve, client: cli.Client) -> argparse.ArgumentParser:
    p, _, _ = cli.subcommands("example", "An example.\n\npython -m nodes.example", serve, client)
    return p


def test_a_client_result_is_one_json_line_with_its_elapsed_time(capsys: pytest.CaptureFixture[str]) -> None:
    def client(args: argparse.Namespace) -> dict[str, Any]:
        """Say hello."""
        return {"outcome": "ok", "to": str(args.to)}

    code, out, _ = run(program(lambda args, log: None, client), ["client", "--to", "127.0.0.1:9"], capsys)
    result = json.loads(out)
    assert code == 0 and list(result) == ["outcome", "to", "elapsed_ms"] and result["elapsed_ms"] >= 0


def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def client(args: argparse.Namespace) -> dict[str, Any]:
        """Refuse."""
        cli.fail("that cannot be done")

    code, out, err = run(program(lambda args, log: None, client), ["client", "--to", "127.0.0.1:9"], capsys)
    assert (code, out, err) == (2, "", "error: that cannot be done\n")


def test_a_server_stopped_by_a_signal_logs_stopped_and_exits_0(caplog: pytest.LogCaptureFixture) -> None:
    def serve(args: argparse.Namespace, log: logging.Logger) -> None:
        """Wait for a stop."""
        log.info("serving on %d", args.port)
        raise KeyboardInterrupt  # what a stop signal raises (cli.stop_on_signals)

    handlers = {signum: signal.getsignal(signum) for signum in cli.STOP_SIGNALS}
    try:
        with caplog.at_level(logging.INFO):
            assert cli.main(program(serve, lambda args: {}), ["serve", "--port", "7"]) == 0
    finally:
        for signum, handler in handlers.items():  # the frame took them over, in this test's process
            signal.signal(signum, handler)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("example", "serving on 7"), ("example", "stopped")]


def test_the_subcommands_are_described_by_their_functions_docstrings() -> None:
    def serve(args: argparse.Namespace, log: logging.Logger) -> None:
        """Answer everyone.

        The example server, as it
        describes itself.
        """

    p, s, c = cli.subcommands("example", None, serve, lambda args: {})
    assert s.description == "The example server, as it describes itself."
    assert "answer everyone" in p.format_help()


@pytest.fixture
def crowded_bulk(lab: Lab) -> Server:
    """A thread-per-connection server allowed few descriptors, whose handlers drop a silent client after 1 s."""
    return lab.start("bulk", "--bind", "127.0.0.1", "--port", "0", "--timeout", "1", max_fds=32)


def test_a_blocking_server_out_of_descriptors_pauses_accepting_and_recovers(crowded_bulk: Server) -> None:
    server = crowded_bulk
    idle = [socket.create_connection(("127.0.0.1", server.port), 30) for _ in range(60)]  # more than it may hold
    try:
        server.wait_for_log(r"accept failed: Too many open files; pausing accepts for 0\.5 s", timeout=30)
        spent = cpu_seconds(server.pid)
        time.sleep(1.0)
        assert cpu_seconds(server.pid) - spent < 0.25, "spinning on a listener it cannot accept from"
    finally:
        for sock in idle:
            sock.close()
    assert call_client("bulk", "--to", server.endpoint(), "--bytes", "1000", "--timeout", "30")["outcome"] == "ok"
    assert server.proc.poll() is None
