"""Which captured packets a check's attempt put on the wire, as a ladder (sequence) diagram between hosts.

With ``--capture`` each host's interfaces are recorded for the whole run
(``socklab.capture``), and ``socklab.packets`` reads the pcaps back. A
check's packets are found in two steps, because checks may run side by side
(``parallel_checks``) and a time window alone would mix them:

1. **Conversations.** Packets are grouped by flow: a TCP or UDP
   conversation is its two endpoints in either direction; an ICMP error
   belongs to the conversation of the packet it quotes; an ARP or neighbour
   discovery exchange to the address asked about. A packet seen on several
   captures (the client's eth0 and the server's, a router's two
   interfaces) is one *sighting*, shown once.
2. **Attribution.** A check's attempt is known by its host, its time window
   (``CheckResult.started_at`` .. ``ended_at``) and the endpoints the
   client reported (``local``, ``peer``, ``target``, and each of its
   ``attempts``; else the addresses in its command). A conversation that
   starts in the window and holds the attempt's *local* endpoint is the
   attempt's for certain. One that only goes from the check's host to its
   *target* (a refused connect reports no local port) is the attempt's if
   no check claimed it for certain.

The ladder then names each end of each packet by the lab's hosts (their
addresses, or, for link-local and loopback traffic, the capturing host and
the MAC addresses learnt from the captures): one lane per host, or per
socket (``server :65432``, ``server :41000``) when a host talks to itself
over loopback.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from socklab.packets import Flow, Packet
from socklab.results import CheckResult, HostAddresses

SAME_PACKET_SECONDS = 0.25  # one packet on two captures is seen microseconds apart; a resend, 200 ms or more later
BEFORE_START = 0.1  # s: the window opens a little early (two clocks read a moment apart)
FIRST_AFTER_END = 0.05  # s: a conversation of the attempt starts before the client's command returns
TAIL_AFTER_END = 1.0  # s: the last of a conversation (the server's FIN, a late ICMP) may follow the client's exit
RESOLVED_LEAD = 0.05  # s: an attempt that waited for an ARP answer sends its first packet right after it
MAX_ROWS = 40  # arrows drawn per check; a 1 MiB transfer is hundreds of segments: the rest are counted
BROADCAST = "ff:ff:ff:ff:ff:ff"
MTU_PAYLOAD = 1460  # the most TCP payload one 1500-byte Ethernet frame holds
OFFLOADED = ("Segments of up to {} bytes, longer than one 1500-byte frame holds: a capture sees what the kernel "
             "hands the interface, and on a virtual (veth) link nothing cuts large segments into MTU-sized ones "
             "(segmentation offload); on a physical link they would leave as many smaller segments.")

Endpoint = tuple[str, int]
"""An address (as ``ipaddress`` writes it, or ``*`` for any of the host's) and a port."""


# -- sightings: one packet, however many captures saw it -------------------------------


@dataclass
class Sighting:
    """One packet on the wire, with every capture that saw it (the earliest sets its time)."""

    packet: Packet
    copies: list[Packet] = field(default_factory=list)

    @property
    def time(self) -> float:
        return self.packet.time

    @property
    def captures(self) -> tuple[str, ...]:
        return tuple(copy.capture for copy in self.copies)


def sightings(packets: Iterable[Packet]) -> list[Sighting]:
    """Each packet once, in time order: copies of one packet on different captures become one sighting.

    The same packet has the same fingerprint everywhere (addresses, ports,
    flags, sequence numbers, IPv4 identification, checksum) and is seen on
    each capture at most once, within ``SAME_PACKET_SECONDS``; a resent
    packet (an ARP request each second, a SYN again) is a sighting of its own.
    """
    found: list[Sighting] = []
    recent: dict[tuple[object, ...], list[Sighting]] = {}
    for packet in sorted(packets, key=lambda p: p.time):
        fingerprint = packet.fingerprint()
        candidates = [s for s in recent.get(fingerprint, ())
                      if packet.time - s.time <= SAME_PACKET_SECONDS and packet.capture not in s.captures]
        if candidates:
            candidates[-1].copies.append(packet)
            continue
        sighting = Sighting(packet, [packet])
        found.append(sighting)
        recent.setdefault(fingerprint, []).append(sighting)
    return found


# -- conversations ----------------------------------------------------------------------

ConversationKey = tuple[object, ...]


def conversation(packet: Packet) -> ConversationKey:
    """What the packet is part of: a TCP or UDP conversation (either direction), an ICMP error's, an address's."""
    if packet.quoted is not None:
        return _flow_key(packet.quoted)
    if packet.proto in ("tcp", "udp"):
        return _flow_key(packet.flow)
    if packet.target is not None:  # ARP, neighbour discovery: who has the target, asked by whom
        asker = packet.dst if packet.reply or packet.icmp_type == 136 else packet.src
        return ("resolve", packet.target, asker)
    return (packet.proto, frozenset((packet.src, packet.dst)))


def _flow_key(flow: Flow) -> ConversationKey:
    return (flow.proto, frozenset(((flow.src, flow.sport), (flow.dst, flow.dport))))


@dataclass
class Conversation:
    key: ConversationKey
    sightings: list[Sighting] = field(default_factory=list)

    @property
    def proto(self) -> str:
        return str(self.key[0])

    @property
    def first(self) -> float:
        return self.sightings[0].time

    def ends(self) -> list[Endpoint]:
        """Its TCP or UDP endpoints (two), or none for the rest."""
        if self.proto in ("tcp", "udp") and len(self.key) == 2 and isinstance(self.key[1], frozenset):
            return [(str(a), int(p)) for a, p in self.key[1] if p is not None]
        return []


def conversations(found: Iterable[Sighting]) -> list[Conversation]:
    grouped: dict[ConversationKey, Conversation] = {}
    for sighting in found:
        key = conversation(sighting.packet)
        grouped.setdefault(key, Conversation(key)).sightings.append(sighting)
    return list(grouped.values())


# -- what a check's attempt is known by ----------------------------------------------------


ENDPOINT_TEXT = re.compile(r"\[([0-9A-Fa-f:.]+)(?:%[\w.-]+)?\]:(\d+)|\b(\d{1,3}(?:\.\d{1,3}){3}):(\d+)\b")
TO_OPTION = re.compile(r"--(?:to|connect)[= ]'?([\w.-]+):(\d+)")


@dataclass(frozen=True)
class Attempt:
    """A check's attempt as the captures can recognise it: where from, when, which endpoints.

    ``locals`` are the client's own sockets (``*`` for an unbound address:
    any of the host's); ``targets`` what it tried to reach.
    """

    host: str
    started: float
    ended: float
    proto: str | None = None
    locals: frozenset[Endpoint] = frozenset()
    targets: frozenset[Endpoint] = frozenset()

    def opens(self, moment: float) -> bool:
        """Could a conversation of this attempt start at ``moment``?"""
        return self.started - BEFORE_START <= moment <= self.ended + FIRST_AFTER_END

    def holds(self, moment: float) -> bool:
        """Could a packet of this attempt's conversations be seen at ``moment``?"""
        return self.started - BEFORE_START <= moment <= self.ended + TAIL_AFTER_END


def attempt_of(check: CheckResult, hosts: HostAddresses) -> Attempt | None:
    """What is known of the check's attempt; None for a check that was not timed (not run, or an old result)."""
    if not check.started_at or not check.ended_at:
        return None
    evidence = check.evidence
    listed = evidence.get("attempts")
    records = [evidence, *(a for a in (listed if isinstance(listed, list) else []) if isinstance(a, dict))]
    local: set[Endpoint] = set()
    targets: set[Endpoint] = set()
    for record in records:
        local.update(_endpoints(record.get("local"), hosts))
        for key in ("peer", "target"):
            targets.update(_endpoints(record.get(key), hosts))
    targets.update(_endpoints_in(check.action, hosts))
    targets -= local
    return Attempt(check.host, check.started_at, check.ended_at, _proto(evidence, check.action),
                   frozenset(local), frozenset(targets))


def _proto(evidence: Mapping[str, object], action: str) -> str | None:
    proto = evidence.get("proto")
    if proto in ("tcp", "udp"):
        return str(proto)
    found = re.search(r"--proto[= ](tcp|udp)\b", action)
    if found:
        return found.group(1)
    return "udp" if re.search(r"\bnodes\.udp\w*\b|\budpecho\b", action) else None


def _endpoints(text: object, hosts: HostAddresses) -> list[Endpoint]:
    """An endpoint as the node programs print it (``198.18.0.2:9``, ``[fd50::2%eth0]:9``, ``server:9``)."""
    if not isinstance(text, str) or ":" not in text:
        return []
    if text.startswith("["):
        address, _, port = text[1:].partition("]:")
    else:
        address, _, port = text.rpartition(":")
    if not port.isdigit():
        return []
    return [(found, int(port)) for found in _addresses(address, hosts)]


def _endpoints_in(action: str, hosts: HostAddresses) -> list[Endpoint]:
    """The endpoints a command names: literal addresses anywhere, host names after ``--to``."""
    found = [(normal(v6 or v4), int(p6 or p4)) for v6, p6, v4, p4 in ENDPOINT_TEXT.findall(action)]
    for name, port in TO_OPTION.findall(action):
        found.extend((address, int(port)) for address in _addresses(name, hosts))
    return [(address, port) for address, port in found if address]


def _addresses(text: str, hosts: HostAddresses) -> list[str]:
    """An address, a lab host's name (all its addresses), ``localhost``, or an unbound address (``*``)."""
    text = text.partition("%")[0]
    if text in ("", "0.0.0.0", "::", "*"):
        return ["*"]
    if text == "localhost":
        return ["127.0.0.1", "::1"]
    if text in hosts:
        return [normal(address) for interface in hosts[text].values() for address in interface.shown()]
    address = normal(text)
    return [address] if address else []


def normal(text: str) -> str:
    """An address as ``ipaddress`` writes it (an IPv4-mapped IPv6 one as IPv4); "" if it is none."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


# -- who is who ---------------------------------------------------------------------------


class Directory:
    """Which lab host an address in a packet belongs to.

    The lab's own addresses first; loopback traffic belongs to the host whose
    capture saw it; link-local and other addresses the lab does not list, to
    the host whose MAC address the frame carries (learnt from packets each
    host sent from an address of its own, on its own capture).
    """

    def __init__(self, hosts: HostAddresses, packets: Iterable[Packet] = ()) -> None:
        self.owners: dict[str, str] = {}
        for host, interfaces in hosts.items():
            for interface in interfaces.values():
                for address in interface.shown():
                    self.owners.setdefault(normal(address), host)
        self.macs: dict[str, str] = {}
        for packet in packets:
            owner = self.owners.get(packet.src)
            if owner and owner == packet.host and packet.src_mac and packet.src_mac != "00:00:00:00:00:00":
                self.macs.setdefault(packet.src_mac, owner)

    def owner(self, address: str, copies: Sequence[Packet] = (), sender: bool = True) -> str | None:
        """The host of ``address`` as the packet's sender (or receiver), or None if no lab host has it."""
        if address in self.owners:
            return self.owners[address]
        if _loopback(address) and copies:
            return copies[0].host
        for copy in copies:
            mac = copy.src_mac if sender else copy.dst_mac
            if mac and mac in self.macs:
                return self.macs[mac]
        return None


def _unicast(address: str) -> bool:
    """An address a host has (not a group, not "unspecified"): worth writing under a lane's name."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (found.is_multicast or found.is_unspecified)


def _multicast(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_multicast
    except ValueError:
        return False


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# -- attribution --------------------------------------------------------------------------


def attribute(checks: Sequence[CheckResult], hosts: HostAddresses, packets: Sequence[Packet],
              directory: Directory | None = None) -> list[list[Sighting] | None]:
    """For each check, the sightings of the packets its attempt put on the wire (None: it was not timed).

    Conversations holding an attempt's local endpoint are its own; the rest
    go to the attempts from whose host they reach the target (proto
    permitting) and in whose window they start: of several, those that
    were running when it started (the check that ran next, not the one that
    had just ended), or all of them when they all were (side by side and
    alike, either could have sent it: both show it). An ARP or neighbour
    discovery exchange goes to each attempt that waited for it.
    """
    directory = directory or Directory(hosts, packets)
    talks = conversations(sightings(packets))
    attempts = [attempt_of(check, hosts) for check in checks]
    claimed: dict[int, list[int]] = {}  # conversation -> checks, for certain
    for index, attempt in enumerate(attempts):
        if attempt is None:
            continue
        for number, talk in enumerate(talks):
            if _opens_in(talk, attempt) and _holds_local(talk, attempt, directory):
                claimed.setdefault(number, []).append(index)
    for number, talk in enumerate(talks):
        if number in claimed:
            continue
        reaching = [(index, attempt) for index, attempt in enumerate(attempts) if attempt is not None
                    and _opens_in(talk, attempt) and _reaches_target(talk, attempt, directory)]
        if not talk.ends():  # an address resolution: every attempt that waited for it (``_resolving``)
            claimed[number] = [index for index, _ in reaching]
            continue
        running = [index for index, attempt in reaching if attempt.started <= talk.first <= attempt.ended]
        claimed[number] = running or [index for index, _ in reaching]
    found: list[list[Sighting] | None] = []
    for index, attempt in enumerate(attempts):
        if attempt is None:
            found.append(None)
            continue
        mine = [talk for number, talk in enumerate(talks) if index in claimed.get(number, ())]
        picked = [s for talk in mine for s in talk.sightings if attempt.holds(s.time)]
        found.append(sorted(_resolving(picked), key=lambda s: s.time))
    return found


def _resolving(picked: list[Sighting]) -> list[Sighting]:
    """The picked sightings, less the address resolutions the attempt did not wait for.

    Attempts side by side share the neighbour cache: one ARP exchange
    resolves the server for all of them. An attempt waited for it if its
    first packet to that address followed the exchange at once
    (``RESOLVED_LEAD``), or if no answer came (nothing of it could be sent).
    """
    kept = []
    for sighting in picked:
        packet = sighting.packet
        if packet.target is None:
            kept.append(sighting)
            continue
        then = [s.time for s in picked if s.packet.target is None and packet.target in (s.packet.src, s.packet.dst)
                and s.time >= sighting.time]
        answered = any(s.packet.target == packet.target and (s.packet.reply or s.packet.icmp_type == 136)
                       for s in picked)
        if (then and min(then) - sighting.time <= RESOLVED_LEAD) or not (then or answered):
            kept.append(sighting)
    return kept


def _opens_in(talk: Conversation, attempt: Attempt) -> bool:
    return any(attempt.opens(s.time) for s in talk.sightings)


def _proto_fits(talk: Conversation, attempt: Attempt) -> bool:
    return attempt.proto is None or talk.proto not in ("tcp", "udp") or talk.proto == attempt.proto


def _matches(end: Endpoint, wanted: Endpoint, talk: Conversation, host: str, directory: Directory) -> bool:
    """Is ``end`` the endpoint ``wanted`` (an unbound ``*`` address: any of ``host``'s own)?"""
    address, port = wanted
    return end[1] == port and (end[0] == address or (address == "*" and _mine(end[0], talk, host, directory)))


def _mine(address: str, talk: Conversation, host: str, directory: Directory) -> bool:
    """Is ``address`` ``host``'s own, in this conversation?

    A lab address by the lab's table; a loopback address only in a
    conversation captured on ``host`` itself (every host has 127.0.0.1); a
    link-local one by the MAC address it was sent from or to.
    """
    if _loopback(address):
        return any(s.packet.host == host for s in talk.sightings)
    if address in directory.owners:
        return directory.owners[address] == host
    return any(directory.owner(address, s.copies, sender=s.packet.src == address) == host for s in talk.sightings)


def _holds_local(talk: Conversation, attempt: Attempt, directory: Directory) -> bool:
    if not _proto_fits(talk, attempt):
        return False
    return any(_matches(end, local, talk, attempt.host, directory) and (
        not _loopback(end[0]) or _mine(end[0], talk, attempt.host, directory))
        for end in talk.ends() for local in attempt.locals)


def _reaches_target(talk: Conversation, attempt: Attempt, directory: Directory) -> bool:
    if not _proto_fits(talk, attempt):
        return False
    ends = talk.ends()
    if ends:
        return any(any(_matches(theirs, target, talk, attempt.host, directory) for target in attempt.targets)
                   and _mine(ours[0], talk, attempt.host, directory) for ours, theirs in (ends, ends[::-1]))
    if talk.key[0] == "resolve":  # the client asking who has the target's address
        _, asked, asker = talk.key
        return (any(asked == address for address, _ in attempt.targets)
                and directory.owners.get(str(asker)) == attempt.host)
    return False


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
            if key[0] != address and _unicast(address) and address not in addresses[key]:
                addresses[key].append(address)
    groups = {s.packet.dst: "multicast group" if _multicast(s.packet.dst) else "broadcast" for s in found
              if s.packet.proto != "arp" and (_multicast(s.packet.dst) or s.packet.dst_mac == BROADCAST)}
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
        packet.icmp_type == 135 and packet.proto == "icmp6" and _multicast(packet.dst))
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
    if not (_multicast(packet.dst) or packet.dst_mac == BROADCAST):
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
