"""Which networks get IPv6: only those a scenario may use it on, unless the file says ipv6 itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from rich.console import Console

from socklab import catalogue, console, families, scenario
from socklab.model import Network
from tests.helpers import ROOT

HEAD = '''[scenario]
name = "lesson"
title = "t"
topic = "Binding and interfaces"
explains = "e"
try = """{try_text}"""

[networks.lan]
{lan}
[networks.back]
{back}
[hosts.server]
networks = ["lan", "back"]
{server}
[hosts.client]
networks = ["lan"]

[hosts.other]
networks = ["back"]

[[services]]
host = "server"
run = "{service}"
ready = "{ready}"
'''
CHECK = '''
[[checks]]
name = "{name}"
host = "client"
{attempt}
expect = "echoed"
'''
ECHO = "echo serve --bind '' --port 65432"
TO_V4 = 'probe = { to = "{server.lan.ipv4}:65432" }'


def lesson(tmp_path: Path, *attempts: str, lan: str = "", back: str = "", server: str = "", service: str = ECHO,
           ready: str = "tcp://0.0.0.0:65432", try_text: str = "") -> dict[str, bool]:
    """Load a scenario with these checks; each network's ipv6, as loading decided it."""
    checks = "".join(CHECK.format(name=f"check {n}", attempt=attempt) for n, attempt in enumerate(attempts, 1))
    path = tmp_path / "lesson.toml"
    path.write_text(HEAD.format(lan=lan, back=back, server=server, service=service, ready=ready,
                                try_text=try_text) + checks)
    return {name: net.ipv6 for name, net in scenario.load(path).networks.items()}


def test_only_ipv4_references_make_ipv4_only_networks(tmp_path: Path) -> None:
    assert lesson(tmp_path, TO_V4, 'run = "echo client --to \'{server.back.ipv4}:65432\'"',
                  'probe = { to = "127.0.0.1:65432" }', 'probe = { to = "localhost:65432" }') == {
        "lan": False, "back": False}


@pytest.mark.parametrize("attribute", ["ipv6", "link_local", "link_local_address"])
def test_a_reference_to_a_hosts_ipv6_or_link_local_address_keeps_that_network_dual_stack(
        tmp_path: Path, attribute: str) -> None:
    assert lesson(tmp_path, TO_V4, f'probe = {{ to = "[{{server.lan.{attribute}}}]:65432" }}') == {
        "lan": True, "back": False}


@pytest.mark.parametrize("attribute", ["subnet6", "unused_ipv6"])
def test_a_reference_to_a_networks_ipv6_attribute_keeps_it_dual_stack(tmp_path: Path, attribute: str) -> None:
    assert lesson(tmp_path, f'shell = "echo {{back.{attribute}}}"') == {"lan": False, "back": True}


@pytest.mark.parametrize("attempt", [
    'probe = { to = "[::1]:65432" }',
    'probe = { bind = "[::]:65432" }',
    'shell = "ping -c 1 fd50:c1ab:0:7::2"',
    'run = "whoami client --to \'[2001:db8:0:0:0:0:0:1]:65432\'"',
    'probe = { to = "{server.lan.ipv4}:65432" }\nevidence = { seen_as = "::ffff:{client.lan.ipv4}" }',
])
def test_an_ipv6_address_written_out_keeps_every_network_dual_stack(tmp_path: Path, attempt: str) -> None:
    assert lesson(tmp_path, attempt) == {"lan": True, "back": True}


@pytest.mark.parametrize("attempt", [
    'probe = { to = "{server.lan.ipv4}:65432", family = "ipv6" }',
    'probe = { bind = "0.0.0.0:65432", v6only = false }',
    'shell = "ip -6 route"',
    'shell = "nc -6 -z {server.lan.ipv4} 65432"',
    'run = "bindname client --to \'{server.lan.ipv4}:65432\' --family ipv6"',
    'shell = "ip6tables -L"',
    'shell = "python3 -c \'import socket; socket.socket(socket.AF_INET6)\'"',
])
def test_a_family_option_or_word_of_ipv6_keeps_every_network_dual_stack(tmp_path: Path, attempt: str) -> None:
    assert lesson(tmp_path, attempt) == {"lan": True, "back": True}


def test_a_service_or_setting_that_names_ipv6_counts_too(tmp_path: Path) -> None:
    assert lesson(tmp_path, TO_V4, service="echo serve --bind :: --dual-stack --port 65432") == {
        "lan": True, "back": True}
    assert lesson(tmp_path, TO_V4, server='sysctls = { "net.ipv6.bindv6only" = 1 }') == {"lan": True, "back": True}
    assert lesson(tmp_path, TO_V4, server='setup = ["ip -6 addr"]') == {"lan": True, "back": True}


