"""The lab's checks go through each host's agent when they can, and by exec when they cannot, saying so."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from rich.console import Console

from socklab import agents, catalogue, console, runner
from socklab.agents import AgentGone, HostAgent
from socklab.backend import ExecResult
from socklab.constants import GRADED_USER
from socklab.lab import Lab
from socklab.model import Command, Host, Network, Probe, Service
from tests.unit.fakes import FakeBackend, ok, outcome

LAN = {"lan": Network("lan")}
HOSTS = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}


def echoed(host: str, argv: list[str], user: str) -> ExecResult:
    return outcome("echoed", peer="198.18.0.2:7") if "nodes.probe" in argv else ok()


@pytest.fixture(autouse=True)
def agents_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(agents.AGENT_ENV, raising=False)


def test_every_host_gets_an_agent_as_the_lab_user_and_the_lab_users_checks_go_through_it() -> None:
    backend = FakeBackend(echoed)
    with Lab.open(backend, "agents", LAN, HOSTS) as lab:
        seen = lab.probe("client", Probe(to="{server.lan.ipv4}:7"))
        ran = lab.run("client", "udpecho client --to {server.lan.ipv4}:7")
    attached = [c for c in backend.calls if c[0] == "attach"]
    assert sorted((c[1], tuple(c[2]), c[3]) for c in attached) == [
        (host, agents.AGENT_ARGV, "lab") for host in ("client", "server")]
    assert (seen.outcome, seen.via, ran.via) == ("echoed", "agent", "agent")
    through_agent = [c[2] for c in backend.calls if c[0] == "agent"]
    assert [argv[argv.index("python3") + 2] for argv in through_agent] == ["nodes.probe", "nodes.udpecho"]
    assert not [c for c in backend.calls if c[0] == "exec" and "nodes.probe" in c[2]]
    assert lab.notes == []


def test_a_services_start_and_its_readiness_wait_go_through_the_agent_as_two_requests() -> None:
    backend = FakeBackend(echoed)
    with Lab.open(backend, "service", LAN, HOSTS) as lab:
        started = lab.start_service(Service("echo", "server", Command.parse("echo serve --port 7"), ready="tcp://*:7"))
    assert started.ready
    start, wait = [c[2] for c in backend.calls if c[0] == "agent"]
    assert start[:2] == ["sh", "-c"] and "nodes.echo serve --port 7" in start[2] and "nodes.ready" not in start[2]
    assert wait[:3] == ["python3", "-m", "nodes.ready"] and "--pidfile" in wait


def test_commands_of_root_and_of_a_graded_user_go_by_exec() -> None:
    backend = FakeBackend(echoed)
    with Lab.open(backend, "others", LAN, HOSTS) as lab:
        as_root = lab.probe("client", Probe(to="{server.lan.ipv4}:7"), user="root")
        graded = lab.run("client", ["python3", "client.py"], user=GRADED_USER)
    assert (as_root.via, graded.via) == ("exec", "exec")
    execs = [c for c in backend.calls if c[0] == "exec" and ("nodes.probe" in c[2] or "client.py" in c[2])]
    assert {c[3] for c in execs} == {"root"} and any("setpriv" in c[2] for c in execs)


def test_a_host_whose_agent_does_not_serve_goes_by_exec_and_the_lab_notes_why_once() -> None:
    backend = FakeBackend(echoed)
    backend.agent_broken.add("client")
    with Lab.open(backend, "broken", LAN, HOSTS) as lab:
        first = lab.probe("client", Probe(to="{server.lan.ipv4}:7"))
        second = lab.probe("client", Probe(to="{server.lan.ipv4}:7"))
        on_server = lab.probe("server", Probe(to="127.0.0.1:7"))
    assert (first.outcome, first.via, second.via, on_server.via) == ("echoed", "exec", "exec", "agent")
    assert len(lab.notes) == 1 and lab.notes[0].startswith("client: checks went by `docker exec`")
    assert "its channel ended" in lab.notes[0]


def test_with_the_agent_off_no_agent_starts_and_every_check_goes_by_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(agents.AGENT_ENV, "off")
    backend = FakeBackend(echoed)
    with Lab.open(backend, "off", LAN, HOSTS) as lab:
        seen = lab.probe("client", Probe(to="{server.lan.ipv4}:7"))
    assert seen.via == "exec" and not [c for c in backend.calls if c[0] in ("attach", "agent")]


class SilentChannel:
    """An agent that says it is ready, then answers nothing until closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise OSError("closed")
        self.sent.append(data)

    def receive(self) -> Iterator[bytes]:
        yield b'{"agent": "ready", "pid": 9}\n'
        self.closed.wait()

    def close(self) -> None:
        self.closed.set()


def test_an_answer_that_does_not_come_within_the_limit_and_slack_breaks_the_agent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents, "SLACK", 0.05)
    agent = HostAgent("client", SilentChannel())
    with pytest.raises(AgentGone, match="did not answer within"):
        agent.run(["sleep", "1"], limit=0.05)
    with pytest.raises(AgentGone, match="did not answer within"):
        agent.run(["true"], limit=5)  # broken for good: nothing more is sent
    agent.close()


def test_a_command_in_flight_when_the_channel_ends_is_told_so() -> None:
    channel = SilentChannel()
    agent = HostAgent("client", channel)
    threading.Timer(0.1, channel.close).start()
    with pytest.raises(AgentGone, match="its channel ended"):
        agent.run(["sleep", "5"], limit=30)
    assert len(channel.sent) == 1


def test_a_run_whose_host_fell_back_to_exec_says_so_on_the_console() -> None:
    backend = FakeBackend(echoed)
    backend.agent_broken.add("client")
    (loopback,) = catalogue.load(["loopback-only"])
    run = runner.run([loopback], backend)
    out = Console(record=True, width=300)
    console.print_run(out, run)
    notes = [line for line in out.export_text().splitlines() if line.startswith("note loopback-only:")]
    assert notes == [f"note loopback-only: client: {agents.FELL_BACK}: its channel ended"]
    assert {c.via for c in run.scenarios[0].checks if c.host == "client"} == {"exec"}
