"""Reading captures back: small pcaps made here, byte by byte, decoded into Packet records.

Every capture is written by the test itself (``pcap`` below: the file and
record headers with ``struct``, the frames with ``struct`` too), so what the
reader must find is known from how the bytes were made, not from a real run.
"""

from __future__ import annotations

import socket
import struct

import pytest

from socklab import packets
from socklab.packets import CaptureError, Flow

CLIENT, SERVER = "198.18.0.3", "198.18.0.2"
CLIENT6, SERVER6 = "fd50:c1ab:0:1::3", "fd50:c1ab:0:1::2"
CLIENT_MAC, SERVER_MAC = b"\x02\x42\xc6\x12\x00\x03", b"\x02\x42\xc6\x12\x00\x02"
BROADCAST = b"\xff" * 6

# -- making frames ----------------------------------------------------------------------


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header + payload


def ipv6(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64, socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def tcp(sport: int, dport: int, flags: int, seq: int = 0, ack: int = 0, data: bytes = b"", window: int = 64240,
        checksum: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, checksum, 0) + data


def udp(sport: int, dport: int, data: bytes, checksum: int = 0) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), checksum) + data


def icmp(kind: int, code: int, body: bytes) -> bytes:
    return struct.pack("!BBHI", kind, code, 0, 0) + body


def ethernet(payload: bytes, ethertype: int = 0x0800, src: bytes = CLIENT_MAC, dst: bytes = SERVER_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op: int, sender_mac: bytes, sender: str, target_mac: bytes, target: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sender_mac, socket.inet_aton(sender), target_mac,
                       socket.inet_aton(target))


SYN, RST, ACK, PSH, FIN = 0x02, 0x04, 0x10, 0x08, 0x01


