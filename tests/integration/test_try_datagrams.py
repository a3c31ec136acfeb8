"""The `try` texts of the datagram lessons, run as written (tests/tries.py)."""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tries import TrySession

ETHERNET_IPV4, ETHERNET_IPV6 = 0x0800, 0x86DD


@dataclass(frozen=True)
class Packet:
    """An IP packet as a capture holds it: the fields these lessons point at (ttl: IPv6's hop limit)."""

    destination_mac: str
    source: str
    destination: str
    protocol: int
    more_fragments: bool
    fragment_offset: int
    ttl: int
    payload: bytes  # what follows the IP header (for the first fragment, the UDP header first)


def frames(pcap: Path) -> Iterator[bytes]:
    """The frames of a classic pcap file (what tcpdump -w writes)."""
    data = pcap.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from(f"{order}I", data, offset + 8)[0]
        yield data[offset + 16:offset + 16 + captured]
        offset += 16 + captured


def ip_packets(pcap: Path) -> Iterator[Packet]:
    """The IPv4 and IPv6 packets of a capture of Ethernet frames (IPv6 with no extension headers)."""
    for frame in frames(pcap):
        kind = struct.unpack_from(">H", frame, 12)[0] if len(frame) >= 14 else 0
        ip = frame[14:]
        if kind == ETHERNET_IPV4 and len(ip) >= 20:
            flags = struct.unpack_from(">H", ip, 6)[0]
            yield Packet(frame[:6].hex(":"), socket.inet_ntop(socket.AF_INET, ip[12:16]),
                         socket.inet_ntop(socket.AF_INET, ip[16:20]), ip[9], bool(flags & 0x2000),
                         (flags & 0x1FFF) * 8, ip[8], ip[(ip[0] & 0x0F) * 4:])
        elif kind == ETHERNET_IPV6 and len(ip) >= 40:
            yield Packet(frame[:6].hex(":"), socket.inet_ntop(socket.AF_INET6, ip[8:24]),
                         socket.inet_ntop(socket.AF_INET6, ip[24:40]), ip[6], False, 0, ip[7], ip[40:])


def capture(cwd: Path, scenario: str, host: str, interface: str = "eth0") -> list[Packet]:
    """The packets a `invoke run --capture` made from ``cwd`` recorded on one host's interface."""
    found = sorted((cwd / "results" / "latest" / "captures" / scenario).glob(f"{host}-{interface}.pcap"))
    assert found, f"no capture of {host}'s {interface} under {cwd / 'results' / 'latest'}"
    return list(ip_packets(found[0]))


def udp_length(packet: Packet) -> int | None:
    """The UDP header's length field (8 + payload) of a datagram's first (or only) packet."""
    if packet.protocol != 17 or packet.fragment_offset:
        return None
    return int(struct.unpack_from(">H", packet.payload, 4)[0])


@pytest.mark.tries("udp-limits", "invoke run udp-limits --capture")
def test_udp_limits_capture_shows_fragments_and_rationed_icmp(try_text: TrySession) -> None:
    run = try_text("invoke run udp-limits --capture")
    assert run.exit == 0, run
    client = capture(try_text.cwd, "udp-limits", "client")
    first = [p for p in client if udp_length(p) == 8 + 65507]
    assert len(first) == 1 and first[0].more_fragments, "the 65507-byte datagram's first fragment, MF set"
    rest = [p for p in client if p.protocol == 17 and p.fragment_offset and p.destination == first[0].destination]
    assert rest, "later fragments of the 65507-byte datagram"
    assert not [p for p in client if udp_length(p) == 8 + 65508], "the refused datagram was sent after all"
    prober = capture(try_text.cwd, "udp-limits", "prober")
    sent = [p for p in prober if p.protocol == 17 and udp_length(p) == 8 + len(b"anyone?")]
    unreachable = [p for p in prober if p.protocol == 1 and p.payload[:2] == b"\x03\x03"]  # type 3, code 3
    assert 1 <= len(unreachable) <= 16 and len(unreachable) < len(sent), (len(sent), len(unreachable))


def rcvbuf_errors(said: str) -> int:
    """UdpRcvbufErrors plus Udp6RcvbufErrors, as nstat printed them."""
    found = re.findall(r"^Udp6?RcvbufErrors\s+(\d+)", said, re.MULTILINE)
    assert len(found) == 2, said
    return sum(int(count) for count in found)


@pytest.mark.tries("udp-limits", "invoke up udp-limits",
                   "invoke exec server -- nstat -az UdpRcvbufErrors Udp6RcvbufErrors",
                   "invoke exec client -- python3 -m nodes.udplimits client --to server:65434 --burst 200")
