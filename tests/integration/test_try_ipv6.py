"""The `try` texts of the IPv6 and binding lessons (ipv6-only-row, bind-order, bind-rules, hostname-binding),
run as written (tests/tries.py)."""

from __future__ import annotations

import re

import pytest

from tests.tries import Said, TrySession


def listening(said: Said, port: int) -> list[str]:
    """The lines of ``ss -l...`` output for sockets on ``port``."""
    return [line for line in said.stdout.splitlines() if re.search(rf"\s\S+:{port}\s", line)]


@pytest.mark.tries(
    "ipv6-only-row",
    "invoke up ipv6-only-row",
    "invoke exec server -- ss -ltne",
    "invoke exec server -- python3 -m nodes.whoami client --to [::1]:65432",
    "invoke exec server -- python3 -m nodes.whoami client --to 127.0.0.1:65432",
)
def test_ipv6_only_row_listener_is_v6only_and_answers_ipv6_only(try_text: TrySession) -> None:
    up = try_text("invoke up ipv6-only-row")
    assert up.exit == 0, up
    ss = try_text("invoke exec server -- ss -ltne")
    assert ss.exit == 0, ss
    (line,) = listening(ss, 65432)
    assert line.split()[3] == "[::]:65432" and "v6only:1" in line, ss
    answered = try_text("invoke exec server -- python3 -m nodes.whoami client --to [::1]:65432")
    assert answered.exit == 0, answered
    assert answered.json()["outcome"] == "ok" and answered.json()["server_local"] == "::1", answered
    refused = try_text("invoke exec server -- python3 -m nodes.whoami client --to 127.0.0.1:65432")
    assert refused.exit == 0, refused
    assert refused.json()["outcome"] == "refused", refused


@pytest.mark.tries(
    "bind-order",
    "invoke up bind-order",
    "invoke exec server -- ss -ltne",
    "invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65432",
    "invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65433",
)
def test_bind_order_listeners_and_binds(try_text: TrySession) -> None:
    up = try_text("invoke up bind-order")
    assert up.exit == 0, up
    ss = try_text("invoke exec server -- ss -ltne")
    assert ss.exit == 0, ss
    (dual,) = listening(ss, 65432)
    assert dual.split()[3] == "*:65432" and "v6only:0" in dual, ss
    (v6only,) = listening(ss, 65433)
    assert v6only.split()[3] == "[::]:65433" and "v6only:1" in v6only, ss
    shared = sorted(line.split()[3] for line in listening(ss, 65434))
    assert shared == ["0.0.0.0:65434", "[::]:65434"], ss
    in_use = try_text("invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65432")
    assert in_use.exit == 0 and in_use.json()["outcome"] == "addr-in-use", in_use
    free = try_text("invoke exec server -- python3 -m nodes.probe --bind 0.0.0.0:65433")
    assert free.exit == 0 and free.json()["outcome"] == "ok", free


def addresses_of(said: Said) -> list[str]:
    """The addresses a ``getent ahosts`` lists, in its order, each once."""
    found: list[str] = []
    for line in said.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] == "STREAM" and words[0] not in found:
            found.append(words[0])
    return found


@pytest.mark.tries(
    "hostname-binding",
    "invoke up hostname-binding",
    "invoke exec server -- getent ahosts server",
    "invoke exec client -- getent ahosts server",
    "invoke exec server -- ss -ltn",
)
def test_hostname_binding_lists_and_listeners(try_text: TrySession) -> None:
    up = try_text("invoke up hostname-binding")
    assert up.exit == 0, up
    on_server = try_text("invoke exec server -- getent ahosts server")
    assert on_server.exit == 0, on_server
    ipv6, ipv4 = addresses_of(on_server)  # IPv6 first, then IPv4
    assert ":" in ipv6 and re.fullmatch(r"198\.1[89]\.\d+\.\d+", ipv4), on_server
    on_client = try_text("invoke exec client -- getent ahosts server")
    assert on_client.exit == 0 and addresses_of(on_client) == [ipv6, ipv4], on_client
    ss = try_text("invoke exec server -- ss -ltn")
    assert ss.exit == 0, ss

    def where(port: int) -> list[str]:
        return sorted(line.split()[3] for line in listening(ss, port))

    assert where(65432) == [f"[{ipv6}]:65432"], ss  # the echo: the list's first address only
    assert where(65434) == sorted([f"{ipv4}:65434", f"[{ipv6}]:65434"]), ss  # asyncio: every address
    assert where(65435) == [f"{ipv4}:65435"], ss  # create_server: one socket, AF_INET


@pytest.mark.tries(
    "bind-rules",
    "invoke up bind-rules",
    "invoke exec server -- ip route show table local",
    "invoke exec server -- python3 -m nodes.probe --bind 127.0.0.9:65432",
    "invoke exec server -- python3 -m nodes.probe --bind [::2]:65432",
)
def test_bind_rules_the_local_table_says_which_addresses_bind(try_text: TrySession) -> None:
    up = try_text("invoke up bind-rules")
    assert up.exit == 0, up
    table = try_text("invoke exec server -- ip route show table local")
    assert table.exit == 0, table
    assert re.search(r"^local 127\.0\.0\.0/8 dev lo\b", table.stdout, re.MULTILINE), table
    loopback = try_text("invoke exec server -- python3 -m nodes.probe --bind 127.0.0.9:65432")
    assert loopback.exit == 0 and loopback.json()["outcome"] == "ok", loopback
    assert loopback.json()["local"] == "127.0.0.9:65432", loopback
    not_ours = try_text("invoke exec server -- python3 -m nodes.probe --bind [::2]:65432")
    assert not_ours.exit == 0, not_ours
    assert (not_ours.json()["outcome"], not_ours.json()["errno"]) == ("addr-unavailable", "EADDRNOTAVAIL"), not_ours


@pytest.mark.tries(
    "bindv6only",
    "invoke up bindv6only",
    "invoke exec server -- ss -ltne",
    "invoke exec server -- cat /proc/sys/net/ipv6/bindv6only",
    "invoke exec client -- cat /proc/sys/net/ipv6/bindv6only",
)
def test_bindv6only_a_plain_listener_is_ipv6_only_create_servers_is_not(try_text: TrySession) -> None:
    up = try_text("invoke up bindv6only")
    assert up.exit == 0, up
    ss = try_text("invoke exec server -- ss -ltne")
    assert ss.exit == 0, ss
    (plain,) = listening(ss, 65432)
    assert plain.split()[3] == "[::]:65432" and "v6only:1" in plain, ss
    (dual,) = listening(ss, 65433)
    assert dual.split()[3] == "*:65433" and "v6only:0" in dual, ss
    server = try_text("invoke exec server -- cat /proc/sys/net/ipv6/bindv6only")
    assert (server.exit, server.stdout.strip()) == (0, "1"), server
    client = try_text("invoke exec client -- cat /proc/sys/net/ipv6/bindv6only")
    assert (client.exit, client.stdout.strip()) == (0, "0"), client
