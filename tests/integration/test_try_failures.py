"""The `try` texts of the lessons on failures a client sees, run as written (tests/tries.py)."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.tries import Said, TrySession

# One line of `tcpdump -nn -tt`: time, source, destination, and what follows (flags, ICMP words, ...).
IPV4_PACKET = re.compile(r"^(?P<time>\d+\.\d+) IP (?P<src>\d+\.\d+\.\d+\.\d+)(?:\.(?P<sport>\d+))? > "
                         r"(?P<dst>\d+\.\d+\.\d+\.\d+)(?:\.(?P<dport>\d+))?: (?P<rest>.*)$")
ARP_REQUEST = re.compile(r"^(?P<time>\d+\.\d+) ARP, Request who-has (?P<target>[\d.]+) tell (?P<asker>[\d.]+)")


def read_pcap(path: Path) -> list[str]:
    """The packets of a capture, one line each, with times in seconds (`tcpdump -nn -tt -r`)."""
    assert path.is_file(), f"no capture at {path}"
    done = subprocess.run(["tcpdump", "-nn", "-tt", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def ipv4(lines: list[str]) -> list[re.Match[str]]:
    return [found for line in lines if (found := IPV4_PACKET.match(line))]


def flags(packet: re.Match[str]) -> str:
    """A TCP segment's flags as tcpdump prints them (``S``, ``S.``, ``F.``, ``R``, ``P.``), or ''."""
    found = re.match(r"Flags \[([^\]]*)\]", packet["rest"])
    return found.group(1) if found else ""


def host_address(up: Said, host: str, network: str = "lan") -> str:
    """A host's IPv4 address on a network, from the table `invoke up` prints."""
    found = re.search(rf"│ {host}\s*│ {network}\s*│ (198\.(?:18|19)\.\d+\.\d+)", up.stdout)
    assert found, up
    return found.group(1)


# -- addr-in-use ------------------------------------------------------------------


@pytest.mark.tries("addr-in-use", "invoke up addr-in-use",
                   "invoke exec client -- python3 -m nodes.timewait client --to server:65433",
                   "invoke exec server -- ss -tanp state time-wait",
                   "invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65433",
                   "invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65433 --reuse-addr")
def test_addr_in_use_time_wait_holds_the_port_of_a_server_gone(try_text: TrySession) -> None:
    up = try_text("invoke up addr-in-use")
    assert up.exit == 0, up
    server = host_address(up, "server")

    made = try_text("invoke exec client -- python3 -m nodes.timewait client --to server:65433")
    assert made.exit == 0, made
    result = made.json()
    assert result["outcome"] == "echoed" and result["server_closed_first"] is True, made
    client_port = result["local"].rsplit(":", 1)[1]

    waiting = try_text("invoke exec server -- ss -tanp state time-wait")
    assert waiting.exit == 0, waiting
    rows = [line.split() for line in waiting.stdout.splitlines()[1:] if line.strip()]
    held = [row for row in rows if row[2] == f"{server}:65433"]
    assert held, waiting
    assert any(row[3].endswith(f":{client_port}") for row in held), waiting
    assert all(len(row) == 4 for row in held), f"a TIME_WAIT entry names a process:\n{waiting}"  # no Process column

    plain = try_text("invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65433")
    assert plain.exit == 0, plain
    assert (plain.json()["outcome"], plain.json()["errno"]) == ("addr-in-use", "EADDRINUSE"), plain
    reusing = try_text("invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65433 --reuse-addr")
    assert reusing.exit == 0, reusing
    assert reusing.json()["outcome"] == "ok", reusing


# -- backlog --------------------------------------------------------------------------


@pytest.mark.tries("backlog", "invoke up backlog",
                   "invoke exec client -- python3 -m nodes.backlog client --to server:65432",
                   "invoke exec server -- ss -ltn",
                   "invoke exec server -- nstat -az TcpExtListenOverflows")
