"""`invoke setup`: what it installs, how, and what it says, with the engine, the package manager and PATH faked.

Nothing here installs anything or runs sudo: every command goes through
``setup.run_command``, replaced by a recorder, and PATH is a folder of
empty executables standing for the tools a machine has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from docker.errors import DockerException

from socklab import setup
from socklab.errors import EXIT_BAD_INPUT, EnvironmentProblem
from tests.helpers import invoke

ENGINE = object()  # stands for the engine's client: the fakes below never use it
BASE = "debian:bookworm-slim"


class Machine:
    """The faked machine: its PATH, its rights, what its commands answer, and what was run and said."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.monkeypatch, self.bin = monkeypatch, tmp_path / "bin"
        self.bin.mkdir()
        monkeypatch.setenv("PATH", str(self.bin))
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        self.ran: list[list[str]] = []
        self.said: list[str] = []
        self.built: list[object] = []
        self.root = True
        self.sudo_without_password = False
        self.registry = False
        self.installs_tool = True  # apt-get install puts mmdebstrap on PATH
        monkeypatch.setattr(setup, "run_command", self.run)
        monkeypatch.setattr(setup, "is_root", lambda: self.root)
        monkeypatch.setattr(setup, "engine_client", lambda: ENGINE)
        monkeypatch.setattr(setup, "image_built", lambda client: False)
        monkeypatch.setattr(setup, "registry_base", lambda client: BASE if self.registry else None)
        monkeypatch.setattr(setup, "build_image", self.build)

    def has(self, *tools: str) -> Machine:
        for tool in tools:
            path = self.bin / tool
            path.write_text("#!/bin/sh\nexit 99\n")  # never run: run_command is faked
            path.chmod(0o755)
        return self

    def run(self, argv: Sequence[str]) -> int:
        self.ran.append(list(argv))
        if argv[:3] == ["sudo", "-n", "true"]:
            return 0 if self.sudo_without_password else 1
        if "install" in argv and self.installs_tool:
            self.has("mmdebstrap")
        return 0

    def build(self, listener: object) -> str:
        self.built.append(listener)
        return "socklab-node:x"

    def prepare(self, build: bool = True) -> str | None:
        return setup.prepare(self.said.append, build=build)

    def installs(self) -> list[list[str]]:
        """The commands run other than the probe of sudo."""
        return [argv for argv in self.ran if argv[:3] != ["sudo", "-n", "true"]]


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Machine:
    return Machine(monkeypatch, tmp_path)


def test_no_tool_as_root_runs_apt_get_update_then_install_and_says_each(machine: Machine) -> None:
    machine.has("apt-get")
    assert machine.prepare() == "socklab-node:x"
    assert machine.installs() == [["apt-get", "update"], ["apt-get", "install", "-y", "mmdebstrap"]]
    announced = [line for line in machine.said if line.startswith("running: ")]
    assert announced == ["running: apt-get update", "running: apt-get install -y mmdebstrap"]
    assert any(line.startswith("installed mmdebstrap") for line in machine.said)
    assert len(machine.built) == 1


