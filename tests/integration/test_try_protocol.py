"""The `try` texts of the framing and accept-queue lessons, run as written (tests/tries.py)."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tries import TrySession

ETHERNET_IPV4, TCP = 0x0800, 6


def tcp_payload_sizes(pcap: Path, to_port: int) -> Iterator[int]:
    """The payload size of every IPv4 TCP segment to ``to_port`` in a classic pcap of Ethernet frames."""
    data = pcap.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from(f"{order}I", data, offset + 8)[0]
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < 54 or struct.unpack_from(">H", frame, 12)[0] != ETHERNET_IPV4 or frame[23] != TCP:
            continue
        ip = frame[14:]
        ip_header, total = (ip[0] & 0x0F) * 4, struct.unpack_from(">H", ip, 2)[0]
        tcp = ip[ip_header:]
        if struct.unpack_from(">H", tcp, 2)[0] == to_port:
            yield total - ip_header - (tcp[12] >> 4) * 4


@pytest.mark.tries(
    "app-framing",
    "invoke up app-framing",
    "invoke exec client -- python3 -m nodes.appsplit --to server:65432 --case long-prefix --timeout 2",
    "invoke exec client -- python3 -m nodes.appsplit --to server:65432 --case two-in-one --value ring "
    "--second morpheus",
    "invoke exec server -- cat /lab/log/app.log",
    "invoke run app-framing --capture",
)
def test_app_framing_hostile_client_by_hand(try_text: TrySession) -> None:
    up = try_text("invoke up app-framing")
    assert up.exit == 0, up
    gave_up = try_text(
        "invoke exec client -- python3 -m nodes.appsplit --to server:65432 --case long-prefix --timeout 2")
    assert gave_up.exit == 0, gave_up
    result = gave_up.json()
    assert result["outcome"] == "timeout" and result["end"] == "timeout" and result["bytes_received"] == 0, result
    swapped = try_text("invoke exec client -- python3 -m nodes.appsplit --to server:65432 --case two-in-one "
                       "--value ring --second morpheus")
    assert swapped.exit == 0, swapped
    result = swapped.json()
    assert result["outcome"] == "ok" and result["responses"] == 1, result
    assert result["result"] == "In the caves beneath the Misty Mountains. \U0001f48d", result
    log = try_text("invoke exec server -- cat /lab/log/app.log")
    assert log.exit == 0, log
    # Why each connection ended: the client that gave up left half a message; the swapped pair got ring's answer.
    assert re.search(r"error \S+: truncated request: the client closed with \d+ bytes", log.stdout), log
    assert "answered 'search' 'ring'" in log.stdout, log
    assert "morpheus" not in log.stdout, log  # the second request of the segment was never answered

    captured = try_text("invoke run app-framing --capture")
    assert captured.exit == 0, captured
    pcaps = sorted((try_text.cwd / "results" / "latest" / "captures" / "app-framing").glob("client-eth0.pcap"))
    assert pcaps, captured
    sizes = list(tcp_payload_sizes(pcaps[0], 65432))
    assert sizes.count(1) >= 50, sizes  # the byte-at-a-time header: a segment per byte


def send_q(ss_output: str) -> dict[str, int]:
    """``ss -ltn``'s listening sockets: local address -> Send-Q (for a listener, the backlog in use)."""
    queues = {}
    for line in ss_output.splitlines():
        words = line.split()
        if words[:1] == ["LISTEN"]:
            queues[words[3]] = int(words[2])
    return queues


@pytest.mark.tries(
    "backlog-overflow",
    "invoke up backlog-overflow",
    "invoke exec server -- ss -ltn",
    "invoke exec client -- python3 -m nodes.backlog client --to strict:65433 --connections 7 --early 2",
    "invoke exec strict -- nstat -az TcpExtListenOverflows",
)
def test_backlog_overflow_clamp_and_reset_by_hand(try_text: TrySession) -> None:
    up = try_text("invoke up backlog-overflow")
    assert up.exit == 0, up
    listening = try_text("invoke exec server -- ss -ltn")
    assert listening.exit == 0, listening
    queues = send_q(listening.stdout)
    assert queues.get("0.0.0.0:65432") == 4 and queues.get("0.0.0.0:65433") == 4, listening  # 1000 asked
    assert queues.get("0.0.0.0:65431") == 2, listening  # 2 asked, 2 kept
    overflow = try_text(
        "invoke exec client -- python3 -m nodes.backlog client --to strict:65433 --connections 7 --early 2")
    assert overflow.exit == 0, overflow
    result = overflow.json()
    assert result["outcome"] == "reset" and result["connected"] == 7 and result["reset"] == 2, result
    counted = try_text("invoke exec strict -- nstat -az TcpExtListenOverflows")
    assert counted.exit == 0, counted
    found = re.search(r"^TcpExtListenOverflows\s+(\d+)", counted.stdout, re.MULTILINE)
    assert found and int(found.group(1)) >= 2, counted
