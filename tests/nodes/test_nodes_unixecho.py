"""The Unix domain socket echo server and client."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from nodetest import Lab, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "sent", "received", "reply", "elapsed_ms"}


def test_echo_over_a_path(lab: Lab) -> None:
    path = str(lab.directory / "echo.sock")
    server = lab.start("unixecho", "--path", path)
    assert server.where == path
    result = lab.client("unixecho", "--path", path, "--send", "Hello, world")
    assert set(result) == KEYS
    assert result["outcome"] == "echoed" and result["peer"] == path and result["local"] is None
    in_process = call_client("unixecho", "--path", path, "--send", "x" * 100_000)  # within the buffers
    assert in_process["outcome"] == "echoed" and in_process["received"] == 100_000
    server.wait_for_log(rf"accepted pid {os.getpid()} \(uid {os.getuid()}\)")


def test_a_stale_socket_file_is_replaced(lab: Lab) -> None:
    path = lab.directory / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening, then gone: a crashed server's leftover
    refused = call_client("unixecho", "--path", str(path))
    assert refused["outcome"] == "refused"
    lab.start("unixecho", "--path", str(path))
    assert call_client("unixecho", "--path", str(path))["outcome"] == "echoed"


def test_a_live_server_is_not_replaced(lab: Lab) -> None:
    path = str(lab.directory / "live.sock")
    lab.start("unixecho", "--path", path)
    done = lab.run("unixecho", "serve", "--path", path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: another server is listening on {path}"
    assert call_client("unixecho", "--path", path)["outcome"] == "echoed"


def test_a_file_that_is_not_a_socket_is_left_alone(lab: Lab) -> None:
    path = lab.directory / "notes.txt"
    path.write_text("precious")
    done = lab.run("unixecho", "serve", "--path", str(path))
    assert done.returncode == 2 and "exists and is not a socket: not removing it" in done.stderr
    assert path.read_text() == "precious"


def test_unusable_paths_exit_2(lab: Lab) -> None:
    missing = lab.run("unixecho", "serve", "--path", str(lab.directory / "no" / "such" / "dir.sock"))
    assert missing.returncode == 2 and "No such file or directory" in missing.stderr
    long = lab.run("unixecho", "serve", "--path", "/tmp/" + "x" * 200)
    assert long.returncode == 2 and "path too long" in long.stderr


def test_client_to_a_missing_path(tmp_path: Path) -> None:
    result = call_client("unixecho", "--path", str(tmp_path / "nothing.sock"))
    assert result["outcome"] == "error" and result["errno"] == "ENOENT"


def test_a_silent_client_is_timed_out_and_the_next_served(lab: Lab) -> None:
    path = str(lab.directory / "slow.sock")
    server = lab.start("unixecho", "--path", path, "--timeout", "0.5")
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(path)
        server.wait_for_log(rf"accepted pid {os.getpid()} ")  # the server serves it, so the next one waits
        result = call_client("unixecho", "--path", path)
        assert silent.recv(1) == b""
    assert result["outcome"] == "echoed" and result["elapsed_ms"] >= 300
    server.wait_for_log(r"timed out pid \d+ \(uid \d+\): idle for 0\.5 s")
