"""Each check's packets, found among a run's captures and drawn as a ladder between the hosts.

The captures are made here (``tests.unit.test_packets`` builds the frames):
each packet between two hosts is written to both hosts' captures, a few
microseconds apart, as tcpdump on each end records it. Checks are
``CheckResult`` records with the evidence the node programs print and the
times the runner records, so the attribution is tested as the report uses it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from socklab import ladder, packets, reports
from socklab.reports import html
from socklab.results import Addresses, CheckResult, RunResult, ScenarioResult
from tests.unit.test_packets import (
    ACK,
    BROADCAST,
    CLIENT,
    CLIENT_MAC,
    FIN,
    PSH,
    RST,
    SERVER,
    SERVER_MAC,
    SYN,
    T0,
    arp,
    ethernet,
    fragments,
    icmp,
    ipv4,
    ipv6,
    pcap,
    tcp,
    udp,
)

CLIENT2 = "198.18.0.4"
CLIENT2_MAC = b"\x02\x42\xc6\x12\x00\x04"
ABSENT = "198.18.0.250"
HOSTS = {
    "server": {"lan": Addresses(SERVER, "fd50:c1ab:0:1::2", "198.18.0.0/24", "fd50:c1ab:0:1::/64")},
    "client": {"lan": Addresses(CLIENT, "fd50:c1ab:0:1::3", "198.18.0.0/24", "fd50:c1ab:0:1::/64")},
    "client2": {"lan": Addresses(CLIENT2, "fd50:c1ab:0:1::4", "198.18.0.0/24", "fd50:c1ab:0:1::/64")},
}
MACS = {CLIENT: CLIENT_MAC, SERVER: SERVER_MAC, CLIENT2: CLIENT2_MAC}


class Wire:
    """A lab's captures as they fill: a packet between two hosts lands on both hosts' eth0."""

    def __init__(self) -> None:
        self.frames: dict[str, list[tuple[float, bytes]]] = {}
        self.ident = 100

    def send(self, at: float, src: str, dst: str, proto: int, payload: bytes, *, only: str | None = None) -> None:
        self.ident += 1
        frame = ethernet(ipv4(src, dst, proto, payload, ident=self.ident), src=MACS[src], dst=MACS.get(dst, BROADCAST))
        for offset, host in enumerate((only,) if only else (_host(src), _host(dst))):
            self.frames.setdefault(f"{host}-eth0", []).append((at + offset * 0.00002, frame))

    def raw(self, capture: str, at: float, frame: bytes) -> None:
        self.frames.setdefault(capture, []).append((at, frame))

    def captures(self) -> dict[str, bytes]:
        return {name: pcap(sorted(frames)) for name, frames in self.frames.items()}

    def packets(self) -> list[packets.Packet]:
        return packets.read_all(self.captures())


def _host(address: str) -> str:
    return {SERVER: "server", CLIENT: "client", CLIENT2: "client2"}[address]


def probe(name: str, host: str, proto: str, target: str, outcome: str, local: str | None, start: float,
          end: float, connected: bool = False) -> CheckResult:
    """A probe's check as the runner records it: the probe's JSON evidence, and when the attempt ran."""
    attempt = {"outcome": outcome, "local": local, "peer": target}
    evidence = {**attempt, "proto": proto, "target": target, "attempts": [attempt]}
    action = f"python3 -m nodes.probe --proto {proto} --to {target}" + (" --connected" if connected else "")
    return CheckResult(name, host, action, outcome, outcome, evidence, started_at=start, ended_at=end)


def labels(drawn: ladder.Ladder | None) -> list[str]:
    assert drawn is not None
    return [arrow.label for arrow in drawn.arrows]


def closed_port_lab(arp_first: bool = False) -> tuple[Wire, list[CheckResult]]:
    """refused-vs-timeout's first checks, side by side: TCP and connected UDP to a closed port from one host,
    unconnected UDP from another; ``arp_first``: the client asks for the server's MAC address first."""
    wire = Wire()
    if arp_first:
        request = ethernet(arp(1, CLIENT_MAC, CLIENT, b"\0" * 6, SERVER), 0x0806, dst=BROADCAST)
        wire.raw("client-eth0", T0 + 0.01, request)
        wire.raw("server-eth0", T0 + 0.01, request)
        reply = ethernet(arp(2, SERVER_MAC, SERVER, CLIENT_MAC, CLIENT), 0x0806, SERVER_MAC, CLIENT_MAC)
        wire.raw("server-eth0", T0 + 0.0101, reply)
        wire.raw("client-eth0", T0 + 0.0102, reply)
    wire.send(T0 + 0.0103, CLIENT, SERVER, 6, tcp(40000, 65432, SYN, seq=5000))
    wire.send(T0 + 0.0104, SERVER, CLIENT, 6, tcp(65432, 40000, RST | ACK, ack=5001))
    datagram = ipv4(CLIENT, SERVER, 17, udp(41234, 65432, b"ping"))
    wire.send(T0 + 0.0105, CLIENT, SERVER, 17, udp(41234, 65432, b"ping"))
    wire.send(T0 + 0.0106, SERVER, CLIENT, 1, icmp(3, 3, datagram[:28]))
    datagram2 = ipv4(CLIENT2, SERVER, 17, udp(50000, 65432, b"ping"))
    wire.send(T0 + 0.0107, CLIENT2, SERVER, 17, udp(50000, 65432, b"ping"))
    wire.send(T0 + 0.0108, SERVER, CLIENT2, 1, icmp(3, 3, datagram2[:28]))
    target = f"{SERVER}:65432"
    checks = [probe("closed port, TCP", "client", "tcp", target, "refused", None, T0, T0 + 0.5),
              probe("closed port, connected UDP", "client", "udp", target, "refused", f"{CLIENT}:41234", T0,
                    T0 + 0.5, connected=True),
              probe("closed port, unconnected UDP", "client2", "udp", target, "timeout", "0.0.0.0:50000", T0, T0 + 1)]
    return wire, checks


