"""The application protocol's server and client, against each other and against independent peers.

``frame``, ``ask`` and ``DescriptionServer`` are minimal implementations
written here from the protocol's description alone (the classic tutorial's,
drawn in ``nodes.appmsg``'s docstring), without ``nodes.appmsg``'s code:
if our programs talk to them, they talk to anything written to the
description. The independent server deliberately differs where the
description allows it: it escapes non-ASCII characters in JSON and orders
its header keys differently.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from nodetest import Lab, Server, alive, call_client, children, wait_until

ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
KEYS = {"byteorder", "content-type", "content-encoding", "content-length"}


def frame(header: dict[str, Any], content: bytes) -> bytes:
    raw = json.dumps(header).encode("utf-8")
    return struct.pack(">H", len(raw)) + raw + content


def search(value: str, action: str = "search") -> bytes:
    content = json.dumps({"action": action, "value": value}).encode("utf-8")
    return frame({"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8",
                  "content-length": len(content)}, content)


def parse(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack(">H", data[:2])
    header = json.loads(data[2 : 2 + length].decode("utf-8"))
    content = data[2 + length :]
    assert len(content) == header["content-length"], "the response is not exactly one message"
    return header, content


def ask(port: int, message: bytes, host: str = "127.0.0.1", timeout: float = 5.0) -> tuple[dict[str, Any], bytes]:
    """Send one request and read until the server closes, as the description says it will."""
    with socket.create_connection((host, port), timeout) as sock:
        sock.sendall(message)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse(data)


def result_of(port: int, value: str, host: str = "127.0.0.1") -> str:
    header, content = ask(port, search(value), host)
    assert set(header) >= KEYS and header["content-type"] == "text/json"
    return json.loads(content.decode(header["content-encoding"]))["result"]


class DescriptionServer:
    """The protocol's server side in a few lines, in a thread; ``behaviour`` may misbehave on purpose."""

    def __init__(self, behaviour: Callable[[socket.socket, dict[str, Any], bytes], None] | None = None) -> None:
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.port = self.listening.getsockname()[1]
        self.behaviour = behaviour or self.answer
        self.received: list[tuple[dict[str, Any], bytes]] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listening.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                (length,) = struct.unpack(">H", self.exactly(conn, 2))
                header = json.loads(self.exactly(conn, length))
                content = self.exactly(conn, header["content-length"])
                self.received.append((header, content))
                self.behaviour(conn, header, content)

    @staticmethod
    def exactly(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            assert chunk
            data += chunk
        return data

    @staticmethod
    def answer(conn: socket.socket, header: dict[str, Any], content: bytes) -> None:
        if header["content-type"] == "text/json":
            request = json.loads(content.decode(header["content-encoding"]))
            if request.get("action") == "search":
                value = request.get("value")
                text = ANSWERS.get(value) or f"No match for '{value}'."
            else:
                text = f"Error: invalid action '{request.get('action')}'."
            body, kind, encoding = json.dumps({"result": text}).encode(), "text/json", "utf-8"  # \\u escapes
        else:
            body = b"First 10 bytes of request: " + content[:10]
            kind, encoding = "binary/custom-server-binary-type", "binary"
        conn.sendall(frame({"content-length": len(body), "content-encoding": encoding, "content-type": kind,
                            "byteorder": "big"}, body))

    def close(self) -> None:
        self.listening.close()


@pytest.fixture
def description_server() -> Iterator[Callable[..., DescriptionServer]]:
    made: list[DescriptionServer] = []

    def make(behaviour: Callable[[socket.socket, dict[str, Any], bytes], None] | None = None) -> DescriptionServer:
        made.append(DescriptionServer(behaviour))
        return made[-1]

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.fixture(scope="module")
def app(module_lab: Lab) -> Server:
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0")


# Our client against the independent server.

@pytest.mark.parametrize("value", ["morpheus", "ring", "\U0001f436", "nobody"])
def test_our_client_talks_to_an_independent_server(lab: Lab, description_server: Any, value: str) -> None:
    peer = description_server()
    result = lab.client("app", "--to", f"127.0.0.1:{peer.port}", "--value", value)
    assert result["outcome"] == "ok", result
    assert result["result"] == ANSWERS.get(value, f"No match for '{value}'.")
    assert result["content"] == {"result": result["result"]}
    assert result["header"]["byteorder"] == "big" and result["content_type"] == "text/json"
    header, content = peer.received[0]
    assert set(header) == KEYS and header["content-type"] == "text/json" and header["content-encoding"] == "utf-8"
    assert json.loads(content) == {"action": "search", "value": value}


def test_our_binary_request_to_an_independent_server(description_server: Any) -> None:
    peer = description_server()
    result = call_client("app", "--to", f"127.0.0.1:{peer.port}", "--binary", "0123456789abcdef")
    assert result["outcome"] == "ok"
    assert result["content_type"] == "binary/custom-server-binary-type"
    assert result["result"] == "First 10 bytes of request: 0123456789"
    header, content = peer.received[0]
    assert header["content-type"] == "binary/custom-client-binary-type" and header["content-encoding"] == "binary"
    assert content == b"0123456789abcdef"


def test_client_says_closed_when_the_server_closes_without_answering(description_server: Any) -> None:
    peer = description_server(lambda conn, header, content: None)
    result = call_client("app", "--to", f"127.0.0.1:{peer.port}", "--value", "ring")
    assert result["outcome"] == "closed" and result["header"] is None


def test_client_says_mismatch_on_a_malformed_response(description_server: Any) -> None:
    peer = description_server(lambda conn, header, content: conn.sendall(b"\x00\x05hello"))
    result = call_client("app", "--to", f"127.0.0.1:{peer.port}", "--value", "ring")
    assert result["outcome"] == "mismatch" and "header is not valid JSON" in result["detail"]


def test_client_says_closed_on_a_truncated_response(description_server: Any) -> None:
    def half(conn: socket.socket, header: dict[str, Any], content: bytes) -> None:
        conn.sendall(frame({"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8",
                            "content-length": 100}, b'{"result": '))

    result = call_client("app", "--to", f"127.0.0.1:{description_server(half).port}", "--value", "ring")
    assert result["outcome"] == "closed"


def test_client_times_out_when_the_server_never_answers(description_server: Any) -> None:
    peer = description_server(lambda conn, header, content: time.sleep(1.5))
    result = call_client("app", "--to", f"127.0.0.1:{peer.port}", "--value", "ring", "--timeout", "0.3")
    assert result["outcome"] == "timeout" and result["elapsed_ms"] >= 250


def test_expect_turns_another_answer_into_a_mismatch(app: Server) -> None:
    assert call_client("app", "--to", app.endpoint(), "--value", "ring", "--expect", "x")["outcome"] == "mismatch"
    ok = call_client("app", "--to", app.endpoint(), "--value", "neo", "--expect", "No match for 'neo'.")
    assert ok["outcome"] == "ok"


# Our server against the independent client.

@pytest.mark.parametrize("value", ["morpheus", "ring", "\U0001f436", "trinity", ""])
def test_our_server_answers_an_independent_client(app: Server, value: str) -> None:
    assert result_of(app.port, value) == ANSWERS.get(value, f"No match for '{value}'.")


def test_our_server_answers_an_invalid_action(app: Server) -> None:
    _, content = ask(app.port, search("morpheus", action="find"))
    assert json.loads(content) == {"result": "Error: invalid action 'find'."}


def test_our_server_answers_binary_requests(app: Server) -> None:
    for payload in (b"", b"short", bytes(range(256)) * 10):
        header, content = ask(app.port, frame({"byteorder": "big", "content-type": "image/x-anything",
                                               "content-encoding": "binary", "content-length": len(payload)},
                                              payload))
        assert header["content-type"] == "binary/custom-server-binary-type"
        assert header["content-encoding"] == "binary" and set(header) == KEYS
        assert content == b"First 10 bytes of request: " + payload[:10]


def test_our_server_takes_any_key_order_extra_keys_and_escaped_json(app: Server) -> None:
    content = b'{"value": "\\ud83d\\udc36", "action": "search", "extra": 1}'  # the dog, escaped
    message = frame({"content-length": len(content), "x-trace": "abc", "content-encoding": "UTF-8",
                     "content-type": "text/json", "byteorder": "big"}, content)
    _, answer = ask(app.port, message)
    assert json.loads(answer) == {"result": ANSWERS["\U0001f436"]}


def test_our_server_answers_a_request_sent_byte_by_byte(app: Server) -> None:
    with socket.create_connection(("127.0.0.1", app.port), 5) as sock:
        for byte in search("ring"):
            sock.sendall(bytes([byte]))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert json.loads(parse(data)[1]) == {"result": ANSWERS["ring"]}


def test_our_server_logs_one_line_per_exchange(app: Server) -> None:
    with socket.create_connection(("127.0.0.1", app.port), 5) as sock:
        port = sock.getsockname()[1]
        sock.sendall(search("morpheus"))
        while sock.recv(65536):
            pass
    line = app.wait_for_log(rf"closed 127\.0\.0\.1:{port}: answered .*\n").group(0)
    assert "'search' 'morpheus'" in line


# Our client against our server.

def test_client_and_server_end_to_end(lab: Lab, app: Server) -> None:
    result = lab.client("app", "--to", app.endpoint(), "--value", "morpheus")
    assert result["outcome"] == "ok" and result["errno"] is None
    assert result["result"] == ANSWERS["morpheus"]
    assert result["header"] == {"byteorder": sys.byteorder, "content-type": "text/json",
                                "content-encoding": "utf-8", "content-length": 43}
    assert result["content_length"] == 43 and result["content_encoding"] == "utf-8"
    assert result["requests"] == result["completed"] == 1 and result["failed"] == 0
    assert result["peer"] == app.endpoint() and result["local"].startswith("127.0.0.1:")
    assert result["bytes_received"] == 2 + 103 + 43


def test_load_mode_counts_every_request(app: Server) -> None:
    result = call_client("app", "--to", app.endpoint(), "--binary", "hello", "--requests", "2000",
                         "--concurrency", "50")
    assert result["outcome"] == "ok", result
    assert result["completed"] == 2000 and result["failed"] == 0 and result["errors"] == {}
    assert result["requests_per_s"] > 0
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"] <= result["latency_ms_max"]
    assert result["result"] == "First 10 bytes of request: hello"


def test_many_clients_at_once(app: Server) -> None:
    values = list(ANSWERS) * 70
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda v: result_of(app.port, v), values))
    assert results == [ANSWERS[v] for v in values]