def test_udp_limits_counter_rises_by_what_a_burst_lost(try_text: TrySession) -> None:
    up = try_text("invoke up udp-limits")
    assert up.exit == 0, up
    before = try_text("invoke exec server -- nstat -az UdpRcvbufErrors Udp6RcvbufErrors")
    assert before.exit == 0, before
    burst = try_text("invoke exec client -- python3 -m nodes.udplimits client --to server:65434 --burst 200")
    assert burst.exit == 0, burst
    result = burst.json()
    assert result["outcome"] == "ok" and result["sent"] == 200 and result["lost"] > 100, result
    after = try_text("invoke exec server -- nstat -az UdpRcvbufErrors Udp6RcvbufErrors")
    assert rcvbuf_errors(after.stdout) - rcvbuf_errors(before.stdout) == result["lost"] == result["rcvbuf_errors"]


@pytest.mark.tries("broadcast", "invoke up broadcast", "invoke exec alpha -- ip -4 addr show",
                   "invoke exec alpha -- ss -uln", "invoke exec gamma -- ss -uln")
def test_broadcast_address_and_where_receivers_listen(try_text: TrySession) -> None:
    up = try_text("invoke up broadcast")
    assert up.exit == 0, up
    shown = try_text("invoke exec alpha -- ip -4 addr show")
    found = re.search(r"inet (198\.1[89]\.\d+\.\d+)/(\d+) brd (\S+)", shown.stdout)
    assert found, shown
    network = ipaddress.ip_network(f"{found.group(1)}/{found.group(2)}", strict=False)
    assert found.group(3) == str(network.broadcast_address), shown
    alpha = try_text("invoke exec alpha -- ss -uln")
    assert re.search(r"\s0\.0\.0\.0:65440\s", alpha.stdout), alpha
    gamma = try_text("invoke exec gamma -- ss -uln")
    bound = re.findall(r"\s(\S+):65440\s", gamma.stdout)
    assert len(bound) == 1 and ipaddress.ip_address(bound[0]) in network, gamma


@pytest.mark.tries("broadcast", "invoke run broadcast --capture")
def test_broadcast_capture_shows_one_frame_to_everyone(try_text: TrySession) -> None:
    run = try_text("invoke run broadcast --capture")
    assert run.exit == 0, run
    beta = capture(try_text.cwd, "broadcast", "beta")
    to_all = [p for p in beta if p.protocol == 17 and p.destination_mac == "ff:ff:ff:ff:ff:ff"
              and p.destination.endswith(".255")]
    assert to_all, "a broadcast frame to ff:ff:ff:ff:ff:ff"
    back = [p for p in beta if p.protocol == 17 and p.destination == to_all[0].source]
    assert back and all(p.destination_mac != "ff:ff:ff:ff:ff:ff" for p in back), "beta's unicast answers"


def memberships(said: str) -> list[str]:
    return re.findall(r"inet6 (ff15::1:2:3)", said)


@pytest.mark.tries("multicast", "invoke up multicast", "invoke exec member1 -- ip maddress show",
                   "invoke exec outsider -- ip maddress show")
def test_multicast_memberships_are_the_kernels(try_text: TrySession) -> None:
    up = try_text("invoke up multicast")
    assert up.exit == 0, up
    member = try_text("invoke exec member1 -- ip maddress show")
    assert member.exit == 0 and memberships(member.stdout) == ["ff15::1:2:3"], member
    outsider = try_text("invoke exec outsider -- ip maddress show")
    assert outsider.exit == 0 and "inet6 ff02::1" in outsider.stdout and not memberships(outsider.stdout), outsider


@pytest.mark.tries("multicast", "invoke run multicast --capture")
def test_multicast_capture_shows_group_frames_with_hop_limit_1(try_text: TrySession) -> None:
    run = try_text("invoke run multicast --capture")
    assert run.exit == 0, run
    member1 = capture(try_text.cwd, "multicast", "member1")
    group = [p for p in member1 if p.destination == "ff15::1:2:3" and p.protocol == 17]
    assert group and {p.destination_mac for p in group} == {"33:33:00:02:00:03"}, group
    assert 1 in {p.ttl for p in group} and {p.ttl for p in group} <= {1, 5}, group


@pytest.mark.tries("asyncio-udp", "invoke up asyncio-udp",
                   "invoke exec client1 -- python3 -m nodes.asyncudp client --to server:65432 --clients 100 --count 5",
                   'invoke exec server -- grep -c "first datagram" /lab/log/server-asyncudp.log',
                   "invoke exec server -- ss -uanp")
def test_asyncio_udp_one_socket_answers_100_client_sockets(try_text: TrySession) -> None:
    up = try_text("invoke up asyncio-udp")
    assert up.exit == 0, up
    many = try_text("invoke exec client1 -- python3 -m nodes.asyncudp client --to server:65432 --clients 100 --count 5")
    assert many.exit == 0, many
    result = many.json()
    assert (result["outcome"], result["locals"], result["received"], result["lost"]) == ("echoed", 100, 500, 0)
    counted = try_text('invoke exec server -- grep -c "first datagram" /lab/log/server-asyncudp.log')
    assert counted.stdout.strip() == "100", counted
    sockets = try_text("invoke exec server -- ss -uanp")
    assert len([line for line in sockets.stdout.splitlines() if ":65432 " in line]) == 1, sockets
