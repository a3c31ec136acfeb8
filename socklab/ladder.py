"""A check's packets (``socklab.attribution``) as a ladder (sequence) diagram between hosts.

The ladder names each end of each packet by the lab's hosts (their
addresses, or, for link-local and loopback traffic, the capturing host and
the MAC addresses learnt from the captures): one lane per host, or per
socket (``server :65432``, ``server :41000``) when a host talks to itself
over loopback. Each packet is an arrow labelled as a student would say it
(SYN, PSH, ACK len 12, ICMP port unreachable quoting its flow), with what
TCP's own analysis would note: a retransmission and its delay, a duplicate
ACK, a keep-alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from socklab.attribution import Directory, Sighting, attribute, multicast, unicast
from socklab.packets import Packet
from socklab.results import CheckResult, HostAddresses

BROADCAST = "ff:ff:ff:ff:ff:ff"
MAX_ROWS = 40  # arrows drawn per check; a 1 MiB transfer is hundreds of segments: the rest are counted
MTU_PAYLOAD = 1460  # the most TCP payload one 1500-byte Ethernet frame holds
OFFLOADED = ("Segments of up to {} bytes, longer than one 1500-byte frame holds: a capture sees what the kernel "
             "hands the interface, and on a virtual (veth) link nothing cuts large segments into MTU-sized ones "
             "(segmentation offload); on a physical link they would leave as many smaller segments.")

# -- the ladder -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lane:
    """A vertical line: a host, or one socket of a host that talks to itself (``port``)."""

    host: str  # the lab host, or the address when no lab host has it
    port: int | None = None
    known: bool = True  # False: an address no lab host has (an absent host, a gateway, a group)
    addresses: tuple[str, ...] = ()
    group: str = ""  # for an address no host has: "broadcast" or "multicast group"

    @property
    def name(self) -> str:
        return f"{self.host} :{self.port}" if self.port is not None else self.host

    @property
    def note(self) -> str:
        """What is written under the name: the addresses this ladder saw it use, or why it has none."""
        if not self.known:
            return self.group or "no lab host"
        return ", ".join(self.addresses)


def span(seconds: float) -> str:
    """``0.09 ms``, ``614.20 ms``, ``1.002 s``: on a LAN most of a conversation is within a millisecond."""
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.3f} s"


@dataclass(frozen=True)
class Arrow:
    """One packet: from one lane to another (or back to itself), what it was, and when."""

    sender: int  # lane index
    receiver: int
    seconds: float  # since the ladder's first packet
    label: str  # "SYN", "PSH, ACK len 12", "ICMP port unreachable"
    detail: str = ""  # "quotes UDP ...", "seq 1:13 ack 1"
    kind: str = "tcp"  # tcp, udp, icmp, arp: the drawing's colour
    note: str = ""  # "retransmission, +1.00 s after the first", "duplicate ACK"
    captures: tuple[str, ...] = ()  # which captures saw it
    short: str = ""  # the label in a word or two, for the one-line summary ("ARP request")

    @property
    def time(self) -> str:
        return "+" + span(self.seconds)

    @property
    def text(self) -> str:
        """The whole row in words, for a screen reader and a tooltip."""
        parts = [self.time, self.label] + [part for part in (self.detail, self.note) if part]
        return " · ".join(parts)


@dataclass(frozen=True)
class Ladder:
    lanes: tuple[Lane, ...]
    arrows: tuple[Arrow, ...]
    more: int = 0  # packets not drawn past MAX_ROWS
    started: float = 0.0  # the first packet's time (seconds since the epoch)
    notes: tuple[str, ...] = ()  # what a reader might otherwise misread (segments longer than the MTU)
    among: tuple[str, ...] = ()  # what is special among the packets not drawn: "3 retransmissions", ...

    @property
    def total(self) -> int:
        return len(self.arrows) + self.more

    @property
    def summary(self) -> str:
        """``SYN → RST, ACK``: the first few labels, for the details' summary line."""
        labels = [arrow.short or arrow.label for arrow in self.arrows[:4]]
        return " → ".join(labels) + (" → …" if self.total > 4 else "")