def test_checks_side_by_side_each_get_their_own_packets_once() -> None:
    wire, checks = closed_port_lab()
    tcp_check, connected, unconnected = ladder.ladders(checks, HOSTS, wire.packets())
    assert labels(tcp_check) == ["SYN", "RST, ACK"]  # not the UDP datagram to the same port, nor its ICMP error
    assert labels(connected) == ["UDP len 4", "ICMP port unreachable"]
    assert labels(unconnected) == ["UDP len 4", "ICMP port unreachable"]
    assert connected is not None and unconnected is not None and tcp_check is not None
    assert connected.arrows[1].detail == f"quotes UDP {CLIENT}:41234 → {SERVER}:65432"
    assert unconnected.arrows[1].detail == f"quotes UDP {CLIENT2}:50000 → {SERVER}:65432"
    assert [lane.name for lane in tcp_check.lanes] == ["client", "server"]
    assert [lane.name for lane in unconnected.lanes] == ["client2", "server"]
    assert [lane.note for lane in tcp_check.lanes] == [CLIENT, SERVER]
    syn, rst = tcp_check.arrows
    assert (syn.sender, syn.receiver, rst.sender, rst.receiver) == (0, 1, 1, 0)  # client -> server, and back
    assert syn.captures == ("client-eth0", "server-eth0")  # seen on both ends, drawn once
    assert syn.detail == ":40000 → :65432 seq 0" and rst.detail == ":65432 → :40000 seq 0 ack 1"
    assert syn.time == "+0.00 ms" and rst.time == "+0.10 ms"


def test_the_arp_exchange_goes_to_the_attempts_that_waited_for_it() -> None:
    wire, checks = closed_port_lab(arp_first=True)
    late = probe("the next check", "client", "tcp", f"{SERVER}:65432", "refused", None, T0 + 0.5, T0 + 0.6)
    wire.send(T0 + 0.52, CLIENT, SERVER, 6, tcp(40002, 65432, SYN, seq=1))  # within the first one's margin too
    wire.send(T0 + 0.5201, SERVER, CLIENT, 6, tcp(65432, 40002, RST | ACK, ack=2))
    first, second, other, later = ladder.ladders([*checks, late], HOSTS, wire.packets())
    arp_labels = [f"ARP who has {SERVER}? (broadcast)", f"ARP reply: {SERVER} is at 02:42:c6:12:00:02"]
    assert labels(first) == [*arp_labels, "SYN", "RST, ACK"]  # both waited for the answer
    assert labels(second) == [*arp_labels, "UDP len 4", "ICMP port unreachable"]
    assert labels(other) == ["UDP len 4", "ICMP port unreachable"]  # another host: another ARP cache
    assert labels(later) == ["SYN", "RST, ACK"]  # the address was known by then
    assert first is not None and first.summary == "ARP request → ARP reply → SYN → RST, ACK"


