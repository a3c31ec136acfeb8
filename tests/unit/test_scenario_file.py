"""Scenario files: the catalogue parses into the model; every bad file is refused precisely."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from invoke import Context, Exit

import tasks
from nodes.outcomes import Outcome
from socklab import api, catalogue, scenario
from socklab.errors import EXIT_BAD_INPUT, ScenarioError, UsageError
from socklab.model import FILES_LIMIT, TOPICS, Argv, Command, CommandEnd, FileCopy, Image, Probe, ShellLine
from tests.helpers import ROOT, invoke
from tests.unit.fakes import RecordingBackend

BAD = sorted((Path(__file__).parent / "bad_scenarios").glob("*.toml"))


def expectation(path: Path) -> tuple[str, str]:
    """Each bad file says, in its first two lines, which key must be named and what must be said."""
    key_line, says_line = path.read_text().splitlines()[:2]
    return key_line.removeprefix("# key: "), says_line.removeprefix("# says: ")


@pytest.mark.parametrize("path", catalogue.paths(), ids=lambda p: p.stem)
def test_every_catalogue_scenario_loads_and_teaches(path: Path) -> None:
    loaded = scenario.load(path)
    assert loaded.name == path.stem
    assert len(loaded.hosts) >= 2, "a lesson about the network needs at least two hosts"
    assert len(loaded.explains) > 100, "every scenario explains what it shows and why"
    assert loaded.checks


def test_the_catalogue_keeps_to_its_topics() -> None:
    """A scenario of one's own may have any topic; socklab's own curriculum keeps to its topics."""
    assert {scenario.topic for scenario in catalogue.load()} == set(TOPICS)


def test_a_scenario_becomes_the_model() -> None:
    loaded = scenario.load(ROOT / "scenarios" / "loopback-only.toml")
    assert loaded.topic == "Binding and interfaces"
    assert not loaded.networks["lan"].ipv6 and loaded.networks["lan"].subnet4 is None  # it uses no IPv6: IPv4 only
    assert loaded.hosts["server"].networks == ("lan",)
    (service,) = loaded.services
    assert service.command == Command("echo", ("serve", "--bind", "127.0.0.1", "--port", "65432"))
    assert (service.host, service.ready, service.user, service.name) == (
        "server", "tcp://127.0.0.1:65432", "lab", "server-echo")
    own, other = loaded.checks
    assert own.action == Probe(proto="tcp", to="127.0.0.1:65432", send="Hello, world")
    assert (own.hosts, own.expect) == (("server",), Outcome.ECHOED)
    assert other.probe is not None and other.probe.to == "{server.lan.ipv4}:65432"
    assert other.expect == Outcome.REFUSED


def test_explicit_subnets_and_conditions_are_read(tmp_path: Path) -> None:
    path = tmp_path / "lossy.toml"
    path.write_text((ROOT / "scenarios" / "tcp-echo.toml").read_text()
                    .replace('name = "tcp-echo"', 'name = "lossy"')
                    .replace("[networks.lan]",
                             '[networks.lan]\nsubnet = "198.19.250.0/24"\nloss = 0.25\nrate = "5mbit"'))
    lan = scenario.load(path).networks["lan"]
    assert lan.subnet4 == ipaddress.IPv4Network("198.19.250.0/24")
    assert (lan.conditions.loss, lan.conditions.rate, lan.conditions.delay_ms) == (0.25, "5mbit", 0.0)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_a_bad_file_is_refused_naming_the_file_the_key_and_a_fix(path: Path) -> None:
    key, says = expectation(path)
    with pytest.raises(ScenarioError) as refused:
        scenario.load(path)
    lines = str(refused.value).splitlines()
    assert all(line.startswith(str(path)) for line in lines if not line.startswith(" "))
    named = [p for p in refused.value.problems if p.key == key and says in str(p)]
    assert named, f"no problem names {key!r} saying {says!r}: {lines}"
    assert all(p.fix for p in refused.value.problems), "every problem says how to fix it"


def test_the_corpus_covers_at_least_25_kinds_of_mistake() -> None:
    assert len({expectation(p) for p in BAD}) >= 25, "distinct (key, diagnosis) pairs"


def test_problems_point_at_their_line() -> None:
    path = next(p for p in BAD if p.stem == "unknown-outcome")
    with pytest.raises(ScenarioError) as refused:
        scenario.load(path)
    (problem,) = refused.value.problems
    line = int(str(problem.path).rsplit(":", 1)[1])
    assert path.read_text().splitlines()[line - 1].startswith('expect = "echo"')


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text((ROOT / "scenarios" / "tcp-echo.toml").read_text()
                    .replace('name = "tcp-echo"', 'name = "many"')
                    .replace('expect = "echoed"', 'expect = "echo"', 1)
                    .replace('host = "client"', 'host = "nobody"', 1))
    with pytest.raises(ScenarioError) as refused:
        scenario.load(path)
    assert {p.key for p in refused.value.problems} == {"checks[1].expect", "checks[1].host"}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingBackend:
    """The backend that ``invoke run`` gets: one that records every call and has no engine behind it."""
    backend = RecordingBackend()
    monkeypatch.setattr(api, "default_backend", lambda name="": backend)
    return backend


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_a_bad_file_reaches_no_backend_and_means_exit_2(path: Path, recorder: RecordingBackend,
                                                        tmp_path: Path) -> None:
    """The task as the command line calls it: the file is refused before the backend is asked anything."""
    with pytest.raises(Exit) as exited:
        tasks.run(Context(), names=str(path), results=str(tmp_path))
    assert exited.value.code == EXIT_BAD_INPUT
    assert recorder.calls == []


def test_a_good_file_does_reach_that_backend(recorder: RecordingBackend, tmp_path: Path) -> None:
    """The counterpart that makes the test above mean something: the same path, a good file, a backend asked."""
    with pytest.raises(Exit):  # the recorder answers no probe: the checks fail, exit 1
        tasks.run(Context(), names="tcp-echo", results=str(tmp_path))
    assert ("ensure_image",) in recorder.calls and any(call[0] == "create_lab" for call in recorder.calls)


def test_the_cli_refuses_the_whole_corpus_at_once_with_exit_2() -> None:
    """One run over every bad file: each one's key and reason are on stderr, and no engine is reached."""
    result = invoke("run", ",".join(str(p) for p in BAD), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == EXIT_BAD_INPUT
    assert "Docker" not in result.stderr
    for path in BAD:
        key, says = expectation(path)
        assert any(line.startswith(f"{path}") and f": {key}: " in line and says in line or
                   (not key and line.startswith(str(path)) and says in line)
                   for line in result.stderr.splitlines()), f"{path.name}: {key} / {says}"


def test_unknown_scenario_names_suggest_the_closest() -> None:
    with pytest.raises(UsageError, match="did you mean 'tcp-echo'") as refused:
        catalogue.load(["tcp-ecko"])
    assert refused.value.exit_status == EXIT_BAD_INPUT


@pytest.mark.parametrize("path", [p for p in BAD if p.stem in ("unknown-outcome", "toml-syntax-error")],
                         ids=lambda p: p.stem)
def test_the_cli_exits_2_on_a_bad_file_without_touching_docker(path: Path) -> None:
    """DOCKER_HOST points nowhere: reaching for the engine would fail differently."""
    key, says = expectation(path)
    result = invoke("run", str(path), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert str(path) in result.stderr and key in result.stderr and says in result.stderr
    assert "Docker" not in result.stderr


def test_the_cli_without_an_engine_exits_2_with_advice() -> None:
    result = invoke("run", "tcp-echo", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock",
                                            "PATH": os.environ["PATH"]})
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "No Docker engine answers" in result.stderr and "Start the engine" in result.stderr


def test_a_readiness_url_may_name_an_ipv6_address(tmp_path: Path) -> None:
    path = tmp_path / "ready6.toml"
    path.write_text((ROOT / "scenarios" / "tcp-echo.toml").read_text().replace('name = "tcp-echo"', 'name = "ready6"')
                    .replace('ready = "tcp://0.0.0.0:65432"', 'ready = "tcp://[{server.lan.ipv6}]:65432"'))
    assert scenario.load(path).services[0].ready == "tcp://[{server.lan.ipv6}]:65432"


OWN = Path(__file__).parent / "own" / "own.toml"


def test_programs_of_ones_own_become_the_model() -> None:
    own = scenario.load(OWN)
    assert own.topic == "My own programs"
    server = own.hosts["server"]
    assert server.files == (FileCopy("/lab/app", OWN.parent / "app"),
                            FileCopy("/lab/own.toml", OWN.parent / "own.toml", read_only=True))
    assert server.image == Image(name="socklab-node:latest")
    python, netcat = own.services
    assert python.command == Argv(("python3", "server.py", "{server.lan.ipv4}", "7000"))
    assert (python.name, python.cwd, python.env) == ("server-python3", "/lab/app",
                                                      {"GREETING": "hello {server.lan.ipv4}"})
    assert netcat.command == ShellLine("nc -lk 7001 < /lab/own.toml") and netcat.name == "server-shell"
    greeting, json_result = own.checks
    assert greeting.action == ShellLine("echo hi | nc -N {server.lan.ipv4} 7000")
    assert greeting.expect == CommandEnd(0, stdout="hello") and greeting.judged_by_exit
    assert json_result.expect == Outcome.TIMEOUT and not json_result.judged_by_exit


@pytest.mark.parametrize(("change", "key", "says"), [
    (('"/lab/app" = "app/"', '"/lab/app" = "nowhere/"'), "hosts.server.files", "nowhere does not exist"),
    (('"/lab/app" = "app/"', '"lab/app" = "app/"'), "hosts.server.files", "is not an absolute path"),
    (('image = "socklab-node:latest"', 'image = { build = "app" }'), "hosts.server.image", "has no Dockerfile"),
    (('image = "socklab-node:latest"', 'image = "two words"'), "hosts.server.image", "is not an image name"),
    (('cwd = "/lab/app"', 'shell = "true"'), "services[1]", "has both run and shell"),
    (('run = ["python3", "server.py", "{server.lan.ipv4}", "7000"]', 'run = []'), "services[1].run",
     "must be an array of one or more strings"),
    (('run = ["python3", "server.py", "{server.lan.ipv4}", "7000"]', 'run = ["python3", "{server.wan.ipv4}"]'),
     "services[1].run", "names network 'wan'"),
    (('env = { GREETING = "hello {server.lan.ipv4}" }', 'env = { GREETING = 1 }'), "services[1].env",
     "must be a table of strings"),
    (('ready = "log:Listening on \\\\d+"', 'ready = "log:(("'), "services[1].ready", "is not a regular expression"),
    (('expect = { exit = 0, stdout = "hello" }', 'expect = { exit = 0, stdot = "hello" }'), "checks[1].expect.stdot",
     "did you mean 'stdout'"),
    (('expect = { exit = 0, stdout = "hello" }', 'expect = { exit = 300 }'), "checks[1].expect.exit", "out of range"),
    (('expect = { exit = 0, stdout = "hello" }', 'expect = { stdout = "(" }'), "checks[1].expect.stdout",
     "is not a regular expression"),
    (('shell = "echo hi | nc -N {server.lan.ipv4} 7000"', 'shell = "x"\nprobe = { to = "x:1" }'), "checks[1]",
     "has both probe and shell"),
])
def test_mistakes_in_ones_own_programs_are_named(tmp_path: Path, change: tuple[str, str], key: str,
                                                 says: str) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "own.toml").write_text(OWN.read_text().replace(*change))
    assert change[0] in OWN.read_text(), change[0]
    with pytest.raises(ScenarioError) as refused:
        scenario.load(tmp_path / "own.toml")
    assert any(p.key == key and says in str(p) for p in refused.value.problems), refused.value.problems


def test_a_folder_larger_than_the_limit_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with (tmp_path / "app" / "big").open("wb") as big:
        big.truncate(FILES_LIMIT + 1)  # sparse: a size, not a disk's worth of bytes
    (tmp_path / "own.toml").write_text(OWN.read_text())
    with pytest.raises(ScenarioError, match="more than the 64 MiB a files entry may"):
        scenario.load(tmp_path / "own.toml")