def build(found: Sequence[Sighting], directory: Directory, first_lane: str | None = None,
          limit: int = MAX_ROWS) -> Ladder:
    """The ladder of a check's sightings: lanes for the hosts involved, an arrow per packet (``limit`` at most).

    ``first_lane`` (the check's host) is drawn leftmost, where a reader
    expects the client; other lanes follow in the order packets reach them.
    """
    if not found:
        return Ladder((), ())
    ends = [_ends(s, directory) for s in found]
    split = {sender[0] for sender, receiver in ends
             if sender[0] == receiver[0] and sender[1] is not None and receiver[1] is not None
             and sender[1] != receiver[1]}  # hosts talking to themselves: a lane per socket
    keyed: list[tuple[tuple[str, int | None], tuple[str, int | None]]] = []
    for (sender, receiver), sighting in zip(ends, found, strict=True):
        keyed.append(_lane_keys(sender, receiver, sighting.packet, split))
    order: list[tuple[str, int | None]] = []
    if first_lane is not None:
        order.extend(key for pair in keyed for key in pair if key[0] == first_lane and key not in order)
    for pair in keyed:
        order.extend(key for key in pair if key not in order)
    addresses: dict[tuple[str, int | None], list[str]] = {key: [] for key in order}
    known_hosts = set(directory.owners.values()) | {copy.host for s in found for copy in s.copies}
    for (sender, receiver), sighting in zip(keyed, found, strict=True):
        packet = sighting.packet
        for key, address in ((sender, packet.src), (receiver, packet.dst)):
            if key[0] != address and unicast(address) and address not in addresses[key]:
                addresses[key].append(address)
    groups = {s.packet.dst: "multicast group" if multicast(s.packet.dst) else "broadcast" for s in found
              if s.packet.proto != "arp" and (multicast(s.packet.dst) or s.packet.dst_mac == BROADCAST)}
    lanes = tuple(Lane(host, port, host in known_hosts, tuple(addresses[(host, port)]), groups.get(host, ""))
                  for host, port in order)
    start = found[0].time
    arrows: list[Arrow] = []
    hidden: dict[str, int] = {}  # what the packets past the limit are, by the kind of note they have
    isn: dict[tuple[object, ...], int] = {}
    history: dict[tuple[object, ...], list[tuple[int, int, float]]] = {}
    acks: dict[tuple[object, ...], tuple[int | None, int | None]] = {}
    for row, ((sender, receiver), sighting) in enumerate(zip(keyed, found, strict=True)):
        packet = sighting.packet
        label, detail, kind = describe(packet, isn)
        note = _resend(packet, sighting.time, history, acks, isn)
        if row >= limit:  # not drawn, but what it was still counts
            if note:
                kind_of = note.partition(",")[0].partition(":")[0]
                hidden[kind_of] = hidden.get(kind_of, 0) + 1
            continue
        if packet.quoted is not None and sender == receiver:
            note = note or "from the host's own kernel, to its own socket"
        arrows.append(Arrow(order.index(sender), order.index(receiver), sighting.time - start, label, detail, kind,
                            note, sighting.captures, _short(packet)))
    longest = max((s.packet.length for s in found if s.packet.proto == "tcp"), default=0)
    notes = (OFFLOADED.format(longest),) if longest > MTU_PAYLOAD else ()
    among = tuple(f"{count} {NAMES.get(what, (what, what + 's'))[count != 1]}" for what, count in hidden.items())
    return Ladder(lanes, tuple(arrows), max(0, len(found) - limit), start, notes, among)


NAMES = {  # a note's first words -> what one, and several, are called in "… and 60 more, among them ..."
    "the keep-alive's answer": ("keep-alive answer", "keep-alive answers"),
    "asked again": ("ARP request asked again", "ARP requests asked again"),
    "from the host's own kernel": ("error from the host's own kernel", "errors from the host's own kernel"),
}


def _short(packet: Packet) -> str:
    """The label in a word or two, for the one-line summary; "" where the label is short already."""
    if packet.fragment:
        return "fragment"
    if packet.proto == "arp":
        return "ARP reply" if packet.reply else "ARP request"
    if packet.proto == "icmp6" and packet.target is not None:
        return "neighbor advertisement" if packet.icmp_type == 136 else "neighbor solicitation"
    return ""