def test_only_what_starts_within_the_window_counts_and_an_untimed_check_has_no_ladder() -> None:
    wire, checks = closed_port_lab()
    earlier = CheckResult("before", "client", f"python3 -m nodes.probe --proto tcp --to {SERVER}:65432", "refused",
                          "refused", {"proto": "tcp", "peer": f"{SERVER}:65432"}, started_at=T0 - 5, ended_at=T0 - 4)
    untimed = CheckResult("not run", "client", "(not run)", "echoed", "not-run")
    drawn = ladder.ladders([earlier, untimed, *checks], HOSTS, wire.packets())
    assert drawn[0] is not None and drawn[0].arrows == () and drawn[1] is None
    assert labels(drawn[2]) == ["SYN", "RST, ACK"]


def test_a_handshake_data_and_close_with_relative_sequence_numbers() -> None:
    wire = Wire()
    steps = [(CLIENT, SERVER, tcp(41000, 7, SYN, seq=1000)), (SERVER, CLIENT, tcp(7, 41000, SYN | ACK, 9000, 1001)),
             (CLIENT, SERVER, tcp(41000, 7, ACK, 1001, 9001)),
             (CLIENT, SERVER, tcp(41000, 7, PSH | ACK, 1001, 9001, b"Hello, world")),
             (SERVER, CLIENT, tcp(7, 41000, ACK, 9001, 1013)),
             (SERVER, CLIENT, tcp(7, 41000, PSH | ACK, 9001, 1013, b"Hello, world")),
             (CLIENT, SERVER, tcp(41000, 7, FIN | ACK, 1013, 9013)),
             (SERVER, CLIENT, tcp(7, 41000, FIN | ACK, 9013, 1014)),
             (CLIENT, SERVER, tcp(41000, 7, ACK, 1014, 9014))]
    for index, (src, dst, segment) in enumerate(steps):
        wire.send(T0 + 0.001 * index, src, dst, 6, segment)
    check = probe("echo", "client", "tcp", f"{SERVER}:7", "echoed", f"{CLIENT}:41000", T0 - 0.01, T0 + 0.1)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert labels(drawn) == ["SYN", "SYN, ACK", "ACK", "PSH, ACK len 12", "ACK", "PSH, ACK len 12", "FIN, ACK",
                             "FIN, ACK", "ACK"]
    assert drawn is not None
    assert [a.detail.split(" ", 3)[-1] for a in drawn.arrows] == [
        "seq 0", "seq 0 ack 1", "seq 1 ack 1", "seq 1:13 ack 1", "seq 1 ack 13", "seq 1:13 ack 13", "seq 13 ack 13",
        "seq 13 ack 14", "seq 14 ack 14"]
    assert all(not arrow.note for arrow in drawn.arrows)


def test_retransmissions_are_marked_with_their_delay() -> None:
    wire = Wire()
    for delay in (0.0, 1.0, 3.0):  # the SYN into a DROP: again after 1 s, then 2 s more
        wire.send(T0 + delay, CLIENT, SERVER, 6, tcp(42000, 65433, SYN, seq=77), only="client")
    wire.send(T0 + 4, CLIENT, SERVER, 6, tcp(42000, 65433, PSH | ACK, 78, 1, b"x" * 100), only="client")
    wire.send(T0 + 4.2, CLIENT, SERVER, 6, tcp(42000, 65433, PSH | ACK, 128, 1, b"x" * 50), only="client")  # a tail
    check = probe("DROP", "client", "tcp", f"{SERVER}:65433", "timeout", None, T0 - 0.01, T0 + 5)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert drawn is not None
    assert [a.note for a in drawn.arrows] == ["", "retransmission, +1.000 s after the first",
                                              "retransmission, +3.000 s after the first", "",
                                              "retransmission, +200.00 ms after the first"]
    assert [a.time for a in drawn.arrows] == ["+0.00 ms", "+1.000 s", "+3.000 s", "+4.000 s", "+4.200 s"]