def test_each_command_is_said_before_it_runs(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.has("apt-get")
    record = machine.run
    seen: list[tuple[list[str], list[str]]] = []

    def run(argv: Sequence[str]) -> int:
        seen.append((list(argv), list(machine.said)))
        return record(argv)

    monkeypatch.setattr(setup, "run_command", run)
    machine.prepare(build=False)
    for argv, said_then in seen:
        assert said_then[-1] == "running: " + " ".join(argv)


def test_no_tool_not_root_with_passwordless_sudo_installs_through_sudo(machine: Machine) -> None:
    machine.has("apt-get", "sudo")
    machine.root, machine.sudo_without_password = False, True
    machine.prepare()
    assert machine.ran[0] == ["sudo", "-n", "true"]  # asked first, never with a password prompt
    assert machine.installs() == [["sudo", "-n", "apt-get", "update"],
                                  ["sudo", "-n", "apt-get", "install", "-y", "mmdebstrap"]]
    assert "running: sudo -n apt-get install -y mmdebstrap" in machine.said


@pytest.mark.parametrize("sudo", [True, False], ids=["sudo-asks-a-password", "no-sudo"])
def test_no_rights_exits_2_with_the_one_command_and_installs_nothing(machine: Machine, sudo: bool) -> None:
    machine.has("apt-get", *(["sudo"] if sudo else []))
    machine.root = False
    with pytest.raises(EnvironmentProblem) as refused:
        machine.prepare()
    assert refused.value.exit_status == EXIT_BAD_INPUT
    assert str(refused.value).endswith("Run: sudo apt-get install -y mmdebstrap")
    assert machine.installs() == [] and machine.built == []


@pytest.mark.parametrize("tool", ["mmdebstrap", "debootstrap"])
def test_a_bootstrap_tool_present_installs_nothing_and_says_so(machine: Machine, tool: str) -> None:
    machine.has("apt-get", tool)
    machine.prepare()
    assert machine.ran == []
    assert any(line.startswith(f"nothing to install: {tool} is installed") for line in machine.said)
    assert len(machine.built) == 1


def test_a_registry_reachable_installs_nothing_and_says_so(machine: Machine) -> None:
    machine.has("apt-get")
    machine.registry = True
    machine.prepare()
    assert machine.ran == []
    assert any(line.startswith(f"nothing to install: a registry gives {BASE}") for line in machine.said)


def test_an_image_already_built_installs_nothing(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.has("apt-get")
    monkeypatch.setattr(setup, "image_built", lambda client: True)
    monkeypatch.setattr(setup, "registry_base", lambda client: pytest.fail("no pull needed"))
    machine.prepare()
    assert machine.ran == []


def test_no_build_installs_what_is_missing_and_builds_nothing(machine: Machine) -> None:
    machine.has("apt-get")
    assert machine.prepare(build=False) is None
    assert len(machine.installs()) == 2 and machine.built == []


def test_a_failing_apt_get_stops_there_with_its_status(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.has("apt-get")
    def fail(argv: Sequence[str]) -> int:
        machine.ran.append(list(argv))
        return 100

    monkeypatch.setattr(setup, "run_command", fail)
    with pytest.raises(EnvironmentProblem, match=r"`apt-get update` exited 100"):
        machine.prepare()
    assert machine.ran == [["apt-get", "update"]] and machine.built == []


def test_no_apt_get_says_to_use_the_systems_package_manager(machine: Machine) -> None:
    with pytest.raises(EnvironmentProblem, match="no apt-get") as refused:
        machine.prepare()
    assert refused.value.exit_status == EXIT_BAD_INPUT and machine.ran == []


def engine_down(reason: str) -> Callable[[], object]:
    def connect() -> object:
        raise DockerException(reason)
    return connect


@pytest.mark.parametrize(("has", "reason", "advice"), [
    ((), "Connection refused", "`sudo apt-get install -y docker.io`"),
    (("dockerd",), "Connection refused", "`sudo systemctl start docker`"),
    (("dockerd",), "Permission denied", "`sudo usermod -aG docker $USER`"),
], ids=["not-installed", "not-running", "not-allowed"])
def test_an_engine_down_says_exactly_what_to_do_and_exits_2(
        machine: Machine, monkeypatch: pytest.MonkeyPatch, has: tuple[str, ...], reason: str, advice: str) -> None:
    machine.has("apt-get", *has)
    monkeypatch.setattr(setup, "engine_client", engine_down(reason))
    with pytest.raises(EnvironmentProblem) as refused:
        machine.prepare()
    assert refused.value.exit_status == EXIT_BAD_INPUT
    assert advice in str(refused.value) and reason in str(refused.value)
    assert "invoke setup` again" in str(refused.value)
    assert machine.ran == [] and machine.built == []


def test_an_engine_elsewhere_names_docker_host(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://lab.invalid:2375")
    monkeypatch.setattr(setup, "engine_client", engine_down("Name or service not known"))
    with pytest.raises(EnvironmentProblem, match="DOCKER_HOST=tcp://lab.invalid:2375"):
        machine.prepare()


def test_the_cli_refuses_with_no_engine_exit_2_and_advice() -> None:
    result = invoke("setup", "--no-build", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr.startswith("error: No Docker engine answers at DOCKER_HOST=unix:///nonexistent/docker.sock")


def test_invoke_help_setup_lists_its_options() -> None:
    shown = invoke("--help", "setup")
    assert shown.returncode == 0, shown.stderr
    assert "Install what this machine lacks" in shown.stdout
    options = " ".join(shown.stdout.split("Options:")[1].split())
    assert "--no-build" in options and "leave building the node image to the first run" in options
