"""How actions become command lines on hosts: probes, services, link conditions."""

from __future__ import annotations

from socklab import commands, impairments
from socklab.model import Command, LinkConditions, Probe, Service


def test_a_probe_table_maps_one_to_one_onto_the_probe_program() -> None:
    probe = Probe(proto="udp", to="{s.lan.ipv4}:53", send="hi", source="{c.lan.ipv4}", family="ipv4",
                  connected=True, bufsize=8, timeout=0.5, v6only=False)
    argv = commands.probe_argv(probe, lambda text: text.replace("{s.lan.ipv4}", "198.18.0.2")
                               .replace("{c.lan.ipv4}", "198.18.0.3"))
    assert argv[:4] == ["timeout", "-k", "1", "7"]  # four tries of 0.5 s, and a grace period
    assert argv[4:7] == ["python3", "-m", "nodes.probe"]
    options = argv[7:]
    for pair in (["--proto", "udp"], ["--to", "198.18.0.2:53"], ["--send", "hi"], ["--from", "198.18.0.3"],
                 ["--family", "ipv4"], ["--bufsize", "8"], ["--timeout", "0.5"]):
        assert options[options.index(pair[0]):options.index(pair[0]) + 2] == pair
    assert "--connected" in options and "--dual-stack" in options and "--reuse-addr" not in options


def test_a_service_starts_in_the_background_and_its_host_waits_until_ready() -> None:
    service = Service("web", "server", Command.parse("echo serve --bind '' --port 80"), ready="tcp://0.0.0.0:80")
    sh, flag, script = commands.service_argv(service, str)
    assert (sh, flag) == ("sh", "-c")
    start, wait = script.splitlines()
    assert "python3 -m nodes.echo serve --bind '' --port 80 >>/lab/log/web.log" in start
    assert start.endswith("&") and "echo $? >/lab/run/web.exit" in start
    assert wait.startswith("exec python3 -m nodes.ready tcp://0.0.0.0:80") and "--pidfile /lab/run/web.pid" in wait


def test_impairments_use_netem_and_fall_back_to_the_firewall_and_tbf() -> None:
    lines = "\n".join(impairments.commands("198.18.0.2", "lan", LinkConditions(loss=0.2, rate="5mbit")))
    netem, fallback = lines.split("\nelse\n")
    assert "netem loss 20%" in netem and "parent 1: handle 2: tbf rate 5mbit" in netem
    assert "iptables -A INPUT" in fallback and "--probability 0.2 -j DROP" in fallback
    assert "ip6tables" in fallback and "root tbf rate 5mbit" in fallback


def test_delay_without_netem_fails_loudly() -> None:
    lines = "\n".join(impairments.commands("198.18.0.2", "lan", LinkConditions(delay_ms=50)))
    fallback = lines.split("\nelse\n")[1]
    assert "no sch_netem" in fallback and f"exit {impairments.NO_DELAY}" in fallback


def test_no_conditions_no_commands() -> None:
    assert impairments.commands("198.18.0.2", "lan", LinkConditions()) == []