def test_backlog_accept_queue_and_the_dropped_syns(try_text: TrySession) -> None:
    up = try_text("invoke up backlog")
    assert up.exit == 0, up

    made = try_text("invoke exec client -- python3 -m nodes.backlog client --to server:65432")
    assert made.exit == 0, made
    result = made.json()
    assert result["connections"] == 4, made
    assert (result["connected"], result["failed"], result["first_failure"]) == (2, 2, 3), made
    assert result["errors"] == {"timeout": 2}, made

    listening = try_text("invoke exec server -- ss -ltn")
    assert listening.exit == 0, listening
    queues = {row[3]: (int(row[1]), int(row[2])) for row in (line.split() for line in listening.stdout.splitlines())
              if row and row[0] == "LISTEN"}
    assert queues.get("0.0.0.0:65432") == (2, 1), listening  # Recv-Q: the accept queue; Send-Q: the backlog
    assert queues.get("0.0.0.0:65433") == (0, 0), listening  # listen(0), nobody connected yet

    counted = try_text("invoke exec server -- nstat -az TcpExtListenOverflows")
    assert counted.exit == 0, counted
    found = re.search(r"^TcpExtListenOverflows\s+(\d+)", counted.stdout, re.MULTILINE)
    assert found, counted
    assert int(found.group(1)) >= 2, counted  # a SYN of each of the two connections that timed out, at least


# -- peer-close-and-reset ---------------------------------------------------------------


@pytest.mark.tries("peer-close-and-reset", "invoke run peer-close-and-reset --capture",
                   "invoke up peer-close-and-reset",
                   "invoke exec client -- python3 -m nodes.peerclose client --to server:65432 "
                   "--steps send,recv,wait --timeout 10",
                   "invoke exec server -- ss -tanp state fin-wait-2")
def test_peer_close_and_reset_fin_rst_and_what_the_kernel_keeps(try_text: TrySession) -> None:
    ran = try_text("invoke run peer-close-and-reset --capture")
    assert ran.exit == 0, ran
    capture = try_text.cwd / "results" / "latest" / "captures" / "peer-close-and-reset" / "server-eth0.pcap"
    packets = ipv4(read_pcap(capture))
    by_connection: dict[tuple[str, str], list[re.Match[str]]] = {}
    for packet in packets:
        if packet["sport"] in ("65432", "65433", "65434"):
            by_connection.setdefault((packet["sport"], packet["dport"]), []).append(packet)
        elif packet["dport"] in ("65432", "65433", "65434"):
            by_connection.setdefault((packet["dport"], packet["sport"]), []).append(packet)

    def from_server(packet: re.Match[str], port: str) -> bool:
        return packet["sport"] == port

    # the close server: a FIN; in the broken-pipe connection the client's data comes after it, and a RST answers
    closing = [seen for (port, _), seen in by_connection.items() if port == "65432"]
    assert len(closing) >= 3, packets  # three checks talk to it
    for seen in closing:
        assert any(from_server(p, "65432") and "F" in flags(p) for p in seen), seen
    broken = []
    for seen in closing:
        fin = next(i for i, p in enumerate(seen) if from_server(p, "65432") and "F" in flags(p))
        data_after = [i for i, p in enumerate(seen[fin:], fin)
                      if not from_server(p, "65432") and re.search(r"length [1-9]", p["rest"])]
        resets = [i for i, p in enumerate(seen) if from_server(p, "65432") and "R" in flags(p)]
        if data_after and resets and resets[0] > data_after[0]:
            broken.append(seen)
    assert broken, f"no connection to the close server shows FIN, then the client's data, then a RST: {closing}"

    # the unread and the abort servers: a RST, and no FIN from the server at all
    for port in ("65433", "65434"):
        ended = [seen for (p, _), seen in by_connection.items() if p == port]
        assert ended, packets
        for seen in ended:
            assert any(from_server(p, port) and "R" in flags(p) for p in seen), seen
            assert not any(from_server(p, port) and "F" in flags(p) for p in seen), seen

    # what the server's kernel keeps after close(): its end, in FIN-WAIT-2, no process's any more
    up = try_text("invoke up peer-close-and-reset")
    assert up.exit == 0, up
    server = host_address(up, "server")
    waiting = try_text.start("invoke exec client -- python3 -m nodes.peerclose client --to server:65432 "
                             "--steps send,recv,wait --timeout 10")
    kept: list[list[str]] = []
    deadline = time.monotonic() + 30
    while not kept and time.monotonic() < deadline and waiting.process.poll() is None:
        listed = try_text("invoke exec server -- ss -tanp state fin-wait-2")
        assert listed.exit == 0, listed
        kept = [row for row in (line.split() for line in listed.stdout.splitlines()[1:]) if row
                and row[2] == f"{server}:65432"]
    assert kept, "the server's end of the connection was never seen in FIN-WAIT-2"
    assert all(len(row) == 4 or "users:" not in " ".join(row[4:]) for row in kept), kept  # no process holds it
    result = waiting.wait().json()
    assert [(s["step"], s["outcome"]) for s in result["steps"]] == [("send", "ok"), ("recv", "closed"),
                                                                      ("wait", "timeout")], result
    assert any(row[3] == result["local"] for row in kept), (kept, result)


