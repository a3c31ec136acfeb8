"""The `try` texts of the TCP-versus-UDP lessons, run as written (tests/tries.py)."""

from __future__ import annotations

import re

import pytest

from tests.integration.try_lab import packets, report, results
from tests.tries import TrySession

TCP_1000 = ("invoke exec server -- python3 -m nodes.boundaries client --to 127.0.0.1:65432 --send 'Hello, world' "
            "--count 1000")
UDP_1000 = ("invoke exec server -- python3 -m nodes.boundaries client --proto udp --to 127.0.0.1:65432 "
            "--send 'Hello, world' --count 1000")
UDP_ECHO_1000 = "invoke exec client -- python3 -m nodes.udpecho client --to server:65433 --count 1000 --interval 0.005"
SEGMENT = re.compile(r" IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\], seq (\d+):(\d+),.* length (\d+)")


@pytest.mark.tries("stream-vs-datagram", "invoke run stream-vs-datagram --capture", "invoke up stream-vs-datagram",
                   TCP_1000, UDP_1000, "invoke exec server -- nstat -az UdpRcvbufErrors")
def test_stream_vs_datagram_segments_and_a_thousand_messages(try_text: TrySession) -> None:
    run = try_text("invoke run stream-vs-datagram --capture")
    assert run.exit == 0, run
    server = report(try_text)["hosts"]["server"]["lan"]["ipv4"]
    eth0 = packets(try_text, "stream-vs-datagram", "client-eth0.pcap")
    sent: dict[str, list[int]] = {}  # client port -> payload lengths of its segments to the TCP server
    for line in eth0:
        if (found := SEGMENT.search(line)) and found.group(3) == server and found.group(4) == "65432":
            sent.setdefault(found.group(2), []).append(int(found.group(8)))
    first = [lengths for lengths in sent.values() if sum(lengths) == 8 + 120]
    assert len(first) == 1 and 1 <= len(first[0]) <= 11, sent

    up = try_text("invoke up stream-vs-datagram")
    assert up.exit == 0, up
    tcp = try_text(TCP_1000).json()
    assert (tcp["outcome"], tcp["send_calls"], tcp["receives"], tcp["bytes_received"]) == ("ok", 1000, 1, 12000), tcp
    udp = try_text(UDP_1000).json()
    assert udp["send_calls"] == 1000 and udp["outcome"] in {"ok", "timeout"}, udp
    dropped = try_text("invoke exec server -- nstat -az UdpRcvbufErrors")
    count = int(re.search(r"UdpRcvbufErrors\s+(\d+)", dropped.stdout).group(1))  # type: ignore[union-attr]
    if udp["outcome"] == "timeout":
        assert count > 0, (udp, dropped)
    else:
        assert udp["receives"] == 1000, udp


@pytest.mark.tries("tcp-vs-udp-loss", "invoke run tcp-vs-udp-loss --capture", "invoke up tcp-vs-udp-loss",
                   UDP_ECHO_1000)
def test_tcp_vs_udp_loss_retransmissions_and_an_echo_losing_twice(try_text: TrySession) -> None:
    run = try_text("invoke run tcp-vs-udp-loss --capture")
    assert run.exit == 0, run
    scenario = report(try_text)
    page = (results(try_text) / "report.html").read_text()
    assert "Notes from the hosts" in page, "report.html has no notes"
    notes = page[page.index("Notes from the hosts"):]
    assert "loss 5%" in notes and ("iptables" in notes or "netem" in notes), scenario["notes"]
    hosts = scenario["hosts"]
    retransmitted, duplicate_acks = _tcp_losses(packets(try_text, "tcp-vs-udp-loss", "client-eth0.pcap"),
                                                hosts["server"]["lan"]["ipv4"], hosts["client"]["lan"]["ipv4"])
    assert retransmitted, "no TCP segment was sent again"
    assert duplicate_acks, "no duplicate ACK"

    up = try_text("invoke up tcp-vs-udp-loss")
    assert up.exit == 0, up
    echoed = try_text(UDP_ECHO_1000).json()
    assert echoed["sent"] == 1000 and 0.05 <= echoed["loss"] <= 0.16, echoed


def _tcp_losses(eth0: list[str], server: str, client: str) -> tuple[list[str], list[str]]:
    """The client's data segments sent again (starting below what the connection already sent), its duplicate ACKs."""
    retransmitted: list[str] = []
    highest: dict[str, int] = {}
    for line in eth0:
        found = SEGMENT.search(line)
        if found and found.group(3) == server and found.group(4) == "65432" and found.group(8) != "0":
            port, start, end = found.group(2), int(found.group(6)), int(found.group(7))
            if start < highest.get(port, 0):
                retransmitted.append(line)
            highest[port] = max(end, highest.get(port, 0))
    acks = [line.split(" ack ")[1].split(",")[0] for line in eth0
            if f" IP {server}.65432 > {client}." in line and line.endswith("length 0") and " ack " in line]
    return retransmitted, [a for a, b in zip(acks, acks[1:], strict=False) if a == b]


@pytest.mark.tries("udp-echo", "invoke run udp-echo --capture")
def test_udp_echo_capture_datagrams_and_two_port_unreachables(try_text: TrySession) -> None:
    run = try_text("invoke run udp-echo --capture")
    assert run.exit == 0, run
    hosts = report(try_text)["hosts"]
    server, client = hosts["server"]["lan"]["ipv4"], hosts["client"]["lan"]["ipv4"]
    eth0 = packets(try_text, "udp-echo", "client-eth0.pcap")
    hello = [i for i, line in enumerate(eth0)
             if f" IP {client}." in line and f"> {server}.65432: UDP, length 12" in line]
    assert hello, "\n".join(eth0)
    port = eth0[hello[0]].split(f" IP {client}.")[1].split()[0]
    echo = [i for i, line in enumerate(eth0) if f" IP {server}.65432 > {client}.{port}: UDP, length 12" in line]
    assert len(echo) == 1 and echo[0] > hello[0], "\n".join(eth0)
    assert not [line for line in eth0 if "Flags [" in line], "a TCP packet in a UDP lesson"
    icmp = f" IP {server} > {client}: ICMP {server} udp port 65433 unreachable"
    unreachable = [line for line in eth0 if icmp in line]
    assert len(unreachable) == 2, "\n".join(eth0)