def test_a_host_name_resolved_in_any_family_keeps_its_hosts_networks_dual_stack(tmp_path: Path) -> None:
    """The engine's resolver answers AAAA for a host on a dual-stack network: the lesson may be about that."""
    assert lesson(tmp_path, 'probe = { to = "server:65432" }') == {"lan": True, "back": True}
    assert lesson(tmp_path, 'run = "echo client --to other:65432"') == {"lan": False, "back": True}
    assert lesson(tmp_path, TO_V4, ready="tcp://server:65432") == {"lan": True, "back": True}
    assert lesson(tmp_path, TO_V4, try_text="`invoke exec client -- python3 -m nodes.echo client --to "
                                            "other:65432`") == {"lan": False, "back": True}


def test_a_name_resolved_in_ipv4_only_or_a_mode_named_like_a_host_does_not_count(tmp_path: Path) -> None:
    assert lesson(tmp_path, 'probe = { to = "server:65432", family = "ipv4" }',
                  'run = "bindname client --to server:65432 --family ipv4"') == {"lan": False, "back": False}
    # ``client`` after a node program is its mode, not the host called client
    assert lesson(tmp_path, TO_V4, 'shell = "python3 -m nodes.echo client --to {server.lan.ipv4}:65432"') == {
        "lan": False, "back": False}


def test_the_try_text_counts(tmp_path: Path) -> None:
    """A student types the try text's commands into the lab this scenario makes."""
    assert lesson(tmp_path, TO_V4, try_text="Then connect over IPv6 with `invoke exec client -- ...`.") == {
        "lan": True, "back": True}


def test_files_or_an_image_of_ones_own_keep_every_network_dual_stack(tmp_path: Path) -> None:
    """A program of one's own may use IPv6 in ways no text of the scenario shows."""
    (tmp_path / "app").mkdir()
    assert lesson(tmp_path, TO_V4, server='files = { "/lab/app" = "app/" }') == {"lan": True, "back": True}
    assert lesson(tmp_path, TO_V4, server='image = "socklab-node:latest"') == {"lan": True, "back": True}


def test_an_explicit_key_always_wins(tmp_path: Path) -> None:
    assert lesson(tmp_path, TO_V4, lan="ipv6 = true", back="ipv6 = true") == {"lan": True, "back": True}
    assert lesson(tmp_path, 'probe = { to = "[::1]:65432" }', back="ipv6 = false") == {"lan": True, "back": False}


def test_a_subnet6_of_its_own_keeps_a_network_dual_stack(tmp_path: Path) -> None:
    assert lesson(tmp_path, TO_V4, back='subnet6 = "fd50:c1ab:0:7::/64"') == {"lan": False, "back": True}


def test_a_reference_to_ipv6_on_a_network_set_ipv4_only_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(scenario.ScenarioError, match="has no IPv6"):
        lesson(tmp_path, 'probe = { to = "[{server.lan.ipv6}]:65432" }', lan="ipv6 = false")


def test_needs_says_why() -> None:
    loaded = scenario.load(ROOT / "scenarios" / "all-interfaces.toml")
    assert families.needs(loaded) == {"lan": "checks[3]: {server.lan.ipv6}"}
    assert families.needs(scenario.load(ROOT / "scenarios" / "tcp-echo.toml")) == {}


def test_a_network_made_in_python_stays_dual_stack() -> None:
    """The API and the pytest plugin's inline labs make Network objects themselves: the model's default holds."""
    assert Network("lan").ipv6
    assert not families.explicit({"networks": {"lan": {}}})
    assert families.explicit({"networks": {"lan": {"ipv6": True}, "back": {}}}) == {"lan"}
    assert families.explicit({"networks": "not a table"}) == frozenset()


def test_lean_leaves_a_scenario_alone_when_nothing_changes() -> None:
    loaded = scenario.load(ROOT / "scenarios" / "all-interfaces.toml")
    assert families.lean(loaded, ()) is loaded
    dual = dataclasses.replace(scenario.load(ROOT / "scenarios" / "tcp-echo.toml"),
                               networks={"lan": Network("lan")})
    assert not families.lean(dual, ()).networks["lan"].ipv6
    assert families.lean(dual, {"lan"}).networks["lan"].ipv6


def test_invoke_explain_says_which_networks_have_ipv6_and_why() -> None:
    out = Console(record=True, width=200)
    echo, matrix = catalogue.load(["tcp-echo", "address-matrix"])
    console.print_explanation(out, echo)
    console.print_explanation(out, matrix)
    lines = [line.split() for line in out.export_text().splitlines()]
    lan = [line for line in lines if line[:1] == ["lan"]]
    assert lan[0] == ["lan", "IPv4", "only"], "tcp-echo uses no IPv6"
    assert lan[1][:4] == ["lan", "IPv4", "and", "IPv6"] and "'::'" in lan[1], "address-matrix binds ::"