# -- refused-vs-timeout -------------------------------------------------------------------


def syn_schedule() -> list[float]:
    """When a client's kernel sends a SYN nobody answers, from the first, within 9 s (the DROP check's timeout).

    Linux 6.5 and later wait 1 s ``tcp_syn_linear_timeouts`` + 1 times, then
    double the wait; older kernels double it from the start. The lab's
    hosts share this machine's kernel, and a new network namespace starts
    with the default (4), whatever this machine's own is set to.
    """
    linear = 4 if Path("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").exists() else 0
    times, wait, sent = [0.0], 1.0, 0
    while times[-1] + wait < 9:
        times.append(times[-1] + wait)
        sent += 1
        if sent > linear:
            wait *= 2
    return times


REFUSED_PROBES = (
    "invoke exec client -- python3 -m nodes.probe --proto udp --to server:65435 --connected --family ipv4 --timeout 1",
    "invoke exec client -- python3 -m nodes.probe --proto udp --to server:65437 --connected --family ipv4 --timeout 1",
)
ADMIN_PROHIBITED = ("invoke exec --root server -- iptables -I INPUT -p udp --dport 65437 -j REJECT "
                    "--reject-with icmp-admin-prohibited")


@pytest.mark.tries("refused-vs-timeout", "invoke run refused-vs-timeout --capture", "invoke up refused-vs-timeout",
                   *REFUSED_PROBES, ADMIN_PROHIBITED)
def test_refused_vs_timeout_capture_and_a_hard_icmp_error(try_text: TrySession) -> None:
    ran = try_text("invoke run refused-vs-timeout --capture")
    assert ran.exit == 0, ran
    lines = read_pcap(try_text.cwd / "results" / "latest" / "captures" / "refused-vs-timeout" / "client-eth0.pcap")
    packets = ipv4(lines)
    syns = [p for p in packets if flags(p) == "S"]
    client = next(p["src"] for p in syns if p["dport"] == "65432")
    server = next(p["dst"] for p in syns if p["dport"] == "65432")
    from_client = [p for p in packets if p["src"] == client]
    to_client = [p for p in packets if p["dst"] == client]

    assert any(p["sport"] == "65432" and "R" in flags(p) for p in to_client), lines  # the closed port's RST
    assert any("udp port 65432 unreachable" in p["rest"] for p in to_client), lines
    assert any("tcp port 65434 unreachable" in p["rest"] for p in to_client), lines  # REJECT port-unreachable
    assert any(f"ICMP host {server} unreachable" in p["rest"] for p in to_client), lines
    assert any(p["sport"] == "65436" and "R" in flags(p) for p in to_client), lines  # the forged RST

    # the SYN into the DROP, sent again and again for 9 s, its waits backing off as the text says of this kernel
    dropped = [p for p in from_client if p["dport"] == "65433" and flags(p) == "S"]
    assert len({p["sport"] for p in dropped}) == 1, dropped  # one connection attempt
    times = [float(p["time"]) - float(dropped[0]["time"]) for p in dropped]
    assert times == sorted(times), times
    assert len(times) == len(syn_schedule()), (times, syn_schedule())
    assert all(abs(seen - due) < 0.25 + 0.05 * due for seen, due in zip(times, syn_schedule(), strict=True)), \
        (times, syn_schedule())

    # the three ARP requests of the client for the absent host, one second apart
    asked = [(float(found["time"]), found["target"]) for line in lines
             if (found := ARP_REQUEST.match(line)) and found["asker"] == client]
    targets = Counter(target for _, target in asked if target != server)
    assert targets, lines
    target, count = targets.most_common(1)[0]
    assert count >= 3, lines
    absent = [when for when, asked_for in asked if asked_for == target][:3]
    assert all(0.5 < later - earlier < 2.5 for earlier, later in zip(absent, absent[1:], strict=False)), absent

    # a soft error goes unheard by a connected UDP socket; a hard one is heard
    up = try_text("invoke up refused-vs-timeout")
    assert up.exit == 0, up
    soft = try_text(REFUSED_PROBES[0])
    assert soft.exit == 0, soft
    assert soft.json()["outcome"] == "timeout", soft
    rule = try_text(ADMIN_PROHIBITED)
    assert rule.exit == 0, rule
    hard = try_text(REFUSED_PROBES[1])
    assert hard.exit == 0, hard
    assert (hard.json()["outcome"], hard.json()["errno"]) == ("host-unreachable", "EHOSTUNREACH"), hard
    assert hard.json()["elapsed_ms"] < 500, hard  # at once, not at the end of the second it would wait
