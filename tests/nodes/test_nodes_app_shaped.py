"""The app client's request shapes: in pieces, followed by a FIN, two back to back; against our server and others."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nodetest import Lab, Server, call_client

RING = "In the caves beneath the Misty Mountains. \U0001f48d"


@pytest.fixture(scope="module")
def app(module_lab: Lab) -> Server:
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0")


@pytest.mark.parametrize(("shape", "written"), [
    (["--split", "bytewise", "--pause", "0.001"], r"^\d+ sends of 1 byte\(s\), 0.001 s apart$"),
    (["--split", "prefix"], r"^sends of 1, \d+ bytes, 0.01 s apart$"),
    (["--fin"], r"^one send of \d+ bytes; then FIN$"),
    (["--back-to-back"], r"^one send of \d+ bytes$"),
    (["--split", "prefix", "--fin"], r"^sends of 1, \d+ bytes, 0.01 s apart; then FIN$"),
])
def test_our_server_answers_every_shape(lab: Lab, app: Server, shape: list[str], written: str) -> None:
    result = lab.client("app", "--to", app.endpoint(), "--value", "ring", *shape)
    assert result["outcome"] == "ok" and result["result"] == RING, result
    assert result["completed"] == 1 and result["requests"] == 1
    assert re.match(written, result["written"]), result["written"]


def test_back_to_back_sends_two_whole_requests_at_once(app: Server) -> None:
    once = call_client("app", "--to", app.endpoint(), "--value", "ring", "--fin")
    twice = call_client("app", "--to", app.endpoint(), "--value", "ring", "--back-to-back")
    assert twice["bytes_sent"] == 2 * once["bytes_sent"] and twice["result"] == RING


class Recorder:
    """A server that reads until the client's FIN and records what it got in each recv, then answers."""

    def __init__(self, answer: bool = True) -> None:
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.port = self.listening.getsockname()[1]
        self.answer = answer
        self.chunks: list[bytes] = []
        self.done = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        conn, _ = self.listening.accept()
        with conn:
            conn.settimeout(5)
            while chunk := conn.recv(65536):
                self.chunks.append(chunk)
            self.done.set()
            if self.answer:  # after the client's FIN: the answer is still due, and still read
                body = json.dumps({"result": "after the FIN"}).encode()
                head = json.dumps({"byteorder": "big", "content-type": "text/json", "content-encoding": "utf-8",
                                   "content-length": len(body)}).encode()
                conn.sendall(struct.pack(">H", len(head)) + head + body)


@pytest.fixture
def recorder() -> Iterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(**options: Any) -> Recorder:
        made.append(Recorder(**options))
        return made[-1]

    yield make
    for server in made:
        server.listening.close()


def test_fin_follows_the_request_and_the_answer_is_still_read(recorder: Any) -> None:
    server = recorder()
    result = call_client("app", "--to", f"127.0.0.1:{server.port}", "--value", "ring", "--fin", "--back-to-back")
    assert result["outcome"] == "ok" and result["result"] == "after the FIN", result
    data = b"".join(server.chunks)  # everything the client sent before its FIN
    assert len(data) == result["bytes_sent"]
    (length,) = struct.unpack(">H", data[:2])
    header = json.loads(data[2 : 2 + length])
    first = 2 + length + header["content-length"]
    assert data[:first] == data[first:]  # two whole copies of the request, back to back
    assert json.loads(data[2 + length : first]) == {"action": "search", "value": "ring"}


def test_bytewise_writes_every_byte_of_the_request(recorder: Any) -> None:
    server = recorder()
    result = call_client("app", "--to", f"127.0.0.1:{server.port}", "--binary", "hi", "--split", "bytewise",
                         "--pause", "0", "--fin")
    assert result["outcome"] == "ok", result
    assert result["written"].startswith(f"{result['bytes_sent']} sends of 1 byte")
    assert sum(map(len, server.chunks)) == result["bytes_sent"]


def test_a_server_that_reads_a_request_with_one_recv_is_caught_by_a_split_prefix() -> None:
    first_reads: list[bytes] = []

    def reads_once(listening: socket.socket) -> None:
        conn, _ = listening.accept()
        with conn:
            first_reads.append(conn.recv(4096))  # one recv for the whole request: the bug
            # with only one byte there is no header length to unpack: the connection ends unanswered

    with socket.create_server(("127.0.0.1", 0)) as listening:
        thread = threading.Thread(target=reads_once, args=(listening,), daemon=True)
        thread.start()
        result = call_client("app", "--to", f"127.0.0.1:{listening.getsockname()[1]}", "--value", "ring",
                             "--split", "prefix", "--pause", "0.5")
        thread.join(5)
    assert [len(data) for data in first_reads] == [1]
    assert result["outcome"] in ("closed", "reset", "broken-pipe"), result
    assert result["completed"] == 0 and result["header"] is None


@pytest.mark.parametrize("words", [["--fin", "--requests", "2"], ["--split", "bytewise", "--back-to-back"]])
def test_shapes_make_one_request_of_one_kind(lab: Lab, words: list[str]) -> None:
    done = lab.run("app", "client", "--to", "127.0.0.1:7", "--value", "ring", *words)
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr
    assert done.stdout == ""


def test_a_shaped_request_to_a_closed_port_is_refused(free_port: int) -> None:
    result = call_client("app", "--to", f"127.0.0.1:{free_port}", "--value", "ring", "--fin")
    assert result["outcome"] == "refused" and result["errno"] == "ECONNREFUSED" and result["failed"] == 1
