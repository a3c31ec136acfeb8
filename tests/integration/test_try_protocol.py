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