def test_a_duplicate_ack_a_window_update_and_a_zero_window() -> None:
    wire = Wire()
    for index, window in enumerate((500, 500, 0, 300)):
        wire.send(T0 + 0.01 * index, SERVER, CLIENT, 6, tcp(7, 41000, ACK, 1, 1000, window=window), only="client")
    check = probe("slow", "client", "tcp", f"{SERVER}:7", "echoed", f"{CLIENT}:41000", T0 - 0.01, T0 + 1)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert drawn is not None
    assert [a.note for a in drawn.arrows] == ["", "duplicate ACK", "zero window: the receiver's buffer is full",
                                              "window update"]


def test_loopback_traffic_draws_one_lane_per_socket_of_the_host() -> None:
    wire = Wire()
    lo = [(tcp(57054, 65432, SYN, 1), "127.0.0.1"), (tcp(65432, 57054, SYN | ACK, 5, 2), "127.0.0.1")]
    for index, (segment, address) in enumerate(lo):
        frame = ethernet(ipv4(address, address, 6, segment), src=b"\0" * 6, dst=b"\0" * 6)
        wire.raw("server-lo", T0 + 0.001 * index, frame)
        wire.raw("client-lo", T0 + 0.001 * index, frame)  # the same ports on another host: not this check's
    datagram = ipv4(SERVER, SERVER, 17, udp(43000, 65401, b"hi"))
    wire.raw("server-lo", T0 + 0.01, ethernet(datagram, src=b"\0" * 6, dst=b"\0" * 6))
    wire.raw("server-lo", T0 + 0.011, ethernet(ipv4(SERVER, SERVER, 1, icmp(3, 3, datagram[:28])), src=b"\0" * 6,
                                               dst=b"\0" * 6))
    own = probe("its own host", "server", "tcp", "127.0.0.1:65432", "echoed", "127.0.0.1:57054", T0 - 0.01, T0 + 0.1)
    miss = probe("its own LAN address, UDP", "server", "udp", f"{SERVER}:65401", "refused", f"{SERVER}:43000",
                 T0 - 0.01, T0 + 0.1)
    tcp_drawn, udp_drawn = ladder.ladders([own, miss], HOSTS, wire.packets())
    assert tcp_drawn is not None and udp_drawn is not None
    assert [lane.name for lane in tcp_drawn.lanes] == ["server :57054", "server :65432"]
    assert [(a.sender, a.receiver) for a in tcp_drawn.arrows] == [(0, 1), (1, 0)]  # once: client-lo's are not it
    assert [lane.name for lane in udp_drawn.lanes] == ["server :43000", "server :65401"]
    assert labels(udp_drawn) == ["UDP len 2", "ICMP port unreachable"]
    assert [(a.sender, a.receiver) for a in udp_drawn.arrows] == [(0, 1), (1, 0)]  # the error, back to the client


def test_an_absent_host_is_asked_for_and_the_clients_own_kernel_answers() -> None:
    wire = Wire()
    request = ethernet(arp(1, CLIENT_MAC, CLIENT, b"\0" * 6, ABSENT), 0x0806, dst=BROADCAST)
    for second in range(3):
        wire.raw("client-eth0", T0 + second, request)
        wire.raw("server-eth0", T0 + second + 0.00003, request)
    syn = ipv4(CLIENT, ABSENT, 6, tcp(40914, 65432, SYN))
    wire.raw("client-lo", T0 + 3.05, ethernet(ipv4(CLIENT, CLIENT, 1, icmp(3, 1, syn)), src=b"\0" * 6, dst=b"\0" * 6))
    check = probe("absent host, TCP", "client", "tcp", f"{ABSENT}:65432", "host-unreachable", None, T0 - 0.05,
                  T0 + 3.06)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert drawn is not None
    assert [lane.name for lane in drawn.lanes] == ["client", ABSENT]
    assert [lane.note for lane in drawn.lanes] == [CLIENT, "no lab host"] and not drawn.lanes[1].known
    assert labels(drawn) == [f"ARP who has {ABSENT}? (broadcast)"] * 3 + ["ICMP host unreachable"]
    assert [a.note for a in drawn.arrows] == ["", "asked again, +1.000 s after the first",
                                              "asked again, +2.000 s after the first",
                                              "from the host's own kernel, to its own socket"]
    loop = drawn.arrows[3]
    assert loop.sender == loop.receiver == 0 and loop.detail == f"quotes TCP {CLIENT}:40914 → {ABSENT}:65432"


