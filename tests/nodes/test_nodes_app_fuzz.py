"""Fuzz the application server with at least 10,000 malformed messages while a good client keeps asking.

Hypothesis draws batches of messages that break the protocol in every way
the description allows one to: junk, a zero or wrong header length, bytes
that are not UTF-8 or not JSON, JSON that is not an object or is nested
absurdly deep, missing keys, content-lengths that are negative, huge, or
not integers, truncation anywhere, undecodable text/json content, unknown
encodings, and valid messages with junk after them. Each message goes on
its own connection, a batch's connections in parallel, each half-closed
after sending, as a client that is done would.

For every message the server must, within seconds, either answer with one
well-formed message or close; it must never log an internal error; the
good client, running in a thread the whole time, must get exact answers;
and the server's memory and descriptors must stay where they were.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodetest import Lab, Server, open_fds, rss_kib, wait_until

TOTAL = 10_000
BATCH = 50
CAP = 1 << 20
KEYS = ("byteorder", "content-type", "content-encoding", "content-length")
ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
    "neo": "No match for 'neo'.",
}


def frame(header: bytes, content: bytes = b"") -> bytes:
    return struct.pack(">H", len(header)) + header + content


def header_bytes(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def request(value: str) -> bytes:
    content = json.dumps({"action": "search", "value": value}).encode()
    return frame(header_bytes(byteorder="little", **{"content-type": "text/json", "content-encoding": "utf-8",
                                                     "content-length": len(content)}), content)


# Built to be what is wanted rather than filtered to it: filtering a recursive strategy is slow.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
not_objects = scalars | st.lists(scalars, max_size=3)  # valid JSON, but not a JSON object
not_strings = (st.none() | st.booleans() | st.integers() | st.floats() | st.lists(st.integers(), max_size=2)
               | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
strings = st.sampled_from(["text/json", "binary", "utf-8", "little", ""]) | st.text(max_size=8)


@st.composite
def headers_missing_a_key(draw: st.DrawFn) -> bytes:
    present = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=3))
    fields = {key: (draw(st.integers(0, 100)) if key == "content-length" else draw(strings)) for key in present}
    return frame(json.dumps(fields).encode(), draw(st.binary(max_size=20)))


@st.composite
def bad_content_lengths(draw: st.DrawFn) -> bytes:
    length = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=CAP + 1), st.floats(),
                            st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)))
    header = header_bytes(byteorder="little", **{"content-type": "text/json", "content-encoding": "utf-8",
                                                 "content-length": length})
    return frame(header, draw(st.binary(max_size=20)))


@st.composite
def wrong_types(draw: st.DrawFn) -> bytes:
    fields: dict[str, Any] = {"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8",
                              "content-length": 0}
    fields[draw(st.sampled_from(KEYS[:3]))] = draw(not_strings)
    return frame(json.dumps(fields).encode())


@st.composite
def bad_text_json(draw: st.DrawFn) -> bytes:
    content = draw(st.one_of(
        st.binary(max_size=30),
        not_objects.map(lambda v: json.dumps(v).encode()),
        st.integers(1, 3000).map(lambda n: b'{"value": ' + b"[" * n + b"]" * n + b"}"),
    ))
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "ascii", "latin-1"]) | st.text(max_size=12))
    header = header_bytes(byteorder="little", **{"content-type": "text/json", "content-encoding": encoding,
                                                 "content-length": len(content)})
    return frame(header, content)


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    whole = request(draw(st.sampled_from(list(ANSWERS)) | st.text(max_size=10)))
    return whole[: draw(st.integers(0, len(whole) - 1))]


malformed = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=20).map(lambda junk: b"\x00\x00" + junk),
    st.tuples(st.integers(1, 65535), st.binary(max_size=40)).map(lambda t: struct.pack(">H", t[0]) + t[1]),
    st.binary(max_size=30).map(lambda junk: frame(b"\xc3\x28" + junk)),  # invalid UTF-8 first
    st.text(max_size=20).map(lambda text: frame(text.encode())),
    not_objects.map(lambda v: frame(json.dumps(v).encode())),
    st.integers(100, 30000).map(lambda n: frame(b"[" * n + b"]" * n)),
    headers_missing_a_key(),
    bad_content_lengths(),
    wrong_types(),
    bad_text_json(),
    truncated(),
    st.tuples(st.sampled_from(list(ANSWERS)), st.binary(min_size=1, max_size=20)).map(
        lambda t: request(t[0]) + t[1]
    ),
)


def parse(data: bytes) -> dict[str, Any]:
    """One well-formed message with the four keys, or an AssertionError."""
    (length,) = struct.unpack(">H", data[:2])
    header = json.loads(data[2 : 2 + length].decode("utf-8"))
    assert set(KEYS) <= set(header), header
    assert len(data) == 2 + length + header["content-length"], "not exactly one message"
    return header


def throw(port: int, messages: list[bytes]) -> list[str]:
    """Send each message on its own connection, all at once; say how each ended."""
    socks = []
    for message in messages:
        sock = socket.create_connection(("127.0.0.1", port), 10)
        try:
            sock.sendall(message)
            sock.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError):
            pass
        socks.append(sock)
    endings = []
    for sock in socks:
        with sock:
            data = b""
            try:
                while chunk := sock.recv(65536):  # a server that hangs makes this time out: a failure
                    data += chunk
            except ConnectionResetError:
                endings.append("reset")
                continue
        if data:
            parse(data)
            endings.append("answered")
        else:
            endings.append("closed")
    return endings


class GoodClient(threading.Thread):
    """Asks real questions for as long as the fuzzing lasts; every answer must be exact."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.answered = port, 0
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        for value in itertools.cycle(ANSWERS):
            if self.done.is_set():
                return
            try:
                with socket.create_connection(("127.0.0.1", self.port), 5) as sock:
                    sock.sendall(request(value))
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                header = parse(data)
                content = json.loads(data[-header["content-length"]:])
                assert content == {"result": ANSWERS[value]}, content
                self.answered += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted on
                self.failures.append(repr(exc))


@pytest.fixture(scope="module")
def app(module_lab: Lab) -> Server:
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--timeout", "2", "--quiet")


def test_ten_thousand_malformed_messages(app: Server) -> None:
    throw(app.port, [request("ring"), b"\x00\x00", b"junk"] * 20)  # warm up before measuring memory
    wait_until(lambda: open_fds(app.pid) == app.idle_fds, what="an idle server")
    fds, rss = open_fds(app.pid), rss_kib(app.pid)
    endings: dict[str, int] = {}
    good = GoodClient(app.port)
    good.start()

    @settings(max_examples=TOTAL // BATCH, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(malformed, min_size=BATCH, max_size=BATCH))
    def batch(messages: list[bytes]) -> None:
        for ending in throw(app.port, messages):
            endings[ending] = endings.get(ending, 0) + 1

    try:
        while sum(endings.values()) < TOTAL:
            batch()
    finally:
        good.done.set()
        good.join(10)

    assert sum(endings.values()) >= TOTAL
    assert endings.get("closed", 0) > TOTAL // 2, endings
    assert not good.failures, good.failures[:5]
    assert good.answered >= 50
    assert app.proc.poll() is None
    log = app.log()
    assert "internal error" not in log and "Traceback" not in log
    wait_until(lambda: open_fds(app.pid) == fds, timeout=5, what=f"descriptors back to {fds}")
    grown = rss_kib(app.pid) - rss
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB"
