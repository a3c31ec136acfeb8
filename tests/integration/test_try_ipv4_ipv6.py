"""The `try` texts of the IPv4 and IPv6 lessons, run as written (tests/tries.py)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.integration.try_lab import local_addresses, packets, report, results, until
from tests.tries import TrySession

LOCALHOST_SERVER = "invoke exec server -- timeout 10 python3 -m nodes.echo serve --bind localhost --port 65434"


@pytest.mark.tries("address-matrix", "invoke run address-matrix --capture", "invoke up address-matrix",
                   "invoke exec server -- ss -ltnu")
def test_address_matrix_capture_and_its_listeners(try_text: TrySession) -> None:
    run = try_text("invoke run address-matrix --capture")
    assert run.exit == 0, run
    hosts = report(try_text)["hosts"]
    server, client = hosts["server"]["lan"]["ipv4"], hosts["client"]["lan"]["ipv4"]
    eth0 = packets(try_text, "address-matrix", "client-eth0.pcap")
    rst = [line for line in eth0 if f" IP {server}.65401 > {client}." in line and "Flags [R.]" in line]
    icmp = f" IP {server} > {client}: ICMP {server} udp port 65401 unreachable"
    unreachable = [line for line in eth0 if icmp in line]
    assert rst and unreachable, "\n".join(eth0)

    up = try_text("invoke up address-matrix")
    assert up.exit == 0, up
    listening = local_addresses(try_text("invoke exec server -- ss -ltnu"))
    ours = [address for address in listening if address.rsplit(":", 1)[1] in {str(p) for p in range(65401, 65407)}]
    assert len(ours) == 12, listening
    assert Counter(address.rsplit(":", 1)[1] for address in ours) == {str(p): 2 for p in range(65401, 65407)}
    assert ours.count("*:65404") == 2, listening
    others = [address for address in listening if address not in ours]
    assert len(others) == 2 and all(address.startswith("127.0.0.11:") for address in others), listening


@pytest.mark.tries("dual-stack", "invoke up dual-stack", "invoke exec server -- ss -ltnu", "invoke run dual-stack")
def test_dual_stack_listeners_and_logs(try_text: TrySession) -> None:
    up = try_text("invoke up dual-stack")
    assert up.exit == 0, up
    listening = local_addresses(try_text("invoke exec server -- ss -ltnu"))
    assert [a for a in listening if a.endswith(":65432")] == ["*:65432"] * 2, listening
    assert [a for a in listening if a.endswith(":65433")] == ["[::]:65433"] * 2, listening
    run = try_text("invoke run dual-stack")
    assert run.exit == 0, run
    logs = results(try_text) / "logs" / "dual-stack"
    dual, v6only = (logs / "server.dual-stack.log").read_text(), (logs / "server.v6only.log").read_text()
    assert "listening on tcp [::]:65432 (dual-stack)" in dual and "(IPv6 only)" in v6only, (dual, v6only)
    assert "answered [::ffff:" in dual and "(it reached ::ffff:" in dual, dual
    assert "::ffff:" not in v6only, v6only


@pytest.mark.tries("ipv6-link-local", "invoke up ipv6-link-local", "invoke exec client -- ip -6 address",
                   "invoke exec client -- ip -6 route", "invoke down", "invoke up multi-homed",
                   "invoke exec server -- ip -6 route")
def test_ipv6_link_local_addresses_and_routes(try_text: TrySession) -> None:
    up = try_text("invoke up ipv6-link-local")
    assert up.exit == 0, up
    shown = try_text("invoke exec client -- ip -6 address")
    assert shown.exit == 0, shown
    by_interface: dict[str, list[str]] = {}
    interface = ""
    for line in shown.stdout.splitlines():
        if not line.startswith(" "):
            interface = line.split(":")[1].strip().split("@")[0]
        elif line.strip().startswith("inet6 "):
            by_interface.setdefault(interface, []).append(line.split()[1] + " " + line.split()[3])
    assert by_interface["lo"] == ["::1/128 host"], shown
    eth0 = by_interface["eth0"]
    assert len(eth0) == 2 and [a for a in eth0 if a.startswith("fe80::") and a.endswith("/64 link")], shown
    assert [a for a in eth0 if a.endswith(" global")], shown
    routes = try_text("invoke exec client -- ip -6 route")
    assert [r.split()[2] for r in routes.stdout.splitlines() if r.startswith("fe80::/64")] == ["eth0"], routes
    assert try_text("invoke down").exit == 0
    two = try_text("invoke up multi-homed")
    assert two.exit == 0, two
    routes = try_text("invoke exec server -- ip -6 route")
    assert sorted(r.split()[2] for r in routes.stdout.splitlines() if r.startswith("fe80::/64")) == ["eth0", "eth1"]


@pytest.mark.tries("ipv6-loopback", "invoke up ipv6-loopback", "invoke exec server -- ip address show lo",
                   "invoke exec server -- ss -ltn")
def test_ipv6_loopback_addresses_and_servers(try_text: TrySession) -> None:
    up = try_text("invoke up ipv6-loopback")
    assert up.exit == 0, up
    lo = try_text("invoke exec server -- ip address show lo")
    assert lo.exit == 0 and "inet 127.0.0.1/8 " in lo.stdout and "inet6 ::1/128 " in lo.stdout, lo
    listening = local_addresses(try_text("invoke exec server -- ss -ltn"))
    assert "[::1]:65432" in listening and "127.0.0.1:65433" in listening, listening


@pytest.mark.tries("localhost-resolution", "invoke run localhost-resolution --json", "invoke up localhost-resolution",
                   "invoke exec server -- getent ahosts localhost", "invoke exec server -- getent ahostsv4 localhost",
                   LOCALHOST_SERVER, "invoke exec server -- ss -ltn")
def test_localhost_resolution_order_and_bind(try_text: TrySession) -> None:
    run = try_text("invoke run localhost-resolution --json")
    assert run.exit == 0, run
    (scenario,) = json.loads(run.stdout)["scenarios"]
    first = scenario["checks"][0]
    assert first["name"].startswith("TCP to localhost, server on 127.0.0.1"), first
    tried = [(a["peer"], a["outcome"]) for a in first["evidence"]["attempts"]]
    assert tried[0] == ("[::1]:65432", "refused") and tried[1][0] == "127.0.0.1:65432" and len(tried) == 2, tried
    assert tried[1][1] != "refused", tried

    up = try_text("invoke up localhost-resolution")
    assert up.exit == 0, up
    both = try_text("invoke exec server -- getent ahosts localhost")
    order = [line.split()[0] for line in both.stdout.splitlines() if " STREAM" in line]
    assert order == ["::1", "127.0.0.1"], both
    ipv4 = try_text("invoke exec server -- getent ahostsv4 localhost")
    assert [line.split()[0] for line in ipv4.stdout.splitlines() if " STREAM" in line] == ["127.0.0.1"] * 2, ipv4
    server = try_text.start(LOCALHOST_SERVER)
    bound = until(lambda: try_text("invoke exec server -- ss -ltn"), lambda said: ":65434" in said.stdout)
    assert [a for a in local_addresses(bound) if a.endswith(":65434")] == ["[::1]:65434"], bound
    server.wait(timeout=60)