def test_link_local_addresses_are_named_by_the_mac_addresses_the_hosts_sent_from() -> None:
    wire = Wire()
    wire.send(T0 - 1, CLIENT, SERVER, 17, udp(1, 2, b"learn"))  # each host seen sending from its own address
    wire.send(T0 - 1, SERVER, CLIENT, 17, udp(2, 1, b"learn"))
    for index, (src, dst, sport, dport, mac_src, mac_dst) in enumerate(
            [("fe80::3", "fe80::2", 41000, 7, CLIENT_MAC, SERVER_MAC),
             ("fe80::2", "fe80::3", 7, 41000, SERVER_MAC, CLIENT_MAC)]):
        frame = ethernet(ipv6(src, dst, 6, tcp(sport, dport, SYN if index == 0 else SYN | ACK)), 0x86DD, mac_src,
                         mac_dst)
        wire.raw("client-eth0", T0 + 0.001 * index, frame)
        wire.raw("server-eth0", T0 + 0.001 * index + 0.00001, frame)
    refused = [ethernet(ipv6("fe80::3", "fe80::2", 6, tcp(41001, 9, SYN)), 0x86DD, CLIENT_MAC, SERVER_MAC),
               ethernet(ipv6("fe80::2", "fe80::3", 6, tcp(9, 41001, RST | ACK, 0, 1)), 0x86DD, SERVER_MAC, CLIENT_MAC)]
    for index, frame in enumerate(refused):
        wire.raw("client-eth0", T0 + 0.01 + 0.001 * index, frame)
    check = probe("link-local", "client", "tcp", "[fe80::2%eth0]:7", "ok", "[fe80::3%eth0]:41000", T0 - 0.01, T0 + 1)
    closed = probe("link-local, closed", "client", "tcp", "[fe80::2%eth0]:9", "refused", None, T0 - 0.01, T0 + 1)
    drawn, other = ladder.ladders([check, closed], HOSTS, wire.packets())
    assert drawn is not None
    assert [(lane.name, lane.note) for lane in drawn.lanes] == [("client", "fe80::3"), ("server", "fe80::2")]
    assert labels(drawn) == ["SYN", "SYN, ACK"]
    assert labels(other) == ["SYN", "RST, ACK"]  # no local port reported: from the client's own address, by its MAC


def test_a_program_that_reports_no_endpoints_is_found_by_the_address_in_its_command() -> None:
    wire = Wire()
    wire.send(T0, CLIENT, SERVER, 6, tcp(45000, 7, SYN))
    wire.send(T0 + 0.001, SERVER, CLIENT, 6, tcp(7, 45000, RST | ACK, 0, 1))
    check = CheckResult("own client", "client", f"python3 /lab/client.py --to {SERVER}:7", "exit 1", "exit 1",
                        {"exit_code": 1, "stdout": "", "stderr": "refused"}, started_at=T0 - 0.1, ended_at=T0 + 0.1)
    assert labels(ladder.ladders([check], HOSTS, wire.packets())[0]) == ["SYN", "RST, ACK"]
    named = CheckResult("by name", "client", "python3 -m nodes.echo client --to server:7", "refused", "refused", {},
                        started_at=T0 - 0.1, ended_at=T0 + 0.1)
    assert labels(ladder.ladders([named], HOSTS, wire.packets())[0]) == ["SYN", "RST, ACK"]


def test_a_long_transfer_is_cut_after_the_first_forty_packets_and_says_how_many_more() -> None:
    wire = Wire()
    for index in range(100):
        wire.send(T0 + 0.0001 * index, CLIENT, SERVER, 6, tcp(41000, 7, ACK, 1 + 64000 * index, 1, b"x" * 64000))
    for again in (50, 60, 70):  # lost on the way: sent again later
        wire.send(T0 + 0.02 + 0.0001 * again, CLIENT, SERVER, 6, tcp(41000, 7, ACK, 1 + 64000 * again, 1, b"x" * 64000))
    for _ in range(2):
        wire.send(T0 + 0.05, SERVER, CLIENT, 6, tcp(7, 41000, ACK, 1, 1 + 64000 * 50))
    check = probe("bulk", "client", "tcp", f"{SERVER}:7", "echoed", f"{CLIENT}:41000", T0 - 0.01, T0 + 1)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert drawn is not None and len(drawn.arrows) == ladder.MAX_ROWS and drawn.more == 65 and drawn.total == 105
    assert drawn.among == ("3 retransmissions", "1 duplicate ACK")
    assert drawn.notes and "64000 bytes" in drawn.notes[0] and "offload" in drawn.notes[0]


