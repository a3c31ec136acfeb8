"""The `try` texts of the lessons inside a TCP connection and of one-at-a-time, run as written (tests/tries.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.tries import TrySession

# One TCP segment of `tcpdump -nn -tt`: time, source and destination with ports, flags, and its payload length.
SEGMENT = re.compile(r"^(?P<time>\d+\.\d+) IP (?P<src>[\d.]+)\.(?P<sport>\d+) > (?P<dst>[\d.]+)\.(?P<dport>\d+): "
                     r"Flags \[(?P<flags>[^\]]*)\].* length (?P<length>\d+)")


def segments(path: Path) -> list[re.Match[str]]:
    """The TCP segments of a capture, in order."""
    assert path.is_file(), f"no capture at {path}"
    done = subprocess.run(["tcpdump", "-nn", "-tt", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [found for line in done.stdout.splitlines() if (found := SEGMENT.match(line))]


def connections(seen: list[re.Match[str]], port: str) -> list[list[re.Match[str]]]:
    """Each connection to ``port``, its segments in order, the connections in the order their SYN went out."""
    by_client: dict[str, list[re.Match[str]]] = {}
    for segment in seen:
        if segment["dport"] == port:
            by_client.setdefault(segment["sport"], []).append(segment)
        elif segment["sport"] == port:
            by_client.setdefault(segment["dport"], []).append(segment)
    return [found for found in by_client.values() if found[0]["flags"] == "S"]


def from_client(segment: re.Match[str], port: str) -> bool:
    return segment["dport"] == port


def capture(try_text: TrySession, scenario: str, host: str = "client") -> list[re.Match[str]]:
    return segments(try_text.cwd / "results" / "latest" / "captures" / scenario / f"{host}-eth0.pcap")


@pytest.mark.tries("one-at-a-time", "invoke up one-at-a-time",
                   "invoke exec client -- python3 -m nodes.oneatatime client --to server:65432 --wait 3")
def test_one_at_a_time_the_second_waits_as_long_as_the_first_stays(try_text: TrySession) -> None:
    up = try_text("invoke up one-at-a-time")
    assert up.exit == 0, up
    held = try_text("invoke exec client -- python3 -m nodes.oneatatime client --to server:65432 --wait 3")
    assert held.exit == 0, held
    result = held.json()
    assert result["outcome"] == "echoed" and result["connected_while_busy"], held
    assert not result["echoed_while_first_open"] and result["echoed_after_first_left"], held
    assert result["second_echo_ms"] >= 3000, held  # B's echo came only after the 3 s, when A had gone


@pytest.mark.tries("half-close", "invoke run half-close --capture")
def test_half_close_the_answer_comes_after_the_clients_fin(try_text: TrySession) -> None:
    ran = try_text("invoke run half-close --capture")
    assert ran.exit == 0, ran
    first = connections(capture(try_text, "half-close"), "65432")[0]
    client_data = next(i for i, s in enumerate(first) if from_client(s, "65432") and int(s["length"]))
    client_fin = next(i for i, s in enumerate(first) if from_client(s, "65432") and "F" in s["flags"])
    answer = next(i for i, s in enumerate(first) if not from_client(s, "65432") and int(s["length"]))
    server_fin = next(i for i, s in enumerate(first) if not from_client(s, "65432") and "F" in s["flags"])
    assert client_data < client_fin < answer < server_fin, first


@pytest.mark.tries("nagle", "invoke run nagle --capture")
def test_nagle_the_body_waits_for_the_servers_delayed_ack(try_text: TrySession) -> None:
    ran = try_text("invoke run nagle --capture")
    assert ran.exit == 0, ran
    first = connections(capture(try_text, "nagle"), "65432")[0]
    stalled = 0
    for i in range(len(first) - 2):
        length, ack, body = first[i:i + 3]
        if (from_client(length, "65432") and length["length"] == "4"
                and not from_client(ack, "65432") and ack["length"] == "0"
                and from_client(body, "65432") and body["length"] == "10"
                and float(ack["time"]) - float(length["time"]) >= 0.03):
            stalled += 1
    assert stalled >= 30, first  # of 40 rounds: the length, a bare ACK tens of ms later, then the body


@pytest.mark.tries("keepalive", "invoke run keepalive --capture")
def test_keepalive_probes_unanswered_then_a_reset_or_answered(try_text: TrySession) -> None:
    ran = try_text("invoke run keepalive --capture")
    assert ran.exit == 0, ran
    seen = capture(try_text, "keepalive")

    def probes(connection: list[re.Match[str]], port: str) -> list[re.Match[str]]:
        """Empty ACKs from the client after the one that completed the handshake, before any data: probes."""
        before_data = next((i for i, s in enumerate(connection) if int(s["length"])), len(connection))
        return [s for s in connection[3:before_data] if from_client(s, port) and s["flags"] == "."]

    vanishing = connections(seen, "65432")
    assert len(vanishing) == 2, vanishing
    kept = next(c for c in vanishing if probes(c, "65432"))
    silent = next(c for c in vanishing if c is not kept)
    assert len(probes(kept, "65432")) >= 2 and not [s for s in kept if not from_client(s, "65432")][1:], kept
    assert "R" in kept[-1]["flags"] and from_client(kept[-1], "65432"), kept
    times = [float(s["time"]) for s in probes(kept, "65432")]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(0.5 <= gap <= 3 for gap in gaps), kept  # about 1 s apart
    data = [s for s in silent[3:] if from_client(s, "65432")]
    assert data and all(int(s["length"]) for s in data) and len(data) >= 2, silent  # its data, then again
    (alive,) = connections(seen, "65433")
    answered = probes(alive, "65433")
    assert len(answered) >= 2, alive
    for probe in answered:
        after = alive[alive.index(probe) + 1]
        assert not from_client(after, "65433") and after["flags"] == ".", alive  # the server's kernel's ACK
