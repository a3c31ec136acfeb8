"""The UDP limits server and client: sizes, a held buffer that overflows, refusals counted (on loopback)."""

from __future__ import annotations

import json
import socket

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "mode", "target", "peer", "local", "family", "size", "dont_fragment",
        "path_mtu", "server_got", "sent", "send_errors", "received", "lost", "rcvbuf", "rcvbuf_errors", "uncounted",
        "refused", "silent", "first_silent", "rate_after", "answers", "elapsed_ms"}


def control_port(server: Server) -> int:
    return int(server.wait_for_log(r"listening on tcp \S+:(\d+)").group(1))


@pytest.fixture(scope="module")
def server(module_lab: Lab) -> Server:
    return module_lab.start("udplimits", "--bind", "::", "--dual-stack", "--port", "0")


@pytest.fixture(scope="module")
def small(module_lab: Lab) -> Server:
    return module_lab.start("udplimits", "--bind", "127.0.0.1", "--port", "0", "--rcvbuf", "4096")


@pytest.mark.parametrize("host, largest", [("127.0.0.1", 65507), ("[::1]", 65527)])
def test_the_largest_datagram_arrives_whole_and_one_byte_more_is_emsgsize(
    lab: Lab, server: Server, host: str, largest: int
) -> None:
    fits = lab.client("udplimits", "--to", f"{host}:{server.port}", "--size", str(largest))
    assert set(fits) == KEYS
    assert (fits["outcome"], fits["server_got"], fits["sent"], fits["mode"]) == ("ok", largest, 1, "single"), fits
    assert fits["family"] == ("ipv6" if host.startswith("[") else "ipv4")
    server.wait_for_log(rf"received {largest} bytes from ")
    over = call_client("udplimits", "--to", f"{host}:{server.port}", "--size", str(largest + 1))
    assert (over["outcome"], over["errno"], over["sent"], over["send_errors"]) == ("error", "EMSGSIZE", 0, 1), over
    assert over["server_got"] is None


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_dont_fragment_is_bounded_by_the_path_mtu_which_on_loopback_is_64_kib(server: Server, host: str) -> None:
    # Loopback's MTU is 65536: with fragmentation forbidden, a LAN's 1473 bytes still fit here (the lab shows 1500).
    result = call_client("udplimits", "--to", f"{host}:{server.port}", "--size", "1473", "--dont-fragment")
    assert result["outcome"] == "ok" and result["dont_fragment"] and result["server_got"] == 1473, result
    assert result["path_mtu"] > 60000


def test_a_burst_into_a_held_small_buffer_is_mostly_dropped_and_counted(small: Server) -> None:
    result = call_client("udplimits", "--to", small.endpoint(), "--burst", "200", "--size", "1000",
                         "--control-port", str(control_port(small)))
    assert result["outcome"] == "ok" and result["mode"] == "burst", result
    assert (result["sent"], result["send_errors"], result["rcvbuf"]) == (200, 0, 8192), result
    assert 1 <= result["received"] <= 20 and result["lost"] == 200 - result["received"], result
    # /proc/net/snmp counts this machine's whole namespace: other programs' drops may add to ours, never subtract.
    assert result["rcvbuf_errors"] >= result["lost"] and result["uncounted"] <= 0, result
    small.wait_for_log(r"counted \d+ datagrams kept, \d+ dropped")
    again = call_client("udplimits", "--to", small.endpoint(), "--size", "100")  # reading again after the count
    assert again["outcome"] == "ok" and again["server_got"] == 100, again


def test_a_control_connection_that_closes_while_holding_lets_the_server_read_again(small: Server) -> None:
    with socket.create_connection(("127.0.0.1", control_port(small)), 5) as control:
        control.sendall(b"hold\n")
        assert json.loads(control.makefile().readline())["rcvbuf"] == 8192
    small.wait_for_log("control connection closed: reading udp again")
    result = call_client("udplimits", "--to", small.endpoint(), "--size", "10")
    assert result["outcome"] == "ok" and result["server_got"] == 10, result


def test_refusals_on_loopback_are_never_rationed(free_port: int) -> None:
    result = call_client("udplimits", "--to", f"127.0.0.1:{free_port}", "--refusals", "30", "--wait", "0.5")
    assert (result["outcome"], result["errno"], result["mode"]) == ("refused", "ECONNREFUSED", "refusals"), result
    assert (result["sent"], result["refused"], result["silent"], result["first_silent"]) == (30, 30, 0, None)
    assert result["rate_after"] is None
    assert result["answers"] == "R" * 30


def test_refusals_where_something_answers_are_silence_or_a_mismatch(server: Server) -> None:
    result = call_client("udplimits", "--to", server.endpoint(), "--refusals", "2", "--wait", "0.5")
    assert result["outcome"] == "mismatch" and result["answers"] == "??", result


def test_a_missing_control_channel_is_refused(small: Server, free_port: int) -> None:
    result = call_client("udplimits", "--to", small.endpoint(), "--burst", "5", "--control-port", str(free_port))
    assert result["outcome"] == "refused" and result["sent"] == 0, result


@pytest.mark.parametrize("args", [["--size", "0"], ["--burst", "3", "--refusals", "3"], ["--wait", "0"]])
def test_bad_client_arguments_exit_2(lab: Lab, args: list[str]) -> None:
    assert lab.run("udplimits", "client", "--to", "127.0.0.1:9", *args).returncode == 2