def test_a_datagram_in_fragments_is_drawn_fragment_by_fragment() -> None:
    wire = Wire()
    for index, frame in enumerate(fragments(CLIENT, SERVER, b"x" * 4000, 9)):
        wire.raw("client-eth0", T0 + 0.0001 * index, frame)
    check = probe("big datagram", "client", "udp", f"{SERVER}:65434", "ok", f"{CLIENT}:41000", T0 - 0.01, T0 + 1)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert labels(drawn) == ["UDP len 4000", "IP fragment, bytes 1480–2959", "IP fragment, bytes 2960–4007"]
    assert drawn is not None
    assert [a.detail for a in drawn.arrows] == [":41000 → :65434 · IP fragment, bytes 0–1479, more follow",
                                                "of UDP :41000 → :65434, more follow",
                                                "of UDP :41000 → :65434, the last"]


def test_keepalive_probes_and_their_answers() -> None:
    wire = Wire()
    wire.send(T0, CLIENT, SERVER, 6, tcp(41000, 65432, SYN, seq=100), only="client")
    wire.send(T0 + 0.001, SERVER, CLIENT, 6, tcp(65432, 41000, SYN | ACK, 500, 101), only="client")
    wire.send(T0 + 0.002, CLIENT, SERVER, 6, tcp(41000, 65432, ACK, 101, 501), only="client")
    for second in (1, 2):
        wire.send(T0 + second, CLIENT, SERVER, 6, tcp(41000, 65432, ACK, 100, 501), only="client")
        wire.send(T0 + second + 0.0001, SERVER, CLIENT, 6, tcp(65432, 41000, ACK, 501, 101), only="client")
    check = probe("keepalive", "client", "tcp", f"{SERVER}:65432", "ok", f"{CLIENT}:41000", T0 - 0.01, T0 + 3)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert drawn is not None
    probe_note = "keep-alive probe: an old sequence number, which the peer must answer"
    assert [a.note for a in drawn.arrows] == ["", "", "", probe_note, "the keep-alive's answer", probe_note,
                                              "the keep-alive's answer"]


def test_a_broadcast_goes_to_a_lane_of_its_own_and_says_where_its_frame_went() -> None:
    wire = Wire()
    frame = ethernet(ipv4(CLIENT, "198.18.0.255", 17, udp(41000, 65440, b"who is there?")), dst=BROADCAST)
    wire.raw("client-eth0", T0, frame)
    wire.raw("server-eth0", T0 + 0.00001, frame)
    wire.send(T0 + 0.001, SERVER, CLIENT, 17, udp(65440, 41000, b"server"))
    check = probe("broadcast", "client", "udp", "198.18.0.255:65440", "ok", "0.0.0.0:41000", T0 - 0.01, T0 + 1)
    (drawn,) = ladder.ladders([check], HOSTS, wire.packets())
    assert drawn is not None
    assert [(lane.name, lane.note) for lane in drawn.lanes] == [("client", CLIENT), ("198.18.0.255", "broadcast"),
                                                                ("server", SERVER)]
    assert drawn.arrows[0].detail == ":41000 → :65440 · frame to ff:ff:ff:ff:ff:ff, TTL 64"
    assert (drawn.arrows[1].sender, drawn.arrows[1].receiver) == (2, 0)  # the answer: unicast, back to the client


