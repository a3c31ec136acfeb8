"""The `try` texts of the lessons on servers for many clients, application protocols and Unix sockets, run as
written (tests/tries.py)."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tries import Running, Said, TrySession


def sampled(running: Running, sample: Callable[[], int], enough: Callable[[int], bool],
            seconds: float = 90) -> list[int]:
    """Take ``sample`` again and again while a command runs, until ``enough`` of one; every sample taken."""
    taken: list[int] = []
    deadline = time.monotonic() + seconds
    while running.process.poll() is None and time.monotonic() < deadline:
        taken.append(sample())
        if enough(taken[-1]):
            break
    return taken


def established(said: Said) -> int:
    """The established TCP connections `ss -s` counts."""
    assert said.exit == 0, said
    found = re.search(r"^TCP:\s+\d+ \(estab (\d+)", said.stdout, re.MULTILINE)
    assert found, said
    return int(found.group(1))


# -- a capture read by hand: classic pcap, Ethernet frames, TCP payloads -----------


def frames(path: Path) -> Iterator[bytes]:
    """The frames of a classic pcap file (either byte order; microsecond or nanosecond stamps)."""
    data = path.read_bytes()
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
    assert magic in order, f"{path} is not a classic pcap file"
    linktype = struct.unpack(order[magic] + "I", data[20:24])[0]
    assert linktype == 1, f"{path}: link type {linktype}, not Ethernet"
    at = 24
    while at + 16 <= len(data):
        captured = struct.unpack(order[magic] + "I", data[at + 8:at + 12])[0]
        yield data[at + 16:at + 16 + captured]
        at += 16 + captured


def tcp_streams(path: Path, port: int) -> dict[tuple[str, int], bytes]:
    """What each client sent to ``port`` over TCP, by (client address, client port), reassembled by sequence."""
    pieces: dict[tuple[str, int], dict[int, bytes]] = {}
    for frame in frames(path):
        ethertype = struct.unpack("!H", frame[12:14])[0]
        packet = frame[14:]
        if ethertype == 0x0800 and packet[9] == 6:
            source, segment = ".".join(str(b) for b in packet[12:16]), packet[(packet[0] & 0x0F) * 4:]
        elif ethertype == 0x86DD and packet[6] == 6:
            source, segment = packet[8:24].hex(), packet[40:]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", segment[:8])
        payload = segment[(segment[12] >> 4) * 4:]
        if dport == port and payload:
            pieces.setdefault((source, sport), {})[seq] = payload
    return {client: b"".join(found[seq] for seq in sorted(found)) for client, found in pieces.items()}


def decode_request(stream: bytes) -> tuple[dict[str, object], bytes] | None:
    """The app protocol's first message: a 2-byte big-endian header length, the JSON header, then its content.

    None if the bytes are not a whole request from its first byte (a capture that dropped a packet of it).
    """
    if len(stream) < 2:
        return None
    (header_length,) = struct.unpack(">H", stream[:2])
    try:
        header = json.loads(stream[2:2 + header_length].decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(header.get("content-length"), int):
        return None
    content = stream[2 + header_length:2 + header_length + header["content-length"]]
    return (header, content) if len(content) == header["content-length"] else None


# -- app-protocol -------------------------------------------------------------------


LOAD = ("invoke exec client1 -- python3 -m nodes.app client --to server:65432 --value ring --requests 5000 "
        "--concurrency 50")


@pytest.mark.tries("app-protocol", "invoke run app-protocol --capture", "invoke up app-protocol", LOAD)
def test_app_protocol_a_request_decoded_from_the_capture_and_a_load(try_text: TrySession) -> None:
    ran = try_text("invoke run app-protocol --capture")
    assert ran.exit == 0, ran
    capture = try_text.cwd / "results" / "latest" / "captures" / "app-protocol" / "server-eth0.pcap"
    streams = tcp_streams(capture, 65432)
    # tcpdump may drop packets while the load checks run, so not every connection is whole in the capture:
    # a request is taken apart only where the capture holds it from its first byte to its last
    decoded = [found for stream in streams.values() if (found := decode_request(stream)) is not None]
    assert decoded, f"no whole request among the {len(streams)} connections captured"
    for header, content in decoded:
        assert set(header) == {"byteorder", "content-type", "content-encoding", "content-length"}, header
        if header["content-type"] == "text/json":
            request = json.loads(content.decode(str(header["content-encoding"])))
            assert set(request) == {"action", "value"}, request
        else:
            assert content == b"hello there, server", (header, content)

    up = try_text("invoke up app-protocol")
    assert up.exit == 0, up
    loaded = try_text(LOAD, timeout=600)
    assert loaded.exit == 0, loaded
    result = loaded.json()
    assert (result["outcome"], result["completed"], result["failed"]) == ("ok", 5000, 0), loaded
    assert result["result"] == "In the caves beneath the Misty Mountains. 💍", loaded


# -- asyncio-echo ---------------------------------------------------------------------


ASYNC_AT_ONCE = "invoke exec client1 -- python3 -m nodes.asyncecho client --to server:65432 --connections 1000"
ASYNC_CAPPED = ("invoke exec client1 -- python3 -m nodes.asyncecho client --to server:65432 --connections 1000 "
                "--concurrency 50")
ASYNC_HELD = ("invoke exec client1 -- python3 -m nodes.asyncecho client --to server:65432 --connections 3000 "
              "--hold 10 --timeout 60")


@pytest.mark.tries("asyncio-echo", "invoke up asyncio-echo", ASYNC_AT_ONCE, ASYNC_CAPPED, ASYNC_HELD,
                   "invoke exec server -- ss -s")
def test_asyncio_echo_concurrency_caps_what_is_open_and_thousands_held(try_text: TrySession) -> None:
    up = try_text("invoke up asyncio-echo")
    assert up.exit == 0, up
    for command, peak in ((ASYNC_AT_ONCE, 1000), (ASYNC_CAPPED, 50)):
        made = try_text(command)
        assert made.exit == 0, made
        result = made.json()
        assert (result["outcome"], result["completed"], result["failed"]) == ("echoed", 1000, 0), made
        assert result["peak_open"] == peak, made
        assert result["elapsed_ms"] > 0, made

    held = try_text.start(ASYNC_HELD)
    counted = sampled(held, lambda: established(try_text("invoke exec server -- ss -s")), lambda n: n >= 3000)
    assert counted and counted[-1] >= 3000, f"ss -s never counted 3000 established: {counted}"
    done = held.wait()
    assert done.exit == 0, done
    result = done.json()
    assert (result["outcome"], result["completed"], result["peak_open"], result["failed"]) == \
        ("echoed", 3000, 3000, 0), done


# -- multiconn -----------------------------------------------------------------------


MULTICONN_HELD = ("invoke exec client1 -- python3 -m nodes.multiconn client --to server:65432 --connections 5000 "
                  "--hold 10 --timeout 60")
HOLD_OTHER = "invoke exec client2 -- python3 -m nodes.probe --to server:65432 --send hello --hold-other"


@pytest.mark.tries("multiconn", "invoke up multiconn", MULTICONN_HELD, "invoke exec server -- ss -s", HOLD_OTHER)
def test_multiconn_five_thousand_held_and_a_second_client_served(try_text: TrySession) -> None:
    up = try_text("invoke up multiconn")
    assert up.exit == 0, up
    held = try_text.start(MULTICONN_HELD)
    counted = sampled(held, lambda: established(try_text("invoke exec server -- ss -s")), lambda n: n >= 5000)
    assert counted and counted[-1] >= 5000, f"ss -s never counted 5000 established: {counted}"
    done = held.wait()
    assert done.exit == 0, done
    result = done.json()
    assert (result["outcome"], result["opened"], result["completed"], result["peak_open"], result["failed"]) == \
        ("echoed", 5000, 5000, 5000, 0), done

    probed = try_text(HOLD_OTHER)
    assert probed.exit == 0, probed
    result = probed.json()
    assert (result["outcome"], result["reply"], result["held"]) == ("echoed", "hello", "echoed"), probed


# -- socketserver-forking and -threading ------------------------------------------------


def processes(said: Said) -> list[dict[str, str]]:
    """The rows of `ps -ef --forest` or `ps -eLf`, by column name (CMD the rest of the line)."""
    assert said.exit == 0, said
    lines = said.stdout.splitlines()
    names = lines[0].split()
    return [dict(zip(names, line.split(None, len(names) - 1), strict=True)) for line in lines[1:] if line.strip()]


def server_children(said: Said) -> int:
    """How many live child processes the socketserver server has, in `ps -ef --forest`."""
    rows = processes(said)
    servers = [row for row in rows if row["CMD"].lstrip(" \\_").startswith("python3 -m nodes.sockserver serve")]
    pids = {row["PID"] for row in servers}
    (parent,) = [row["PID"] for row in servers if row["PPID"] not in pids]
    return sum(1 for row in rows if row["PPID"] == parent and "<defunct>" not in row["CMD"])


def accept_queue(said: Said, port: int) -> int:
    """The Recv-Q of the socket listening on ``port`` in `ss -ltn`: connections waiting for accept()."""
    assert said.exit == 0, said
    (found,) = [row for row in (line.split() for line in said.stdout.splitlines())
                if row and row[0] == "LISTEN" and row[3].endswith(f":{port}")]
    return int(found[1])


FORKING_30 = ("invoke exec client -- python3 -m nodes.multiconn client --to server:65432 --connections 30 --hold 10 "
              "--timeout 30")
FORKING_60 = ("invoke exec client -- python3 -m nodes.multiconn client --to server:65432 --connections 60 --hold 10 "
              "--timeout 30")


@pytest.mark.tries("socketserver-forking", "invoke up socketserver-forking", FORKING_30, FORKING_60,
                   "invoke exec server -- ps -ef --forest", "invoke exec server -- ss -ltn")
def test_socketserver_forking_a_child_per_connection_and_no_more_than_40(try_text: TrySession) -> None:
    up = try_text("invoke up socketserver-forking")
    assert up.exit == 0, up

    held = try_text.start(FORKING_30)
    seen = sampled(held, lambda: server_children(try_text("invoke exec server -- ps -ef --forest")),
                   lambda n: n == 30)
    assert seen and seen[-1] == 30, f"never 30 children under the server: {seen}"
    assert max(seen) <= 31, seen  # 30, and perhaps the client's first connection, made to choose an address
    done = held.wait()
    assert done.exit == 0, done
    assert (done.json()["completed"], done.json()["failed"]) == (30, 0), done

    held = try_text.start(FORKING_60)
    seen, waiting = [], []

    def children_and_queue() -> int:
        seen.append(server_children(try_text("invoke exec server -- ps -ef --forest")))
        waiting.append(accept_queue(try_text("invoke exec server -- ss -ltn"), 65432))
        return seen[-1] * 100 + waiting[-1]

    both = sampled(held, children_and_queue, lambda n: n == 40 * 100 + 20)
    assert both and both[-1] == 40 * 100 + 20, f"children {seen}, accept queue {waiting}"
    done = held.wait()
    assert max(seen) == 40, seen
    assert done.exit == 0, done
    result = done.json()
    assert (result["outcome"], result["completed"], result["peak_open"], result["failed"]) == \
        ("echoed", 60, 60, 0), done


THREADING_50 = ("invoke exec client -- python3 -m nodes.multiconn client --to server:65432 --connections 50 "
                "--hold 10 --timeout 30")


@pytest.mark.tries("socketserver-threading", "invoke up socketserver-threading", THREADING_50,
                   "invoke exec server -- ps -eLf")
def test_socketserver_threading_a_thread_per_connection(try_text: TrySession) -> None:
    up = try_text("invoke up socketserver-threading")
    assert up.exit == 0, up
    held = try_text.start(THREADING_50)

    def threads() -> int:
        rows = processes(try_text("invoke exec server -- ps -eLf"))
        server = [row for row in rows if row["CMD"].startswith("python3 -m nodes.sockserver serve")]
        assert server, rows
        assert len({row["PID"] for row in server}) == 1, server  # one process, many threads
        assert {int(row["NLWP"]) for row in server} == {len(server)}, server  # a line per thread
        return len(server)

    seen = sampled(held, threads, lambda n: n == 51)
    assert seen and seen[-1] == 51, f"never 51 threads in the server: {seen}"
    done = held.wait()
    assert done.exit == 0, done
    assert (done.json()["completed"], done.json()["failed"]) == (50, 0), done


# -- socketserver-udp ------------------------------------------------------------------------


UDP_REFUSED = "invoke exec client -- python3 -m nodes.sockserver client --proto udp --to server:65433 --connected"


@pytest.mark.tries("socketserver-udp", "invoke run socketserver-udp,socketserver-threading",
                   "invoke up socketserver-udp", UDP_REFUSED)
def test_socketserver_udp_logs_a_line_per_datagram_and_a_connected_client_is_refused(try_text: TrySession) -> None:
    ran = try_text("invoke run socketserver-udp,socketserver-threading")
    assert ran.exit == 0, ran
    logs = try_text.cwd / "results" / "latest" / "logs"
    (udp_log,) = (logs / "socketserver-udp").glob("*sockserver*.log")
    echoed = [line for line in udp_log.read_text().splitlines() if " echoed " in line]
    assert len(echoed) == 103, udp_log.read_text()
    (tcp_log,) = (logs / "socketserver-threading").glob("*sockserver*.log")
    tcp_lines = tcp_log.read_text().splitlines()
    accepted = [line.split(" accepted ")[1] for line in tcp_lines if " accepted " in line]
    closed = [line.split(" closed ")[1].split()[0] for line in tcp_lines if " closed " in line]
    assert accepted and sorted(accepted) == sorted(closed), tcp_lines
    assert not [line for line in tcp_lines if " echoed " in line], tcp_lines

    up = try_text("invoke up socketserver-udp")
    assert up.exit == 0, up
    refused = try_text(UDP_REFUSED)
    assert refused.exit == 0, refused
    assert (refused.json()["outcome"], refused.json()["errno"]) == ("refused", "ECONNREFUSED"), refused


# -- unix-domain --------------------------------------------------------------------------------


@pytest.mark.tries("unix-domain", "invoke up unix-domain", "invoke exec server -- ls -l /tmp",
                   "invoke exec server -- ss -xlp", "invoke run unix-domain --capture")
def test_unix_domain_socket_files_listeners_and_no_packet(try_text: TrySession) -> None:
    ran = try_text("invoke run unix-domain --capture")
    assert ran.exit == 0, ran
    captures = sorted((try_text.cwd / "results" / "latest" / "captures" / "unix-domain").glob("*.pcap"))
    assert {path.name for path in captures} >= {"server-eth0.pcap", "server-lo.pcap", "client-eth0.pcap",
                                                "client-lo.pcap"}, captures
    for path in captures:
        assert b"Hello, world" not in path.read_bytes(), f"{path.name} holds a packet of the echo"

    up = try_text("invoke up unix-domain")
    assert up.exit == 0, up
    listed = try_text("invoke exec server -- ls -l /tmp")
    assert listed.exit == 0, listed
    modes = {line.split()[-1]: line.split()[0] for line in listed.stdout.splitlines() if line.endswith(".sock")}
    assert set(modes) == {"echo.sock", "stale.sock", "private.sock"}, listed
    assert all(mode.startswith("s") for mode in modes.values()), listed
    listening = try_text("invoke exec server -- ss -xlp")
    assert listening.exit == 0, listening
    rows = [line for line in listening.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 1 and "/tmp/echo.sock" in rows[0] and 'users:(("python3"' in rows[0], listening
    assert "stale.sock" not in listening.stdout and "private.sock" not in listening.stdout, listening
