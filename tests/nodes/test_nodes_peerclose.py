"""The peerclose server ends connections with a FIN or a RST; the client shows what each step returns."""

from __future__ import annotations

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "steps", "steps_done", "failed_step", "elapsed_ms"}


@pytest.fixture(scope="module")
def servers(module_lab: Lab) -> dict[str, Server]:
    return {mode: module_lab.start("peerclose", "--bind", "127.0.0.1", "--port", "0", "--mode", mode)
            for mode in ("close", "unread", "abort")}


def steps(servers: dict[str, Server], mode: str, made: str) -> dict:
    return call_client("peerclose", "--to", servers[mode].endpoint(), "--steps", made)


def test_a_clean_close_is_end_of_file(lab: Lab, servers: dict[str, Server]) -> None:
    result = lab.client("peerclose", "--to", servers["close"].endpoint(), "--steps", "send,recv")
    assert set(result) == KEYS
    assert result["outcome"] == "closed" and result["failed_step"] is None and result["steps_done"] == 2
    assert [(s["step"], s["outcome"], s["bytes"]) for s in result["steps"]] == [("send", "ok", 12),
                                                                             ("recv", "closed", 0)]
    servers["close"].wait_for_log(r"read 12 bytes, closed: a FIN")


def test_the_first_write_after_the_peer_closed_succeeds_the_next_is_a_broken_pipe(servers: dict[str, Server]) -> None:
    once = steps(servers, "close", "send,recv,send")
    assert once["outcome"] == "ok" and once["steps_done"] == 3
    twice = steps(servers, "close", "send,recv,send,wait,send")
    assert twice["outcome"] == "broken-pipe" and twice["errno"] == "EPIPE"
    assert twice["failed_step"] == "send" and twice["steps_done"] == 5
    assert twice["steps"][3] == twice["steps"][3] | {"step": "wait", "outcome": "ok"}


@pytest.mark.parametrize("mode", ["unread", "abort"])
def test_unread_data_or_linger_zero_resets(servers: dict[str, Server], mode: str) -> None:
    result = steps(servers, mode, "send,recv,send")
    assert result["outcome"] == "reset" and result["errno"] == "ECONNRESET"
    assert result["failed_step"] == "recv" and result["steps_done"] == 2, "a failed step ends the run"


def test_wait_without_a_reset_times_out_and_goes_on(servers: dict[str, Server]) -> None:
    result = call_client("peerclose", "--to", servers["close"].endpoint(), "--steps", "send,wait,recv",
                         "--timeout", "2")  # the wait times out; the server's FIN has all of it to arrive
    assert [s["outcome"] for s in result["steps"]] == ["ok", "timeout", "closed"]


def test_unknown_steps_are_a_usage_error(lab: Lab) -> None:
    done = lab.run("peerclose", "client", "--to", "127.0.0.1:9", "--steps", "send,jump")
    assert done.returncode == 2 and "send, recv, wait" in done.stderr
