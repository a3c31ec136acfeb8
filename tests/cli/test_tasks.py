"""The invoke tasks end to end, as a user types them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import docker
from socklab.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from tests.conftest import invoke, labelled

WRONG = Path(__file__).parent / "data" / "wrong-expectation.toml"


@pytest.fixture
def engine_client(engine):  # type: ignore[no-untyped-def]
    return docker.from_env()


def test_run_checks_across_containers_and_writes_results(engine_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", "tcp-echo", "--results", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 2 checks of 1 scenarios held" in result.stdout
    folder = tmp_path / "latest"
    report = json.loads((folder / "report.json").read_text())
    (scenario,) = report["scenarios"]
    check = scenario["checks"][0]
    assert (check["expected"], check["observed"], check["passed"]) == ("echoed", "echoed", True)
    assert check["evidence"]["peer"].startswith(scenario["hosts"]["server"]["lan"]["ipv4"])
    assert (folder / "junit.xml").read_text().count("<testcase") == 2
    assert "listening on tcp 0.0.0.0:65432" in (folder / "logs" / "tcp-echo" / "server.server-echo.log").read_text()
    assert labelled(f"socklab.lab={scenario['lab_id']}") == []


def test_a_wrong_expectation_exits_1_and_shows_the_mismatch(engine_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", str(WRONG), "--results", str(tmp_path))
    assert result.returncode == EXIT_CHECK_FAILED, result.stderr
    assert "expected refused, observed echoed" in result.stdout
    assert "1 of 1 checks failed" in result.stdout
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert report["exit_status"] == EXIT_CHECK_FAILED
    assert labelled(f"socklab.lab={report['scenarios'][0]['lab_id']}") == []


def test_json_output_is_the_report(engine_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", "loopback-only", "--json", "--results", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((tmp_path / "latest" / "report.json").read_text())


def test_a_second_build_reuses_the_image(engine_client) -> None:  # type: ignore[no-untyped-def]
    first = invoke("build", "--quiet")
    second = invoke("build")
    assert first.returncode == second.returncode == 0
    assert first.stdout.strip() == second.stdout.strip()
    assert "building" not in second.stderr
    image = engine_client.images.get(first.stdout.strip())
    assert image.labels["socklab.recipe"].startswith(first.stdout.strip().split(":")[1])


def test_up_exec_labs_down(engine_client) -> None:  # type: ignore[no-untyped-def]
    up = invoke("up", "lan-interface")
    lab_id = ""
    try:
        assert up.returncode == 0, up.stderr
        lab_id = re.search(r"Lab (\S+) \(lan-interface\) is up", up.stdout).group(1)  # type: ignore[union-attr]
        listed = invoke("labs")
        assert lab_id in listed.stdout
        probe = invoke("exec", "client", "--lab", lab_id, "--", "python3 -m nodes.probe --to server:65432 --send hi")
        assert probe.returncode == 0 and json.loads(probe.stdout)["outcome"] == "echoed"
        failing = invoke("exec", "client", "--lab", lab_id, "--", "exit 7")
        assert failing.returncode == 7
    finally:
        down = invoke("down", "--lab", lab_id)
    assert down.returncode == 0
    assert labelled(f"socklab.lab={lab_id}") == []


def test_exec_without_a_running_lab_is_a_clear_error(engine_client) -> None:  # type: ignore[no-untyped-def]
    result = invoke("exec", "ghost", "--lab", "no-such-lab", "--", "true")
    assert result.returncode == EXIT_BAD_INPUT
    assert "no host 'ghost' in lab no-such-lab" in result.stderr


@pytest.mark.exclusive
def test_clean_is_idempotent(engine_client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        result = invoke("clean")
        assert result.returncode == 0 and result.stdout.startswith("removed ")


def test_shell_is_interactive_on_a_real_terminal(backend) -> None:  # type: ignore[no-untyped-def]
    """A pseudo-terminal stands in for the user: commands typed, output read back, exit status kept."""
    import os
    import pty
    import select
    import sys
    import time

    from socklab.lab import Lab
    from socklab.model import Host, Network
    from tests.conftest import ROOT

    hosts = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
    with Lab.open(backend, "shell", {"lan": Network("lan")}, hosts) as lab:
        pid, terminal = pty.fork()
        if pid == 0:  # the child: invoke, as typed by a user
            os.chdir(ROOT)
            os.execvp(sys.executable, [sys.executable, "-m", "invoke", "shell", "client", "--lab", lab.id])
        seen = b""

        def read_until(text: bytes, seconds: float = 20) -> None:
            nonlocal seen
            deadline = time.monotonic() + seconds
            while text not in seen and time.monotonic() < deadline:
                if select.select([terminal], [], [], 0.1)[0]:
                    try:
                        seen += os.read(terminal, 4096)
                    except OSError:
                        return

        read_until(b"@client")
        os.write(terminal, b"echo $((6*7)) $(id -un)\r")
        read_until(b"42 lab")
        os.write(terminal, b"exit 3\r")
        _, status = os.waitpid(pid, 0)
    assert b"42 lab" in seen, seen
    assert os.waitstatus_to_exitcode(status) == 3
