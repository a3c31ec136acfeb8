"""The `try` texts of the binding lessons, run as written (tests/tries.py)."""

from __future__ import annotations

import pytest

from tests.integration.try_lab import addresses, local_addresses, packets, report, until
from tests.tries import TrySession

ECHO_DUAL_STACK = "invoke exec server -- timeout 30 python3 -m nodes.echo serve --bind :: --dual-stack --port 65433"
ECHO_ANY_IPV4 = "invoke exec server -- timeout 30 python3 -m nodes.echo serve --bind '' --port 65433"


@pytest.mark.tries("lan-interface", "invoke up lan-interface", "invoke exec server -- ss -ltn")
def test_lan_interface_listener_is_tied_to_one_address(try_text: TrySession) -> None:
    up = try_text("invoke up lan-interface")
    assert up.exit == 0, up
    server = addresses(up)["server"]["lan"][0]  # in 198.18.0.0/15: 198.18.x.y or 198.19.x.y
    listening = local_addresses(try_text("invoke exec server -- ss -ltn"))
    assert [address for address in listening if address.endswith(":65432")] == [f"{server}:65432"], listening


@pytest.mark.tries("all-interfaces", "invoke up all-interfaces", "invoke exec server -- ss -ltn", ECHO_DUAL_STACK,
                   "invoke exec client -- python3 -m nodes.echo client --to server:65433",
                   "invoke exec server -- python3 -m nodes.echo client --to 127.0.0.1:65433")
def test_all_interfaces_then_a_dual_stack_server_beside_it(try_text: TrySession) -> None:
    up = try_text("invoke up all-interfaces")
    assert up.exit == 0, up
    server_ipv6 = addresses(up)["server"]["lan"][1]
    listening = local_addresses(try_text("invoke exec server -- ss -ltn"))
    assert [address for address in listening if address.endswith(":65432")] == ["0.0.0.0:65432"], listening
    dual = try_text.start(ECHO_DUAL_STACK)
    started = until(lambda: try_text("invoke exec server -- ss -ltn"), lambda said: "*:65433" in said.stdout)
    assert "*:65433" in local_addresses(started), started
    over_ipv6 = try_text("invoke exec client -- python3 -m nodes.echo client --to server:65433")
    assert over_ipv6.json()["outcome"] == "echoed", over_ipv6
    assert over_ipv6.json()["peer"] == f"[{server_ipv6}]:65433", over_ipv6
    over_ipv4 = try_text("invoke exec server -- python3 -m nodes.echo client --to 127.0.0.1:65433")
    assert over_ipv4.json()["outcome"] == "echoed", over_ipv4
    assert over_ipv4.json()["peer"] == "127.0.0.1:65433", over_ipv4
    log = dual.wait(timeout=90)
    assert "[::ffff:127.0.0.1]:" in log.stderr, log
    assert f"[{server_ipv6.rsplit(':', 1)[0]}:" in log.stderr, log  # the IPv6 client, on the same /64


@pytest.mark.tries("loopback-only", "invoke run loopback-only --capture")
def test_loopback_only_capture_shows_the_rst(try_text: TrySession) -> None:
    run = try_text("invoke run loopback-only --capture")
    assert run.exit == 0, run
    hosts = report(try_text)["hosts"]
    server, client = hosts["server"]["lan"]["ipv4"], hosts["client"]["lan"]["ipv4"]
    eth0 = packets(try_text, "loopback-only", "server-eth0.pcap")
    syn = [line for line in eth0 if f" IP {client}." in line and f"> {server}.65432: Flags [S]," in line]
    rst = [line for line in eth0 if f" IP {server}.65432 > {client}." in line and "Flags [R.]" in line]
    assert syn and rst, "\n".join(eth0)
    assert not [line for line in eth0 if "127.0.0.1" in line], "\n".join(eth0)
    lo = packets(try_text, "loopback-only", "server-lo.pcap")
    echo = [line for line in lo if " IP 127.0.0.1.65432 > 127.0.0.1." in line and "length 12" in line]
    assert echo, "\n".join(lo)


@pytest.mark.tries("multi-homed", "invoke up multi-homed", "invoke exec server -- ip route",
                   "invoke exec other -- ip route", ECHO_ANY_IPV4,
                   "invoke exec other -- python3 -m nodes.echo client --to server:65433")
def test_multi_homed_routes_and_a_server_on_every_address(try_text: TrySession) -> None:
    up = try_text("invoke up multi-homed")
    assert up.exit == 0, up
    lan2 = addresses(up)["server"]["lan2"][0]
    server_routes = try_text("invoke exec server -- ip route")
    assert server_routes.exit == 0, server_routes
    routes = server_routes.stdout.splitlines()
    assert len(routes) == 2 and not [r for r in routes if r.startswith("default")], server_routes
    assert {route.split(" dev ")[1].split()[0] for route in routes} == {"eth0", "eth1"}, server_routes
    other_routes = try_text("invoke exec other -- ip route")
    assert other_routes.exit == 0, other_routes
    assert len(other_routes.stdout.splitlines()) == 1 and "default" not in other_routes.stdout, other_routes
    everywhere = try_text.start(ECHO_ANY_IPV4)
    served = until(lambda: try_text("invoke exec other -- python3 -m nodes.echo client --to server:65433"),
                   lambda said: said.exit == 0 and said.json()["outcome"] != "refused")
    assert served.json()["outcome"] == "echoed", served
    assert served.json()["peer"] == f"{lan2}:65433", served
    everywhere.wait(timeout=90)


@pytest.mark.tries("tcp-echo", "invoke run tcp-echo --capture")
def test_tcp_echo_capture_shows_handshake_data_and_fins(try_text: TrySession) -> None:
    run = try_text("invoke run tcp-echo --capture")
    assert run.exit == 0, run
    hosts = report(try_text)["hosts"]
    server, client = hosts["server"]["lan"]["ipv4"], hosts["client"]["lan"]["ipv4"]
    eth0 = packets(try_text, "tcp-echo", "client-eth0.pcap")
    hello = [line for line in eth0 if f" IP {client}." in line and f"> {server}.65432:" in line
             and line.endswith("length 12")]
    assert len(hello) == 1, "\n".join(eth0)
    port = hello[0].split(f" IP {client}.")[1].split()[0]
    outward, back = f" IP {client}.{port} > {server}.65432: ", f" IP {server}.65432 > {client}.{port}: "
    flags = [("out" if outward in line else "back", line.split("Flags [")[1].split("]")[0], line)
             for line in eth0 if outward in line or back in line]
    said = [(way, flag) for way, flag, _ in flags]
    assert said[:3] == [("out", "S"), ("back", "S."), ("out", ".")], "\n".join(line for *_, line in flags)
    assert [line for way, _, line in flags if way == "back" and line.endswith("length 12")], flags
    assert [way for way, flag, _ in flags if "F" in flag and way == "out"], flags
    assert [way for way, flag, _ in flags if "F" in flag and way == "back"], flags
