"""The application server against clients that misbehave, one way per test.

One server (``--timeout 1``) takes every test's abuse in turn. Each test
checks three things: what the server did with the bad client (closed it,
with a log line naming the rule broken, and sent nothing), that a
well-behaved client is served meanwhile or right after, and that the
server's open descriptors are back to where they were.

Whether a good client is served *while* a bad one waits is asked of a
patient server (a timeout of minutes): it is served, and the bad one is
still there afterwards. No wall-clock bound races the 1 s timeout, so a
loaded machine makes these tests slower, never wrong.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from nodetest import Lab, Server, cpu_seconds, open_fds, rss_kib, wait_until

MORPHEUS = "Follow the white rabbit. \U0001f430"
CAP = 1 << 20


def frame(header: dict[str, object] | bytes, content: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack(">H", len(raw)) + raw + content


def json_header(**changes: object) -> dict[str, object]:
    header: dict[str, object] = {"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8",
                                 "content-length": 0}
    header.update(changes)
    return header


def search(value: str) -> bytes:
    content = json.dumps({"action": "search", "value": value}).encode()
    return frame(json_header(**{"content-length": len(content)}), content)


def served(port: int, timeout: float = 30.0) -> None:
    """A good client's exchange: the answer must come, and be right."""
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(search("morpheus"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    (length,) = struct.unpack(">H", data[:2])
    assert json.loads(data[2 + length :]) == {"result": MORPHEUS}


def still_open(sock: socket.socket) -> bool:
    """Whether the server has neither closed nor answered this connection yet (nothing to read, no end of file)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # a socket with a timeout would wait for readability first, whatever the flags
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(timeout)
    return False


def rejected(server: Server, message: bytes, reason: str, *, close_after: bool = True) -> None:
    """Send a bad message; the server must close without answering and log why, with our address."""
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        port = sock.getsockname()[1]
        try:
            sock.sendall(message)
            if close_after:
                sock.shutdown(socket.SHUT_WR)
            answer = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
    assert answer == b"", f"the server answered a bad message: {answer!r}"
    server.wait_for_log(rf"error 127\.0\.0\.1:{port}: .*{reason}")


@pytest.fixture(scope="module")
def app(module_lab: Lab) -> Server:
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--timeout", "1")


def checked(app: Server) -> Iterator[Server]:
    """A shared server for one test; afterwards a good client is served and no descriptor is left behind."""
    wait_until(lambda: open_fds(app.pid) == app.idle_fds, timeout=30, what="the server to be idle")
    baseline = open_fds(app.pid)
    yield app
    served(app.port)
    wait_until(lambda: open_fds(app.pid) == baseline, timeout=30, what=f"descriptors back to {baseline}")
    assert app.proc.poll() is None and "Traceback" not in app.log()


@pytest.fixture
def server(app: Server) -> Iterator[Server]:
    yield from checked(app)


@pytest.fixture(scope="module")
def patient_app(module_lab: Lab) -> Server:
    """Minutes to deliver a request and take the response, and 16 MiB requests (answers larger than a buffer)."""
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--timeout", "300",
                            "--max-content", str(16 * CAP))


@pytest.fixture
def patient(patient_app: Server) -> Iterator[Server]:
    yield from checked(patient_app)


def test_header_length_zero(server: Server) -> None:
    rejected(server, b"\x00\x00" + b"{}", "header length is 0", close_after=False)


def test_header_not_utf8(server: Server) -> None:
    rejected(server, frame(b"\xff\xfe\x00{}"), "header is not valid UTF-8")


def test_header_not_json(server: Server) -> None:
    rejected(server, frame(b"{'single': 'quotes'}"), "header is not valid JSON")


def test_header_not_an_object(server: Server) -> None:
    rejected(server, frame(b"[1, 2, 3]"), "header is a JSON list, not an object")


def test_header_nested_too_deeply(server: Server) -> None:
    rejected(server, frame(b"[" * 30000 + b"]" * 30000), "nested too deeply")


@pytest.mark.parametrize("key", ["byteorder", "content-type", "content-encoding", "content-length"])
def test_missing_key(server: Server, key: str) -> None:
    header = json_header()
    del header[key]
    rejected(server, frame(header), f"lacks the required key '{key}'")


@pytest.mark.parametrize(
    "length, reason",
    [(-1, "content-length -1 is negative"), (-(2**70), "is negative"), ("10", "is not an integer"),
     (1.0, "is not an integer"), (None, "is not an integer"), (True, "is not an integer")],
)
def test_bad_content_length(server: Server, length: object, reason: str) -> None:
    rejected(server, frame(json_header(**{"content-length": length}), b"0123456789"), reason)


def test_huge_content_length_is_refused_before_its_content_is_read(server: Server) -> None:
    before = rss_kib(server.pid)
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        port = sock.getsockname()[1]
        sock.sendall(frame(json_header(**{"content-length": 2**40})))
        sent = 0
        try:  # keep pushing: the server must close, not swallow
            while sent < 64 * CAP:
                sent += sock.send(bytes(65536))
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert sent < 16 * CAP, f"the server kept reading after refusing the header ({sent} bytes)"
    server.wait_for_log(rf"error 127\.0\.0\.1:{port}: bad request: content-length {2**40} exceeds the limit")
    assert rss_kib(server.pid) - before < 4096


def test_content_length_at_the_cap_then_silence_is_timed_out_with_bounded_memory(server: Server) -> None:
    before = rss_kib(server.pid)
    with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
        port = sock.getsockname()[1]
        sock.sendall(frame(json_header(**{"content-length": CAP})) + bytes(CAP - 1))
        assert sock.recv(1) == b""  # closed by the server's deadline, not by us
    server.wait_for_log(rf"error 127\.0\.0\.1:{port}: timed out after 1 s receiving the request")
    assert rss_kib(server.pid) - before < 2 * CAP // 1024 + 2048


@pytest.mark.parametrize("what", ["length prefix", "header", "content"])
def test_truncated_message(server: Server, what: str) -> None:
    """Cut in each part; the server holds what it has not parsed yet: all of it, until the header is whole."""
    message = search("morpheus")
    (header_length,) = struct.unpack(">H", message[:2])
    content_starts = 2 + header_length
    cut = {"length prefix": 1, "header": content_starts - 3, "content": len(message) - 5}[what]
    parts = {"length prefix": (0, 2), "header": (2, content_starts), "content": (content_starts, len(message))}
    start, end = parts[what]
    assert start < cut < end, f"the cut at {cut} is not in the {what}"
    buffered = cut - content_starts if what == "content" else cut  # a whole header is parsed, and dropped
    rejected(server, message[:cut], rf"truncated request: the client closed with {buffered} bytes of an incomplete")


def test_client_closing_without_a_request(server: Server) -> None:
    rejected(server, b"", "the client closed without sending a request")


@pytest.mark.parametrize(
    "content, encoding, reason",
    [(b"{not json", "utf-8", "content is not valid JSON"), (b"\xff\xff", "utf-8", "content is not valid utf-8"),
     (b'"just a string"', "utf-8", "must be a JSON object"), (b"{}", "ebcdic-martian", "unsupported content-encoding")],
)
def test_undecodable_content(server: Server, content: bytes, encoding: str, reason: str) -> None:
    header = json_header(**{"content-length": len(content), "content-encoding": encoding})
    rejected(server, frame(header, content), reason)


def test_a_trickling_client_is_timed_out(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), 30) as trickler:
        port = trickler.getsockname()[1]
        started = time.monotonic()
        trickler.sendall(search("morpheus")[:1])  # then one byte a minute, were it allowed
        assert trickler.recv(1) == b""
        waited = time.monotonic() - started
    assert waited >= 0.9  # not before its time (and the recv's 30 s bound is its time's upper end)
    server.wait_for_log(rf"error 127\.0\.0\.1:{port}: timed out after 1 s receiving the request")


def test_others_are_served_while_a_client_trickles(patient: Server) -> None:
    with socket.create_connection(("127.0.0.1", patient.port), 30) as trickler:
        trickler.sendall(search("morpheus")[:1])
        for _ in range(20):
            served(patient.port)
        assert still_open(trickler), "the trickler was dropped, or answered"  # so nobody waited for it


def test_many_idle_connections_do_not_stop_others_being_served(patient: Server) -> None:
    idle = [socket.create_connection(("127.0.0.1", patient.port), 30) for _ in range(300)]
    try:
        for _ in range(10):
            served(patient.port)
        assert all(still_open(sock) for sock in idle)  # served while every one of them waited
    finally:
        for sock in idle:
            sock.close()


def test_many_idle_connections_are_each_timed_out(server: Server) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port), 30) for _ in range(300)]
    try:
        for sock in idle:
            assert sock.recv(1) == b""  # each one timed out by the server
    finally:
        for sock in idle:
            sock.close()


@pytest.fixture(scope="module")
def big_app(module_lab: Lab) -> Server:
    """A server allowing 16 MiB requests: its answers can outgrow the kernel's largest send buffer (4 MiB).

    Its timeout leaves a loaded machine seconds to upload such a request; the response is another matter.
    """
    return module_lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--timeout", "5",
                            "--max-content", str(16 * CAP))


def big_request() -> bytes:
    """A valid request whose answer ("No match for '...'") is about 12 MB: it cannot all be sent at once."""
    return search("x" * (12 * CAP))


def small_window_connection(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # take the response in small sips
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def test_a_client_vanishing_mid_response(patient: Server) -> None:
    sock = small_window_connection(patient.port)
    port = sock.getsockname()[1]
    sock.sendall(big_request())
    assert len(sock.recv(1000)) > 0  # the response has started
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST: gone, with most of the response unread
    patient.wait_for_log(rf"error 127\.0\.0\.1:{port}: (Connection reset by peer|Broken pipe)")


def test_others_are_served_while_a_response_is_stuck(patient: Server) -> None:
    with small_window_connection(patient.port) as sock:
        sock.sendall(big_request())
        assert len(sock.recv(1000)) > 0  # the response has started, and stops at our small window
        served(patient.port)
        assert still_open(sock) or len(sock.recv(1 << 20)) > 0  # not dropped: its response still comes


def test_a_client_that_never_reads_its_response_is_timed_out(big_app: Server) -> None:
    with small_window_connection(big_app.port) as sock:
        port = sock.getsockname()[1]
        sock.sendall(big_request())
        big_app.wait_for_log(rf"error 127\.0\.0\.1:{port}: timed out after 5 s sending the response", timeout=60)
    wait_until(lambda: open_fds(big_app.pid) == big_app.idle_fds, timeout=30, what="the big server to be idle")


def test_a_valid_request_followed_by_junk_is_answered(server: Server) -> None:
    """One request per connection: what follows a whole request is ignored, not judged."""
    with socket.create_connection(("127.0.0.1", server.port), 30) as sock:
        port = sock.getsockname()[1]
        sock.sendall(search("morpheus") + b"\x00\x00junk")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    (length,) = struct.unpack(">H", data[:2])
    assert json.loads(data[2 + length :]) == {"result": MORPHEUS}
    server.wait_for_log(rf"closed 127\.0\.0\.1:{port}: answered ")


def test_bad_clients_in_parallel_with_good_ones(server: Server) -> None:
    bad = [b"\x00\x00", frame(b"nope"), frame(json_header(**{"content-length": -5})), search("ring")[:30]]
    failures: list[BaseException] = []

    def abuse() -> None:
        try:
            for message in bad * 25:
                with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
                    try:
                        sock.sendall(message)
                        sock.shutdown(socket.SHUT_WR)
                        sock.recv(100)
                    except (ConnectionResetError, BrokenPipeError):
                        pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=abuse) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        served(server.port)  # each one answered, and right
    for thread in threads:
        thread.join()
    assert not failures


def test_running_out_of_descriptors_pauses_accepting_and_recovers(lab: Lab) -> None:
    server = lab.start("app", "--bind", "127.0.0.1", "--port", "0", "--timeout", "1", max_fds=64)
    idle = [socket.create_connection(("127.0.0.1", server.port), 5) for _ in range(100)]  # more than it may hold
    try:
        server.wait_for_log(r"accept failed: Too many open files; pausing accepts for 0\.5 s")
        spent = cpu_seconds(server.pid)
        time.sleep(1.0)
        assert cpu_seconds(server.pid) - spent < 0.25, "spinning on a listener it cannot accept from"
        served(server.port)  # once timeouts free descriptors, it accepts again
    finally:
        for sock in idle:
            sock.close()
    assert server.proc.poll() is None
