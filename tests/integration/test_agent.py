"""Each lab host's resident agent on a real engine: checks go through it, and by exec when it is gone."""

from __future__ import annotations

import pytest

from socklab import agents
from socklab.lab import Lab
from socklab.model import Command, Host, Network, Probe, Service

TWO_HOSTS = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
LAN = {"lan": Network("lan")}
ECHO = Service("echo", "server", Command.parse("echo serve --bind '' --port 7"), ready="tcp://*:7")
AT_ONCE = 10.0  # an echo on a lab network comes at once: the timeout is only room for a loaded machine


@pytest.fixture(autouse=True)
def agents_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(agents.AGENT_ENV, raising=False)


def agent_processes(lab: Lab, host: str) -> list[str]:
    """The host's agents, as ``ps`` sees them: user and command line."""
    listing = lab.exec(host, ["ps", "-eo", "user=,args="]).stdout.splitlines()
    return [line.split(None, 1)[0] for line in listing if "nodes.agent" in line and "ps -eo" not in line]


def test_checks_go_through_the_hosts_agent_which_runs_as_the_lab_user(backend) -> None:
    with Lab.open(backend, "agent", LAN, TWO_HOSTS) as lab:
        lab.require(ECHO)
        seen = lab.probe("client", Probe(to="{server.lan.ipv4}:7", send="Hello, world", timeout=AT_ONCE))
        mine = lab.run("client", ["sh", "-c", "id -un; pwd; exit 3"])
        assert (seen.outcome, seen.evidence["reply"], seen.via) == ("echoed", "Hello, world", "agent"), seen
        assert (mine.exit_code, mine.stdout, mine.via) == (3, "lab\n/lab\n", "agent")
        assert agent_processes(lab, "client") == ["lab"] and agent_processes(lab, "server") == ["lab"]
        assert lab.notes == []


def test_when_a_hosts_agent_is_killed_its_checks_go_by_exec_and_the_lab_says_so(backend) -> None:
    with Lab.open(backend, "agent-gone", LAN, TWO_HOSTS) as lab:
        lab.require(ECHO)
        before = lab.probe("client", Probe(to="{server.lan.ipv4}:7", send="one", timeout=AT_ONCE))
        killed = lab.exec("client", ["pkill", "-KILL", "-f", "nodes.agent"])  # its own user: root here has no CAP_KILL
        after = lab.probe("client", Probe(to="{server.lan.ipv4}:7", send="two", timeout=AT_ONCE))
        assert killed.ok and agent_processes(lab, "client") == []
        assert (before.via, after.via) == ("agent", "exec")
        assert before.outcome == after.outcome == "echoed", after
        assert len(lab.notes) == 1 and lab.notes[0].startswith("client: checks went by `docker exec` from then on")
        server_side = lab.probe("server", Probe(to="127.0.0.1:7", send="three", timeout=AT_ONCE))
        assert (server_side.outcome, server_side.via) == ("echoed", "agent"), "the other host's agent still serves"


def test_with_the_agent_off_the_same_checks_go_by_exec(backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(agents.AGENT_ENV, "off")
    with Lab.open(backend, "agent-off", LAN, TWO_HOSTS) as lab:
        lab.require(ECHO)
        seen = lab.probe("client", Probe(to="{server.lan.ipv4}:7", send="Hello, world", timeout=AT_ONCE))
        assert (seen.outcome, seen.via) == ("echoed", "exec") and agent_processes(lab, "client") == []


def test_a_service_started_through_the_agent_outlives_it(backend) -> None:
    with Lab.open(backend, "agent-service", LAN, TWO_HOSTS) as lab:
        lab.require(ECHO)
        assert lab.exec("server", ["pkill", "-KILL", "-f", "nodes.agent"]).ok
        seen = lab.probe("client", Probe(to="{server.lan.ipv4}:7", send="still there", timeout=AT_ONCE))
        assert seen.outcome == "echoed", seen


def test_an_agents_channel_waits_for_output_as_long_as_the_lab_lasts(backend) -> None:
    """Not the engine client's request timeout (120 s): an agent idle that long is not a dead one."""
    with Lab.open(backend, "agent-idle", LAN, {"client": TWO_HOSTS["client"]}) as lab:
        channel = backend.attach(lab._handle("client"), ["cat"], user="lab")
        try:
            assert channel._sock.gettimeout() == 0.0  # its waits are poll()s, with no time limit
        finally:
            channel.close()
