"""Which captured packets a check's attempt put on the wire.

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

``socklab.ladder`` draws what this finds.
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


def unicast(address: str) -> bool:
    """An address a host has (not a group, not "unspecified"): worth writing under a lane's name."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (found.is_multicast or found.is_unspecified)


def multicast(address: str) -> bool:
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