def test_ipv6_and_dual_stack(lab: Lab) -> None:
    server = lab.start("app", "--bind", "::", "--dual-stack", "--port", "0")
    assert "dual-stack" in server.log()
    assert result_of(server.port, "ring", host="::1") == ANSWERS["ring"]
    assert result_of(server.port, "ring", host="127.0.0.1") == ANSWERS["ring"]
    server.wait_for_log(r"closed \[::ffff:127\.0\.0\.1\]:\d+: answered")  # fails the test if it never comes


def test_v6only_refuses_ipv4_clients(lab: Lab) -> None:
    server = lab.start("app", "--bind", "::", "--v6only", "--port", "0")
    assert call_client("app", "--to", f"[::1]:{server.port}", "--value", "ring")["outcome"] == "ok"
    assert call_client("app", "--to", f"127.0.0.1:{server.port}", "--value", "ring")["outcome"] == "refused"


def test_workers_share_the_load_and_are_replaced_when_they_die(lab: Lab) -> None:
    server = lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--workers", "2", "--quiet")
    workers = wait_until(lambda: len(children(server.pid)) == 2 and children(server.pid), what="two workers")
    result = call_client("app", "--to", server.endpoint(), "--value", "ring", "--requests", "1000",
                         "--concurrency", "20")
    assert result["completed"] == 1000, result
    os.kill(workers[0], signal.SIGKILL)
    server.wait_for_log(rf"worker 0 \(pid {workers[0]}\) exited with status -9; starting another")
    wait_until(lambda: len(children(server.pid)) == 2 and workers[0] not in children(server.pid),
               what="a replacement worker")
    assert result_of(server.port, "morpheus") == ANSWERS["morpheus"]
    replacement = set(children(server.pid))
    assert server.stop() == 0
    assert not any(alive(pid) for pid in replacement)