def _ends(sighting: Sighting, directory: Directory) -> tuple[tuple[str, int | None], tuple[str, int | None]]:
    """The packet's sender and receiver: (host or address, port)."""
    packet, copies = sighting.packet, sighting.copies
    sender = directory.owner(packet.src, copies, sender=True) or packet.src
    asking = (packet.proto == "arp" and not packet.reply and packet.dst_mac in (BROADCAST, None)) or (
        packet.icmp_type == 135 and packet.proto == "icmp6" and multicast(packet.dst))
    if asking:  # a broadcast (or multicast) question: drawn to whoever has the address asked about
        receiver = directory.owners.get(packet.target or "") or packet.target or packet.dst
    else:
        receiver = directory.owner(packet.dst, copies, sender=False) or packet.dst
    return (sender, packet.sport), (receiver, packet.dport)


def _lane_keys(sender: tuple[str, int | None], receiver: tuple[str, int | None], packet: Packet,
               split: set[str]) -> tuple[tuple[str, int | None], tuple[str, int | None]]:
    """Lanes by host; by socket for a host that talks to itself. An ICMP error goes from the quoted
    packet's receiver to its sender."""
    quoted = packet.quoted
    if sender[0] in split and quoted is not None and quoted.dport is not None:
        sender = (sender[0], quoted.dport)
    elif sender[0] not in split:
        sender = (sender[0], None)
    if receiver[0] in split and quoted is not None and quoted.sport is not None:
        receiver = (receiver[0], quoted.sport)
    elif receiver[0] not in split:
        receiver = (receiver[0], None)
    return sender, receiver


def describe(packet: Packet, isn: dict[tuple[object, ...], int] | None = None) -> tuple[str, str, str]:
    """The arrow's label, its detail line and its kind: ``("PSH, ACK len 12", "seq 1:13 ack 1", "tcp")``.

    Sequence numbers are relative, as Wireshark shows them: each direction's
    first sequence number seen (its SYN's, usually) counts as 0.
    """
    isn = {} if isn is None else isn
    if packet.fragment:  # a later fragment: bytes of the datagram, no transport header
        last = packet.fragment + packet.carried - 1
        more = "more follow" if packet.more_fragments else "the last"
        return (f"IP fragment, bytes {packet.fragment}–{last}", f"of {packet.proto.upper()} {_ports(packet)}, {more}",
                "tcp" if packet.proto == "tcp" else "udp")
    label, detail, kind = _describe_whole(packet, isn)
    if packet.fragment == 0:
        detail += f" · IP fragment, bytes 0–{packet.carried - 1}, more follow"
    group = _group_frame(packet)
    if group:
        detail += f" · {group}"
    return label, detail, kind


def _group_frame(packet: Packet) -> str:
    """For a datagram to a group (broadcast or multicast), the frame's destination and the hop limit."""
    if packet.proto not in ("udp", "icmp", "icmp6") or packet.target is not None:
        return ""
    if not (multicast(packet.dst) or packet.dst_mac == BROADCAST):
        return ""
    hops = f", {'TTL' if ':' not in packet.dst else 'hop limit'} {packet.ttl}" if packet.ttl is not None else ""
    return f"frame to {packet.dst_mac}{hops}" if packet.dst_mac else hops.lstrip(", ")


