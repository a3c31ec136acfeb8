"""Packet captures read back: pcap bytes -> typed records of what went over the wire.

A run with ``--capture`` records each interface of each host to a pcap of
its own (``socklab.capture``); report.html draws, for every check, the
packets its attempt put on the wire (``socklab.attribution``, ``socklab.ladder``). This module only
decodes: each frame becomes a ``Packet`` that says when it was seen, on
which capture, between which addresses and ports, with which TCP flags,
sequence numbers and payload length, and for an ICMP error the flow of the
packet it quotes. Frames that carry nothing a ladder shows (multicast
listener reports, router solicitations, frames of other protocols) are left
out.

The decoding is dpkt's (a runtime dependency): a small, pure-Python,
long-lived library that imports in milliseconds and reads what tcpdump
writes, pcap (micro- or nanosecond) and pcapng, over Ethernet (what tcpdump
gives on ``eth*`` and on Linux's ``lo``), Linux cooked captures (SLL and
SLL2, what ``-i any`` gives) and raw IP, with IPv4, IPv6, TCP, UDP, ICMP,
ICMPv6 and ARP. scapy reads the same but takes about a second to import and
pulls in far more than a report needs. Only the packet an ICMP error quotes
is read here by hand (``_quoted``): it is cut short by design (a header and
the first bytes of its transport), which is all a flow needs, and a
general-purpose parser refuses or half-reads such a packet.
"""

from __future__ import annotations

import io
import ipaddress
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import dpkt  # type: ignore[import-untyped]  # no type hints of its own; used only here

# Link types (tcpdump.org/linktypes.html) this reader understands.
LINK_NULL = 0  # BSD loopback: a 4-byte address family, then IP
LINK_ETHERNET = 1  # tcpdump -i eth0, and -i lo on Linux (zero MAC addresses)
LINK_RAW = 101  # raw IP, version from the first nibble (also 12 on some systems, 14 on OpenBSD)
LINK_SLL = 113  # Linux cooked capture v1: tcpdump -i any
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_SLL2 = 276  # Linux cooked capture v2: tcpdump -i any, libpcap 1.10 and later
LINK_RAW_OTHER = (12, 14)

TCP_FLAGS = (  # in the order people write them: "SYN, ACK", "PSH, ACK", "FIN, ACK", "RST, ACK"
    (dpkt.tcp.TH_SYN, "SYN"),
    (dpkt.tcp.TH_FIN, "FIN"),
    (dpkt.tcp.TH_RST, "RST"),
    (dpkt.tcp.TH_PUSH, "PSH"),
    (dpkt.tcp.TH_ACK, "ACK"),
    (dpkt.tcp.TH_URG, "URG"),
    (dpkt.tcp.TH_ECE, "ECE"),
    (dpkt.tcp.TH_CWR, "CWR"),
)

ICMP4_UNREACHABLE = {  # type 3's codes (RFC 792, 1812)
    0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
    4: "fragmentation needed", 5: "source route failed", 6: "network unknown", 7: "host unknown",
    9: "network prohibited", 10: "host prohibited", 13: "communication administratively prohibited",
}
ICMP4_TYPES = {0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
               8: "echo request", 11: "time exceeded", 12: "parameter problem"}
ICMP4_ERRORS = (3, 4, 5, 11, 12)
ICMP6_UNREACHABLE = {0: "no route to destination", 1: "communication administratively prohibited",
                     2: "beyond scope of source address", 3: "address unreachable", 4: "port unreachable",
                     5: "source address failed policy", 6: "reject route to destination"}
ICMP6_TYPES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 4: "parameter problem",
               128: "echo request", 129: "echo reply", 135: "neighbor solicitation",
               136: "neighbor advertisement", 137: "redirect"}
ICMP6_ERRORS = (1, 2, 3, 4)
ICMP6_SHOWN = (*ICMP6_ERRORS, 128, 129, 135, 136)  # the rest (MLD, router discovery) is the network's own chatter
TRANSPORTS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: skipped to find the transport


class CaptureError(ValueError):
    """The bytes are not a packet capture this reader knows (neither pcap nor pcapng)."""