def test_alike_attempts_side_by_side_both_show_what_either_could_have_sent() -> None:
    """udp-echo's two clients to a port where nobody listens: neither says its local port when refused."""
    wire = Wire()
    for offset, port in ((0.2, 41000), (0.3, 42000)):
        datagram = ipv4(CLIENT, SERVER, 17, udp(port, 65433, b"Hello"))
        wire.send(T0 + offset, CLIENT, SERVER, 17, udp(port, 65433, b"Hello"))
        wire.send(T0 + offset + 0.0001, SERVER, CLIENT, 1, icmp(3, 3, datagram[:28]))
    action = f"python3 -m nodes.udpecho client --to {SERVER}:65433"
    connected = CheckResult("connected", "client", action + " --connected", "refused", "refused", {},
                            started_at=T0, ended_at=T0 + 0.5)
    unconnected = CheckResult("unconnected", "client", action, "timeout", "timeout", {},
                              started_at=T0 + 0.1, ended_at=T0 + 1.3)
    first, second = ladder.ladders([connected, unconnected], HOSTS, wire.packets())
    assert labels(first) == ["UDP len 5", "ICMP port unreachable"] * 2  # either could have sent either
    assert labels(second) == ["UDP len 5", "ICMP port unreachable"] * 2
    connected.ended_at = T0 + 0.25
    later = CheckResult("the next one", "client", action, "timeout", "timeout", {}, started_at=T0 + 0.29,
                        ended_at=T0 + 1.3)
    first, second = ladder.ladders([connected, later], HOSTS, wire.packets())
    assert labels(first) == ["UDP len 5", "ICMP port unreachable"]  # what began after it ended is the next one's
    assert labels(second) == ["UDP len 5", "ICMP port unreachable"]


# -- in report.html ----------------------------------------------------------------------------


def captured_scenario() -> ScenarioResult:
    wire, checks = closed_port_lab()
    unroutable = probe("no route", "client", "tcp", "198.18.9.2:7", "net-unreachable", None, T0 + 2, T0 + 2.1)
    not_run = CheckResult("not run", "client", "(not run)", "echoed", "not-run")
    scenario = ScenarioResult("closed-port", "A closed port", "Failures a client sees", "What a client is told.",
                              hosts=HOSTS, checks=[*checks, unroutable, not_run], captures=wire.captures())
    scenario.conclude()
    return scenario


def test_every_check_of_a_captured_run_has_its_ladder_in_the_report() -> None:
    page = html.render(RunResult([captured_scenario()], "now", 1.0))
    articles = re.findall(r'<article class="check.*?</article>', page, re.S)
    assert len(articles) == 5 and all('<details class="wire">' in article for article in articles)
    tcp_article, udp_article, _, unroutable, not_run = articles
    assert "Packets on the wire (2 packets): SYN → RST, ACK" in tcp_article
    assert [t for t in re.findall(r'<text class="label"[^>]*>([^<]*)</text>', tcp_article)] == ["SYN", "RST, ACK"]
    assert "ICMP port unreachable" in udp_article and f"quotes UDP {CLIENT}:41234 → {SERVER}:65432" in udp_article
    assert "No packet of this attempt was captured" in unroutable
    assert "was not timed" in not_run
    assert page.count('<svg class="ladder"') == 3


def test_a_run_without_captures_shows_no_ladders_and_an_unreadable_capture_says_so() -> None:
    scenario = captured_scenario()
    scenario.captures = {}
    assert 'class="wire"' not in html.render(RunResult([scenario], "now", 1.0))
    scenario.captures = {"server-eth0": b"not a capture, not at all"}
    page = html.render(RunResult([scenario], "now", 1.0))
    assert page.count("The captures could not be read: server-eth0: not a pcap or pcapng file") == 5


def test_labels_fit_between_the_lanes_they_join() -> None:
    for drawn in ladder.ladders(captured_scenario().checks, HOSTS, closed_port_lab()[0].packets()):
        if drawn is None or not drawn.arrows:
            continue
        figure = html.ladder_figure(drawn, "x")
        xs = [spot.x for spot in figure.lanes]
        assert xs == sorted(xs) and figure.width > xs[-1]
        for row in figure.rows:
            room = abs(row.x2 - row.x1)
            assert len(row.arrow.label) * html.LADDER_CHAR < room and len(row.detail) * html.DETAIL_CHAR < room
        assert [row.y for row in figure.rows] == sorted(row.y for row in figure.rows)


def test_the_report_json_keeps_each_checks_times(tmp_path: Path) -> None:
    folder = reports.write(RunResult([captured_scenario()], "now", 1.0), tmp_path / "run", latest=False)
    report = json.loads((folder / "report.json").read_text())
    first = report["scenarios"][0]["checks"][0]
    assert (first["started_at"], first["ended_at"]) == (T0, T0 + 0.5)
    assert report["scenarios"][0]["captures"] == ["captures/closed-port/client-eth0.pcap",
                                                  "captures/closed-port/server-eth0.pcap",
                                                  "captures/closed-port/client2-eth0.pcap"]