def pcap(frames: list[tuple[float, bytes]], link: int = 1, nano: bool = False) -> bytes:
    """A classic pcap file, as tcpdump writes it (little-endian, micro- or nanosecond stamps)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, link)
    for stamp, frame in frames:
        seconds = int(stamp)
        fraction = round((stamp - seconds) * (1e9 if nano else 1e6))
        out += struct.pack("<IIII", seconds, fraction, len(frame), len(frame)) + frame
    return out


def pcapng(frames: list[tuple[float, bytes]], link: int = 1) -> bytes:
    """A pcapng file: section header, one interface (microsecond stamps), an enhanced packet block a frame."""
    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", link, 0, 262144))
    for stamp, frame in frames:
        micro = round(stamp * 1e6)
        out += block(6, struct.pack("<IIIII", 0, micro >> 32, micro & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    return out


T0 = 1_800_000_000.0


def refused_tcp() -> list[tuple[float, bytes]]:
    return [(T0, ethernet(ipv4(CLIENT, SERVER, 6, tcp(41000, 9, SYN, seq=1000), ident=7))),
            (T0 + 0.0001, ethernet(ipv4(SERVER, CLIENT, 6, tcp(9, 41000, RST | ACK, ack=1001), ident=0),
                                   src=SERVER_MAC, dst=CLIENT_MAC))]


# -- the tests --------------------------------------------------------------------------


def test_a_refused_tcp_connect_is_a_syn_then_a_rst() -> None:
    syn, rst = packets.read(pcap(refused_tcp()), "client-eth0")
    assert (syn.proto, syn.src, syn.sport, syn.dst, syn.dport) == ("tcp", CLIENT, 41000, SERVER, 9)
    assert syn.flags == ("SYN",) and syn.seq == 1000 and syn.ack is None and syn.length == 0 and syn.ident == 7
    assert rst.flags == ("RST", "ACK") and rst.ack == 1001
    assert syn.time == pytest.approx(T0) and rst.time == pytest.approx(T0 + 0.0001)
    assert (syn.capture, syn.host, syn.interface) == ("client-eth0", "client", "eth0")
    assert syn.src_mac == "02:42:c6:12:00:03" and syn.dst_mac == "02:42:c6:12:00:02"


def test_data_flags_length_and_window() -> None:
    frame = ethernet(ipv4(CLIENT, SERVER, 6, tcp(41000, 7, PSH | ACK, seq=1, ack=1, data=b"Hello, world", window=0)))
    (packet,) = packets.read(pcap([(T0, frame)]))
    assert packet.flags == ("PSH", "ACK") and packet.length == 12 and packet.window == 0
    fin = ethernet(ipv4(CLIENT, SERVER, 6, tcp(41000, 7, FIN | ACK, seq=13, ack=13)))
    assert packets.read(pcap([(T0, fin)]))[0].flags == ("FIN", "ACK")


def test_an_icmp_port_unreachable_names_the_udp_flow_it_quotes() -> None:
    datagram = ipv4(CLIENT, SERVER, 17, udp(41234, 9, b"ping"))
    quote = datagram[:28]  # RFC 792: the IP header and 8 bytes past it; its length field promises more
    frames = [(T0, ethernet(datagram)),
              (T0 + 0.001, ethernet(ipv4(SERVER, CLIENT, 1, icmp(3, 3, quote)), src=SERVER_MAC, dst=CLIENT_MAC))]
    sent, error = packets.read(pcap(frames))
    assert (sent.proto, sent.length, sent.sport, sent.dport) == ("udp", 4, 41234, 9) and sent.quoted is None
    assert error.proto == "icmp" and (error.icmp_type, error.icmp_code) == (3, 3) and error.error
    assert error.icmp_name == "port unreachable"
    assert error.quoted == Flow("udp", CLIENT, SERVER, 41234, 9)
    assert str(error.quoted) == "UDP 198.18.0.3:41234 → 198.18.0.2:9"


def test_icmp_host_unreachable_quoting_a_syn_and_other_codes() -> None:
    syn = ipv4(CLIENT, SERVER, 6, tcp(40000, 65435, SYN))
    (error,) = packets.read(pcap([(T0, ethernet(ipv4(SERVER, CLIENT, 1, icmp(3, 1, syn))))]))
    assert error.icmp_name == "host unreachable" and error.quoted == Flow("tcp", CLIENT, SERVER, 40000, 65435)
    (prohibited,) = packets.read(pcap([(T0, ethernet(ipv4(SERVER, CLIENT, 1, icmp(3, 13, syn))))]))
    assert prohibited.icmp_name == "communication administratively prohibited"
    (echo,) = packets.read(pcap([(T0, ethernet(ipv4(CLIENT, SERVER, 1, icmp(8, 0, b"abcd"))))]))
    assert echo.icmp_name == "echo request" and echo.quoted is None


def test_ipv6_tcp_icmpv6_errors_and_neighbour_discovery() -> None:
    datagram = ipv6(CLIENT6, SERVER6, 17, udp(5000, 9, b"hi"))
    solicit = icmp(135, 0, b"")[:4] + b"\0" * 4 + socket.inet_pton(socket.AF_INET6, SERVER6)
    report = icmp(143, 0, b"\0" * 8)  # an MLDv2 listener report: the network's own chatter
    frames = [(T0, ethernet(ipv6(CLIENT6, "ff02::1:ff00:2", 58, solicit), 0x86DD)),
              (T0 + 0.1, ethernet(ipv6("fe80::1", "ff02::16", 58, report), 0x86DD)),
              (T0 + 0.2, ethernet(ipv6(CLIENT6, SERVER6, 6, tcp(5001, 7, SYN)), 0x86DD)),
              (T0 + 0.3, ethernet(datagram, 0x86DD)),
              (T0 + 0.4, ethernet(ipv6(SERVER6, CLIENT6, 58, icmp(1, 4, datagram)), 0x86DD))]
    ns, syn, sent, error = packets.read(pcap(frames))
    assert ns.proto == "icmp6" and ns.icmp_name == "neighbor solicitation" and ns.target == SERVER6
    assert syn.proto == "tcp" and syn.src == CLIENT6 and syn.flags == ("SYN",)
    assert sent.proto == "udp" and sent.length == 2
    assert error.icmp_name == "port unreachable" and error.quoted == Flow("udp", CLIENT6, SERVER6, 5000, 9)
    assert str(error.quoted) == f"UDP [{CLIENT6}]:5000 → [{SERVER6}]:9"


def test_arp_requests_and_replies() -> None:
    frames = [(T0, ethernet(arp(1, CLIENT_MAC, CLIENT, b"\0" * 6, "198.18.0.250"), 0x0806, dst=BROADCAST)),
              (T0 + 1, ethernet(arp(1, CLIENT_MAC, CLIENT, b"\0" * 6, SERVER), 0x0806, dst=BROADCAST)),
              (T0 + 1.001, ethernet(arp(2, SERVER_MAC, SERVER, CLIENT_MAC, CLIENT), 0x0806, SERVER_MAC, CLIENT_MAC))]
    asked, again, answer = packets.read(pcap(frames))
    assert (asked.proto, asked.src, asked.target, asked.reply, asked.dst_mac) == (
        "arp", CLIENT, "198.18.0.250", False, "ff:ff:ff:ff:ff:ff")
    assert again.target == SERVER
    assert (answer.reply, answer.target, answer.src_mac, answer.dst) == (True, SERVER, "02:42:c6:12:00:02", CLIENT)


def sll(payload: bytes, ethertype: int = 0x0800) -> bytes:
    """Linux cooked capture v1 (tcpdump -i any): packet type, ARPHRD, address length, address, protocol."""
    return struct.pack("!HHH8sH", 4, 1, 6, CLIENT_MAC + b"\0\0", ethertype) + payload


def sll2(payload: bytes, ethertype: int = 0x0800) -> bytes:
    """Linux cooked capture v2: protocol, reserved, interface index, ARPHRD, packet type, address length, address."""
    return struct.pack("!HHiHBB8s", ethertype, 0, 2, 1, 4, 6, CLIENT_MAC + b"\0\0") + payload


@pytest.mark.parametrize(("link", "frame"), [
    (113, sll), (276, sll2), (101, lambda ip: ip), (228, lambda ip: ip), (0, lambda ip: struct.pack("<I", 2) + ip)],
    ids=["sll", "sll2", "raw", "ipv4", "null"])
def test_every_link_type_tcpdump_writes_on_linux(link, frame) -> None:
    (packet,) = packets.read(pcap([(T0, frame(ipv4(CLIENT, SERVER, 6, tcp(41000, 9, SYN))))], link=link))
    assert (packet.src, packet.dst, packet.flags) == (CLIENT, SERVER, ("SYN",))
    if link in (113, 276):
        assert packet.src_mac == "02:42:c6:12:00:03"


def test_nanosecond_pcaps_and_pcapng_read_the_same() -> None:
    micro = packets.read(pcap(refused_tcp()))
    nano = packets.read(pcap(refused_tcp(), nano=True))
    ng = packets.read(pcapng(refused_tcp()))
    for other in (nano, ng):
        assert [(p.flags, p.src, p.dst) for p in other] == [(p.flags, p.src, p.dst) for p in micro]
        assert [p.time for p in other] == pytest.approx([p.time for p in micro], abs=1e-6)


def test_a_capture_cut_short_or_empty_gives_what_it_holds_and_garbage_is_refused() -> None:
    whole = pcap(refused_tcp())
    assert len(packets.read(whole[:-10])) == 1  # tcpdump killed mid-record: the whole records are kept
    assert packets.read(whole[:24]) == [] and packets.read(b"") == [] and packets.read(whole[:10]) == []
    with pytest.raises(CaptureError, match="server-eth0: not a pcap or pcapng file"):
        packets.read(b"this is not a capture at all, not even close", "server-eth0")


def test_frames_that_cannot_be_decoded_or_carry_nothing_to_draw_are_skipped() -> None:
    frames = [(T0, b"\x01\x02"),  # shorter than an Ethernet header
              (T0 + 1, ethernet(b"\x00" * 30, 0x88CC)),  # LLDP
              (T0 + 2, ethernet(ipv4(CLIENT, SERVER, 6, tcp(1, 2, SYN))))]
    assert [p.flags for p in packets.read(pcap(frames))] == [("SYN",)]


def test_read_all_merges_captures_in_time_order() -> None:
    later = pcap([(T0 + 2, ethernet(ipv4(SERVER, CLIENT, 17, udp(9, 5, b"x"))))])
    merged = packets.read_all({"server-eth0": later, "client-eth0": pcap(refused_tcp())})
    assert [p.capture for p in merged] == ["client-eth0", "client-eth0", "server-eth0"]
    assert [p.time for p in merged] == sorted(p.time for p in merged)


def test_the_same_packet_has_the_same_fingerprint_on_every_capture_and_a_resent_one_differs() -> None:
    frame = ethernet(ipv4(CLIENT, SERVER, 6, tcp(41000, 9, SYN), ident=7))
    resent = ethernet(ipv4(CLIENT, SERVER, 6, tcp(41000, 9, SYN), ident=8))
    (mine,), (theirs,), (again,) = (packets.read(pcap([(T0, f)]), name)
                                    for f, name in ((frame, "client-eth0"), (frame, "server-eth0"), (resent, "c-lo")))
    assert mine.fingerprint() == theirs.fingerprint() != again.fingerprint()


def fragments(src: str, dst: str, data: bytes, ident: int, size: int = 1480) -> list[bytes]:
    """An IPv4 datagram cut into fragments of ``size`` bytes, as the sending kernel cuts one bigger than the MTU."""
    whole = udp(41000, 65434, data)
    pieces = []
    for offset in range(0, len(whole), size):
        more = 0x2000 if offset + size < len(whole) else 0
        chunk = whole[offset:offset + size]
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ident, more | offset // 8, 64, 17, 0,
                             socket.inet_aton(src), socket.inet_aton(dst))
        pieces.append(ethernet(header + chunk))
    return pieces


def test_ip_fragments_belong_to_their_datagram() -> None:
    frames = [(T0 + 0.001 * index, frame) for index, frame in enumerate(fragments(CLIENT, SERVER, b"x" * 4000, 9))]
    first, middle, last = packets.read(pcap(frames))
    assert (first.proto, first.sport, first.dport, first.length) == ("udp", 41000, 65434, 4000)
    assert (first.fragment, first.more_fragments, first.carried) == (0, True, 1480)
    assert (middle.proto, middle.sport, middle.dport, middle.fragment, middle.carried) == ("udp", 41000, 65434, 1480,
                                                                                             1480)
    assert (last.fragment, last.more_fragments, last.carried, last.length) == (2960, False, 1048, 4000)
    assert first.ttl == 64


def test_ipv6_fragments_and_hop_limit() -> None:
    whole = udp(5000, 9, b"y" * 100)
    header = struct.pack("!BBHI", 17, 0, 1, 77)  # the fragment header: offset 0, more fragments
    later = struct.pack("!BBHI", 17, 0, (56 // 8) << 3, 77)  # offset 56 bytes, the last
    frames = [(T0, ethernet(ipv6("fd50:c1ab:0:1::3", "ff15::1:2:3", 44, header + whole[:56]), 0x86DD)),
              (T0 + 0.001, ethernet(ipv6("fd50:c1ab:0:1::3", "ff15::1:2:3", 44, later + whole[56:]), 0x86DD))]
    first, second = packets.read(pcap(frames))
    assert (first.proto, first.dport, first.fragment, first.more_fragments, first.length) == ("udp", 9, 0, True, 100)
    assert (second.proto, second.dport, second.fragment, second.more_fragments) == ("udp", 9, 56, False)
    assert first.ttl == 64 and first.ident == second.ident == 77