@dataclass(frozen=True)
class Flow:
    """One side's view of a conversation: protocol, source and destination address and port.

    Addresses are written as Python's ``ipaddress`` writes them (IPv6
    compressed, lower case), so that the same address always compares equal.
    """

    proto: str  # "tcp", "udp", "icmp", "icmp6"
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None

    def __str__(self) -> str:
        return f"{self.proto.upper()} {endpoint(self.src, self.sport)} → {endpoint(self.dst, self.dport)}"

    def reverse(self) -> Flow:
        return Flow(self.proto, self.dst, self.src, self.dport, self.sport)


@dataclass(frozen=True)
class Packet:
    """One frame as a capture saw it, decoded as far as a ladder diagram needs.

    ``time`` is the capturing host's clock (seconds since the epoch; lab
    hosts share the machine's kernel clock, so captures of different hosts
    line up). ``proto`` is the transport (``tcp``, ``udp``), ``icmp`` or
    ``icmp6``, or ``arp``. For ARP and neighbour discovery, ``target`` is the
    address asked about. ``quoted`` is, for an ICMP error, the flow of the
    packet it sends back. ``ident`` (IPv4's identification field) and the
    MAC addresses tell one packet seen on two captures from a packet sent twice.
    """

    time: float
    capture: str  # HOST-INTERFACE, as ScenarioResult.captures names it
    proto: str
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    flags: tuple[str, ...] = ()  # TCP: "SYN", "ACK", ...
    seq: int | None = None
    ack: int | None = None
    window: int | None = None  # TCP: the receive window as sent (not scaled)
    length: int = 0  # bytes of payload (TCP, UDP), or of the ICMP message
    icmp_type: int | None = None
    icmp_code: int | None = None
    quoted: Flow | None = None
    target: str | None = None  # ARP, neighbour discovery: who has this address? (a reply: this one is at ...)
    reply: bool = False  # ARP: a reply ("is at"), not a request ("who has")
    ident: int | None = None
    src_mac: str | None = None
    dst_mac: str | None = None
    checksum: int | None = None  # the transport's: with ident, tells a resent packet from the same one seen twice
    fragment: int | None = None  # an IP fragment: the byte offset of what it carries (None: a whole packet)
    more_fragments: bool = False  # the fragment's MF flag: more of the datagram follows
    carried: int = 0  # a fragment's bytes of the datagram (``length`` is the whole datagram's, as its header says)
    ttl: int | None = None  # IPv4's time to live, IPv6's hop limit (not in the fingerprint: a router lowers it)

    @property
    def host(self) -> str:
        """The host whose capture saw it (``client`` of ``client-eth0``)."""
        return self.capture.rpartition("-")[0] or self.capture

    @property
    def interface(self) -> str:
        return self.capture.rpartition("-")[2]

    @property
    def flow(self) -> Flow:
        return Flow(self.proto, self.src, self.dst, self.sport, self.dport)

    @property
    def error(self) -> bool:
        """An ICMP error: it quotes the packet it answers."""
        return self.quoted is not None

    @property
    def icmp_name(self) -> str:
        """``port unreachable``, ``echo request``, ``neighbor solicitation``: what an ICMP message says."""
        if self.icmp_type is None:
            return ""
        if self.proto == "icmp":
            if self.icmp_type == 3:
                return ICMP4_UNREACHABLE.get(self.icmp_code or 0, f"unreachable (code {self.icmp_code})")
            return ICMP4_TYPES.get(self.icmp_type, f"type {self.icmp_type}")
        if self.icmp_type == 1:
            return ICMP6_UNREACHABLE.get(self.icmp_code or 0, f"unreachable (code {self.icmp_code})")
        return ICMP6_TYPES.get(self.icmp_type, f"type {self.icmp_type}")

    def fingerprint(self) -> tuple[object, ...]:
        """What the same packet has on every capture that saw it (a router decrements only the TTL)."""
        return (self.proto, self.src, self.dst, self.sport, self.dport, self.flags, self.seq, self.ack, self.length,
                self.icmp_type, self.icmp_code, self.quoted, self.target, self.reply, self.ident, self.checksum,
                self.fragment, self.carried)


