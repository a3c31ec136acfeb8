"""The hostile client writes exactly its case's bytes, cut as it says, and reports what really came back."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nodetest import Lab, Server

from nodes.appmsg import MessageReader, encode_result, search_request

MORPHEUS = "Follow the white rabbit. \U0001f430"
RING = "In the caves beneath the Misty Mountains. \U0001f48d"
KEYS = {"outcome", "errno", "detail", "target", "local", "peer", "case", "written", "sends", "bytes_sent",
        "responses", "results", "result", "bytes_received", "leftover", "end", "end_ms", "elapsed_ms"}


def appsplit(lab: Lab, *args: str) -> dict[str, Any]:
    """Run the client as the lab does: exit 0 and one JSON line."""
    done = lab.run("appsplit", *args)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    result: dict[str, Any] = json.loads(line)
    assert set(result) == KEYS
    return result


@pytest.fixture(scope="module")
def app(module_lab: Lab) -> Server:
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--timeout", "2")


def test_header_a_byte_per_send_is_answered_whole(lab: Lab, app: Server) -> None:
    result = appsplit(lab, "--to", app.endpoint(), "--case", "header-bytewise", "--pause", "0.001")
    assert result["outcome"] == "ok" and result["responses"] == 1 and result["result"] == MORPHEUS
    assert result["results"] == [MORPHEUS] and result["leftover"] == 0 and result["end"] == "eof"
    request = search_request("morpheus")
    framing = 2 + struct.unpack(">H", request[:2])[0]
    assert result["sends"] == framing + 1 and result["bytes_sent"] == len(request)
    assert result["written"] == f"{framing} sends of 1 byte, 0.001 s apart, then one of {len(request) - framing} bytes"


def test_two_in_one_send_gets_the_first_answered_only(lab: Lab, app: Server) -> None:
    result = appsplit(lab, "--to", app.endpoint(), "--case", "two-in-one", "--value", "ring", "--second", "morpheus")
    assert result["outcome"] == "ok" and result["results"] == [RING] and result["end"] == "eof"
    assert result["sends"] == 1 and result["bytes_sent"] == len(search_request("ring") + search_request("morpheus"))


@pytest.mark.parametrize("case", ["half-then-fin", "not-json"])
def test_what_cannot_be_answered_is_closed_at_once(lab: Lab, app: Server, case: str) -> None:
    result = appsplit(lab, "--to", app.endpoint(), "--case", case)
    assert result["outcome"] == "closed" and result["end"] == "eof", result
    assert result["responses"] == 0 and result["bytes_received"] == 0 and result["result"] is None
    assert result["end_ms"] < 1500  # the server's deadline is 2 s: it did not wait for it
    assert result["written"].endswith("; then FIN") == (case == "half-then-fin")


def test_a_long_prefix_waits_for_the_server_deadline(lab: Lab, app: Server) -> None:
    result = appsplit(lab, "--to", app.endpoint(), "--case", "long-prefix", "--timeout", "10")
    assert result["outcome"] == "closed" and result["end"] == "eof" and result["bytes_received"] == 0
    assert 1900 <= result["end_ms"] < 9000
    app.wait_for_log(r"timed out after 2 s receiving the request")


def test_a_client_that_gives_up_first_reports_a_timeout(lab: Lab, app: Server) -> None:
    result = appsplit(lab, "--to", app.endpoint(), "--case", "long-prefix", "--timeout", "0.5")
    assert result["outcome"] == "timeout" and result["end"] == "timeout" and result["bytes_received"] == 0


# -- the bytes on the wire, seen by a server of the test's own ---------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def serve_once(listener: socket.socket, handle: Callable[[socket.socket], object]) -> threading.Thread:
    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            handle(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def target(listener: socket.socket) -> str:
    return f"127.0.0.1:{listener.getsockname()[1]}"


def test_the_header_really_arrives_in_pieces(lab: Lab, listener: socket.socket) -> None:
    chunks: list[bytes] = []

    def record(conn: socket.socket) -> None:
        reader = MessageReader()
        while not (messages := reader.feed(data := conn.recv(65536))):
            chunks.append(data)
        chunks.append(data)
        conn.sendall(encode_result(messages[0].json()["value"]))

    thread = serve_once(listener, record)
    result = appsplit(lab, "--to", target(listener), "--case", "header-bytewise", "--pause", "0.02")
    thread.join(5)
    assert b"".join(chunks) == search_request("morpheus")
    # A byte per recv, as a rule: on a busy machine the reader may wake late and find two or three waiting.
    sizes = sorted(len(chunk) for chunk in chunks[:-1])
    assert len(chunks) > 50 and sizes[len(sizes) // 2] == 1, sizes
    assert result["outcome"] == "ok" and result["result"] == "morpheus"


@pytest.mark.parametrize(("case", "expected"), [
    ("two-in-one", search_request("morpheus") + search_request("ring")),
    ("half-then-fin", search_request("morpheus")[:-20]),
    ("long-prefix", struct.pack(">H", 1000) + search_request("morpheus")[2:]),
    ("not-json", struct.pack(">H", 18) + b"this is not JSON {"),
])
def test_each_case_writes_exactly_its_bytes(lab: Lab, listener: socket.socket, case: str, expected: bytes) -> None:
    received = bytearray()

    def take(conn: socket.socket) -> None:
        conn.settimeout(0.5)
        try:
            while data := conn.recv(65536):
                received.extend(data)
        except TimeoutError:
            pass  # no FIN: everything has arrived by now

    thread = serve_once(listener, take)
    result = appsplit(lab, "--to", target(listener), "--case", case, "--timeout", "5")
    thread.join(5)
    if case == "half-then-fin":  # half the content, whatever its length
        request = search_request("morpheus")
        content = len(request) - 2 - struct.unpack(">H", request[:2])[0]
        expected = request[: len(request) - content + content // 2]
    assert bytes(received) == expected
    assert result["bytes_sent"] == len(expected) and result["outcome"] == "closed"


def test_a_server_that_answers_both_is_reported_as_such(lab: Lab, listener: socket.socket) -> None:
    def both(conn: socket.socket) -> None:
        reader, answered = MessageReader(), 0
        while answered < 2:
            for message in reader.feed(conn.recv(65536)):
                conn.sendall(encode_result(message.json()["value"]))
                answered += 1

    thread = serve_once(listener, both)
    result = appsplit(lab, "--to", target(listener), "--case", "two-in-one")
    thread.join(5)
    assert result["outcome"] == "ok" and result["responses"] == 2 and result["results"] == ["morpheus", "ring"]


def test_a_reset_after_the_answer_is_told_apart(lab: Lab, listener: socket.socket) -> None:
    def answer_then_abort(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(encode_result("first"))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends a RST

    thread = serve_once(listener, answer_then_abort)
    result = appsplit(lab, "--to", target(listener), "--case", "two-in-one")
    thread.join(5)
    assert result["outcome"] == "ok" and result["results"] == ["first"]
    assert result["end"] in ("reset", "eof")  # the RST may overtake the answer's reading; never a timeout


def test_bytes_that_are_not_a_response_are_a_mismatch(lab: Lab, listener: socket.socket) -> None:
    def garble(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"\x00\x05hello")  # a prefix, then five bytes that are no JSON header

    thread = serve_once(listener, garble)
    result = appsplit(lab, "--to", target(listener), "--case", "not-json")
    thread.join(5)
    assert result["outcome"] == "mismatch" and "header is not valid JSON" in result["detail"]


def test_a_closed_port_is_refused(lab: Lab, free_port: int) -> None:
    result = appsplit(lab, "--to", f"127.0.0.1:{free_port}", "--case", "not-json")
    assert result["outcome"] == "refused" and result["errno"] == "ECONNREFUSED" and result["sends"] == 0


@pytest.mark.parametrize("args", [(), ("--case", "whole"), ("--case", "not-json", "--pause", "-1")])
def test_bad_arguments_exit_2(lab: Lab, args: tuple[str, ...]) -> None:
    assert lab.run("appsplit", "--to", "127.0.0.1:9", *args).returncode == 2


def test_a_name_that_does_not_resolve_is_reported(lab: Lab) -> None:
    result = appsplit(lab, "--to", "no-such-host.invalid:65432", "--case", "not-json")
    assert result["outcome"] == "unresolved" and result["errno"].startswith("EAI_") and result["local"] is None
