"""The halfclose server answers once it reads end of file; the client shuts down writing, or does not."""

from __future__ import annotations

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "peer", "local", "end", "pieces", "sent", "write_after", "received",
        "reply", "eof", "elapsed_ms"}


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("halfclose", "--bind", "127.0.0.1", "--port", "0")


def test_send_shut_down_writing_read_to_end_of_file(lab: Lab, server: Server) -> None:
    result = lab.client("halfclose", "--to", server.endpoint(), "--send", "Hello, world")
    assert set(result) == KEYS
    assert result["outcome"] == "ok" and result["reply"] == "dlrow ,olleH" and result["eof"] is True, result
    assert (result["sent"], result["received"], result["write_after"]) == (12, 12, None)
    server.wait_for_log(r"end of file after 12 bytes in \d+ recv calls; answering")


def test_a_request_in_pieces_is_answered_whole(server: Server) -> None:
    result = call_client("halfclose", "--to", server.endpoint(), "--send", "abcdefghij", "--pieces", "3")
    assert result["outcome"] == "ok" and result["reply"] == "jihgfedcba" and result["pieces"] == 3, result
    server.wait_for_log(r"end of file after 10 bytes in [4-9] recv calls")  # three pieces, then the end of file


def test_without_the_shutdown_both_sides_wait(server: Server) -> None:
    result = call_client("halfclose", "--to", server.endpoint(), "--end", "none", "--timeout", "0.5")
    assert result["outcome"] == "timeout" and result["errno"] is None, result
    assert result["received"] == 0 and result["eof"] is False


def test_a_send_after_the_shutdown_is_a_broken_pipe_and_reading_goes_on(server: Server) -> None:
    result = call_client("halfclose", "--to", server.endpoint(), "--write-after")
    assert result["write_after"] == "EPIPE", result
    assert result["outcome"] == "ok" and result["reply"] == "dlrow ,olleH"


def test_an_unknown_end_is_a_usage_error(lab: Lab) -> None:
    done = lab.run("halfclose", "client", "--to", "127.0.0.1:9", "--end", "close")
    assert done.returncode == 2 and "--end" in done.stderr