def _describe_whole(packet: Packet, isn: dict[tuple[object, ...], int]) -> tuple[str, str, str]:
    if packet.proto == "tcp":
        label = ", ".join(packet.flags) or "TCP (no flags)"
        if packet.length:
            label += f" len {packet.length}"
        forward = (packet.src, packet.sport, packet.dst, packet.dport)
        backward = (packet.dst, packet.dport, packet.src, packet.sport)
        seq = packet.seq or 0
        base = isn.setdefault(forward, seq)
        detail = f"{_ports(packet)} seq {(seq - base) % 2**32}"
        if packet.length:
            detail += f":{(seq - base + packet.length) % 2**32}"
        if packet.ack is not None:
            peer = isn.get(backward)
            detail += f" ack {(packet.ack - peer) % 2**32}" if peer is not None else f" ack {packet.ack}"
        return label, detail, "rst" if "RST" in packet.flags else "tcp"
    if packet.proto == "udp":
        return f"UDP len {packet.length}", _ports(packet), "udp"
    if packet.proto == "arp":
        if packet.reply:
            return f"ARP reply: {packet.target} is at {packet.src_mac}", "", "arp"
        broadcast = " (broadcast)" if packet.dst_mac in (BROADCAST, None) else ""
        return f"ARP who has {packet.target}?{broadcast}", f"tell {packet.src}", "arp"
    family = "ICMP" if packet.proto == "icmp" else "ICMPv6"
    if packet.quoted is not None:
        return f"{family} {packet.icmp_name}", f"quotes {packet.quoted}", "icmp"
    if packet.target is not None:
        what = f"who has {packet.target}?" if packet.icmp_type == 135 else f"{packet.target} is here"
        return f"{family} {packet.icmp_name}: {what}", "", "arp"
    return f"{family} {packet.icmp_name}", "", "icmp"


def _ports(packet: Packet) -> str:
    """``:41234 → :65432``: which sockets, since the lanes are hosts."""
    return f":{packet.sport} → :{packet.dport}"


def _resend(packet: Packet, moment: float, history: dict[tuple[object, ...], list[tuple[int, int, float]]],
            acks: dict[tuple[object, ...], tuple[int | None, int | None]], isn: dict[tuple[object, ...], int]) -> str:
    """What is special about a packet given those before it: a retransmission, a duplicate ACK, a window.

    A TCP segment whose bytes (or SYN, or FIN) were all sent before is a
    retransmission, ``+1.00 s`` after their first sending; a bare ACK that
    repeats the last one is a duplicate ACK, or a window update if only the
    window changed; a zero window is said so. An ARP request repeated is
    said so too. ``history`` and ``acks`` remember what went before.
    """
    if packet.proto == "arp" and not packet.reply:
        asked = history.setdefault(("arp", packet.src, packet.target), [])
        asked.append((0, 0, moment))
        return f"asked again, +{span(moment - asked[0][2])} after the first" if len(asked) > 1 else ""
    if packet.proto != "tcp" or packet.seq is None or packet.fragment is not None:
        return ""
    flow = (packet.src, packet.sport, packet.dst, packet.dport)
    zero = "zero window: the receiver's buffer is full" if packet.window == 0 and "RST" not in packet.flags else ""
    extent = packet.length + ("SYN" in packet.flags) + ("FIN" in packet.flags)  # SYN and FIN count one each
    if extent:
        sent = history.setdefault(flow, [])
        first = isn.setdefault(flow, packet.seq)
        start, end = (packet.seq - first) % 2**32, (packet.seq - first + extent) % 2**32
        earlier = [when for low, high, when in sent if low <= start < high]
        covered = max((high for _, high, _ in sent), default=0) >= end and earlier
        sent.append((start, end, moment))
        if covered:
            return f"retransmission, +{span(moment - min(earlier))} after the first"
        return zero
    if packet.flags == ("ACK",):
        sent = history.get(flow, [])
        if sent and (packet.seq - isn.get(flow, packet.seq) + 1) % 2**32 == max(high for _, high, _ in sent):
            history.setdefault(("keepalive", *flow), []).append((0, 0, moment))
            return "keep-alive probe: an old sequence number, which the peer must answer"
        before = acks.get(flow)
        acks[flow] = (packet.ack, packet.window)
        probed = history.get(("keepalive", packet.dst, packet.dport, packet.src, packet.sport))
        if probed and moment - probed[-1][2] < 1:
            probed.clear()
            return "the keep-alive's answer"
        if before is not None and before[0] == packet.ack:
            return "duplicate ACK" if before[1] == packet.window else zero or "window update"
    return zero


def ladders(checks: Sequence[CheckResult], hosts: HostAddresses,
            packets: Sequence[Packet]) -> list[Ladder | None]:
    """Every check's ladder (None for a check that was not timed), from a scenario's packets."""
    directory = Directory(hosts, packets)
    return [None if found is None else build(found, directory, check.host)
            for check, found in zip(checks, attribute(checks, hosts, packets, directory), strict=True)]