def endpoint(address: str, port: int | None) -> str:
    """``198.18.0.2:9``, ``[fd50:c1ab:0:1::2]:9``, or the address alone without a port."""
    if port is None:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def read(data: bytes, capture: str = "") -> list[Packet]:
    """Every packet of one pcap or pcapng file worth drawing, in the order captured.

    An empty file, or one cut short (tcpdump killed mid-write), gives the
    packets it holds whole; bytes that are no capture at all raise
    ``CaptureError``. A frame that cannot be decoded is skipped.
    """
    if not data:
        return []
    try:
        reader = dpkt.pcap.UniversalReader(io.BytesIO(data))
    except (ValueError, dpkt.UnpackError) as exc:
        if len(data) < 24 and data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                           b"\xa1\xb2\x3c\x4d"):
            return []  # tcpdump had not yet written its whole header
        raise CaptureError(f"{capture or 'capture'}: not a pcap or pcapng file ({exc})") from None
    link = reader.datalink()
    found = []
    for stamp, frame in _frames(reader):
        try:
            packet = _decode(float(stamp), capture, link, frame)
        except (dpkt.UnpackError, struct.error, ValueError, IndexError, AttributeError, TypeError):
            continue
        if packet is not None:
            found.append(packet)
    return _reassembled(found)


def _reassembled(found: list[Packet]) -> list[Packet]:
    """Later fragments of a datagram carry no transport header: they get the ports of its first fragment
    (same addresses, identification and protocol), so that they belong to the same conversation."""
    ports = {(p.src, p.dst, p.ident, p.proto): (p.sport, p.dport, p.length) for p in found if p.fragment == 0}
    return [replace(p, sport=known[0], dport=known[1], length=known[2])
            if p.fragment and (known := ports.get((p.src, p.dst, p.ident, p.proto))) else p for p in found]


def read_all(captures: Mapping[str, bytes]) -> list[Packet]:
    """Every packet of a run's captures (``HOST-INTERFACE`` -> pcap), in time order."""
    packets = [packet for name, data in captures.items() for packet in read(data, name)]
    return sorted(packets, key=lambda p: p.time)