def test_a_request_asked_again_is_answered_and_logged_the_same(lab: Lab) -> None:
    """Every connection is answered from its own request alone: asked again, the answer and log line are the same."""
    server = lab.start("app", "--bind", "127.0.0.1", "--port", "0")
    asked = ["morpheus", "ring", "morpheus", "nobody", "ring", "nobody", "morpheus"]
    assert [result_of(server.port, value) for value in asked] == [
        ANSWERS.get(value, f"No match for '{value}'.") for value in asked]
    wait_until(lambda: server.log().count(": answered 'search' ") == len(asked), 10, what=server.log())
    for value in set(asked):
        assert server.log().count(f": answered 'search' '{value}' in ") == asked.count(value)
    # The same bytes in pieces, with more after them, or cut short are read as always.
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        for byte in search("ring"):
            sock.sendall(bytes([byte]))
        assert json.loads(parse(b"".join(iter(lambda: sock.recv(65536), b"")))[1]) == {"result": ANSWERS["ring"]}
    _, content = ask(server.port, search("morpheus") + b"more bytes")
    assert json.loads(content) == {"result": ANSWERS["morpheus"]}
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        sock.sendall(search("ring")[:-1])
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""
    server.wait_for_log(r"error 127\.0\.0\.1:\d+: truncated request")


def test_many_distinct_requests_each_asked_twice_are_all_answered(app: Server) -> None:
    values = [f"value {number}" for number in range(600)] * 2
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda v: result_of(app.port, v), values))
    assert results == [f"No match for '{value}'." for value in values]