def _frames(reader: Iterable[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
    """The reader's records, stopping quietly at a last one cut short."""
    iterator = iter(reader)
    while True:
        try:
            stamp, frame = next(iterator)
        except StopIteration:
            return
        except (dpkt.UnpackError, struct.error, ValueError):
            return
        yield stamp, frame


def _decode(stamp: float, capture: str, link: int, frame: bytes) -> Packet | None:
    """A frame's network layer, by link type, then the packet in it."""
    src_mac = dst_mac = None
    layer: object
    if link == LINK_ETHERNET:
        ethernet = dpkt.ethernet.Ethernet(frame)
        src_mac, dst_mac = _mac(ethernet.src), _mac(ethernet.dst)
        layer = ethernet.data
    elif link == LINK_SLL:
        cooked = dpkt.sll.SLL(frame)
        src_mac = _mac(cooked.hdr[:cooked.hlen]) if cooked.hlen == 6 else None
        layer = cooked.data
    elif link == LINK_SLL2:
        cooked2 = dpkt.sll2.SLL2(frame)
        src_mac = _mac(cooked2.hdr[:cooked2.hlen]) if cooked2.hlen == 6 else None
        layer = cooked2.data
    elif link in (LINK_RAW, *LINK_RAW_OTHER, LINK_IPV4, LINK_IPV6):
        layer = _raw_ip(frame)
    elif link == LINK_NULL:
        layer = _raw_ip(frame[4:])
    else:
        return None
    packet = Packet(stamp, capture, "", "", "", src_mac=src_mac, dst_mac=dst_mac)
    if isinstance(layer, dpkt.ip.IP):
        return _ipv4(packet, layer)
    if isinstance(layer, dpkt.ip6.IP6):
        return _ipv6(packet, layer)
    if isinstance(layer, dpkt.arp.ARP):
        return _arp(packet, layer)
    return None


def _raw_ip(frame: bytes) -> object:
    version = frame[0] >> 4 if frame else 0
    if version == 4:
        return dpkt.ip.IP(frame)
    if version == 6:
        return dpkt.ip6.IP6(frame)
    return None


def _mac(raw: bytes) -> str | None:
    return ":".join(f"{byte:02x}" for byte in raw) if len(raw) == 6 else None


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _ipv4(packet: Packet, ip: dpkt.ip.IP) -> Packet | None:
    base = replace(packet, src=_address(ip.src), dst=_address(ip.dst), ident=ip.id, ttl=ip.ttl)
    return _fragment(base, ip.p, ip.data, ip.offset * 8, bool(ip.mf))


def _ipv6(packet: Packet, ip: dpkt.ip6.IP6) -> Packet | None:
    base = replace(packet, src=_address(ip.src), dst=_address(ip.dst), ttl=ip.hlim)
    header = getattr(ip, "extension_hdrs", {}).get(44)
    if header is None:
        return _transport(base, ip.p, ip.data)
    return _fragment(replace(base, ident=header.id), ip.p, ip.data, header.frag_off * 8, bool(header.m_flag))


def _fragment(packet: Packet, number: int, layer: object, offset: int, more: bool) -> Packet | None:
    """A whole packet's transport, or a fragment: the first has the transport header, the later ones only bytes."""
    if not offset and not more:
        return _transport(packet, number, layer)
    carried = len(bytes(layer)) if isinstance(layer, dpkt.Packet | bytes) else 0
    if offset:  # a later fragment: its ports come from the first (``_reassembled``)
        return replace(packet, proto=TRANSPORTS.get(number, f"ip proto {number}"), fragment=offset,
                       more_fragments=more, carried=carried)
    first = _transport(packet, number, layer)
    if first is None:
        return None
    declared = layer.ulen - 8 if isinstance(layer, dpkt.udp.UDP) else first.length
    return replace(first, fragment=0, more_fragments=more, carried=carried, length=declared)


def _transport(packet: Packet, number: int, layer: object) -> Packet | None:
    if number == 6 and isinstance(layer, dpkt.tcp.TCP):
        flags = tuple(name for bit, name in TCP_FLAGS if layer.flags & bit)
        return replace(packet, proto="tcp", sport=layer.sport, dport=layer.dport, flags=flags, seq=layer.seq,
                        ack=layer.ack if layer.flags & dpkt.tcp.TH_ACK else None, window=layer.win,
                       length=len(layer.data),
                        checksum=layer.sum)
    if number == 17 and isinstance(layer, dpkt.udp.UDP):
        return replace(packet, proto="udp", sport=layer.sport, dport=layer.dport, length=len(layer.data),
                        checksum=layer.sum)
    if number == 1 and isinstance(layer, dpkt.icmp.ICMP):
        body = bytes(layer)[4:]
        quoted = _quoted(body[4:]) if layer.type in ICMP4_ERRORS else None
        return replace(packet, proto="icmp", icmp_type=layer.type, icmp_code=layer.code, quoted=quoted,
                        length=len(body), checksum=layer.sum)
    if number == 58 and isinstance(layer, dpkt.icmp6.ICMP6):
        if layer.type not in ICMP6_SHOWN:
            return None
        body = bytes(layer)[4:]
        quoted = _quoted(body[4:]) if layer.type in ICMP6_ERRORS else None
        target = _address(body[4:20]) if layer.type in (135, 136) and len(body) >= 20 else None
        return replace(packet, proto="icmp6", icmp_type=layer.type, icmp_code=layer.code, quoted=quoted,
                        target=target, length=len(body), checksum=layer.sum)
    return None


def _arp(packet: Packet, arp: dpkt.arp.ARP) -> Packet | None:
    if arp.pro != dpkt.ethernet.ETH_TYPE_IP or arp.pln != 4:
        return None
    reply = arp.op == dpkt.arp.ARP_OP_REPLY
    sender, asked = _address(arp.spa), _address(arp.tpa)
    return replace(packet, proto="arp", src=sender, dst=asked, target=sender if reply else asked, reply=reply,
                   src_mac=_mac(arp.sha) or packet.src_mac)


def _quoted(inner: bytes) -> Flow | None:
    """The flow of the packet an ICMP error carries: its IP header and the start of its transport header.

    Read by hand: the quote is cut short by design (RFC 792 asks for only
    8 bytes past the IP header), so its length fields promise more than is
    there, and the ports are the first four bytes either way.
    """
    if len(inner) < 20:
        return None
    version = inner[0] >> 4
    if version == 4:
        header = (inner[0] & 0x0F) * 4
        number, src, dst = inner[9], inner[12:16], inner[16:20]
        rest = inner[header:]
    elif version == 6 and len(inner) >= 40:
        number, src, dst, rest = inner[6], inner[8:24], inner[24:40], inner[40:]
        while number in IPV6_EXTENSIONS and len(rest) >= 8:
            number, rest = rest[0], rest[(rest[1] + 1) * 8:]
    else:
        return None
    proto = TRANSPORTS.get(number, f"ip proto {number}")
    sport = dport = None
    if number in (6, 17) and len(rest) >= 4:
        sport, dport = struct.unpack("!HH", rest[:4])
    return Flow(proto, _address(src), _address(dst), sport, dport)
