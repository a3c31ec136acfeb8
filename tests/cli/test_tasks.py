"""The invoke tasks end to end, as a user types them.

Every test here runs under an owner of its own (tests/conftest.py
``lab_owner``): ``invoke`` inherits it, so the labs a test brings up are its
own, and ``down`` without ``--lab`` removes those and nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import docker
from socklab.constants import LABEL_LAB, LABEL_OWNER, OWNER_ENV
from socklab.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK
from tests.helpers import ANYONE, ROOT, foreign_owner, invoke, labelled, remove_owned, without_volumes

WRONG = Path(__file__).parent / "data" / "wrong-expectation.toml"


@pytest.fixture
def engine_client(engine):
    return docker.from_env()


def test_run_checks_across_containers_and_writes_results(engine_client, tmp_path: Path) -> None:
    result = invoke("run", "tcp-echo", "--results", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 3 checks of 1 scenarios held" in result.stdout, result.stdout
    folder = tmp_path / "latest"
    report = json.loads((folder / "report.json").read_text())
    (scenario,) = report["scenarios"]
    check = scenario["checks"][0]
    assert (check["expected"], check["observed"], check["passed"]) == ("echoed", "echoed", True)
    assert check["evidence"]["peer"].startswith(scenario["hosts"]["server"]["lan"]["ipv4"])
    assert (folder / "junit.xml").read_text().count("<testcase") == 3
    assert "listening on tcp 0.0.0.0:65432" in (folder / "logs" / "tcp-echo" / "server.server-echo.log").read_text()
    assert labelled(f"socklab.lab={scenario['lab_id']}") == []


def test_a_wrong_expectation_exits_1_and_shows_the_mismatch(engine_client, tmp_path: Path) -> None:
    result = invoke("run", str(WRONG), "--results", str(tmp_path))
    assert result.returncode == EXIT_CHECK_FAILED, result.stderr
    assert "expected refused, observed echoed" in result.stdout
    assert "1 of 1 checks failed" in result.stdout
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert report["exit_status"] == EXIT_CHECK_FAILED
    assert labelled(f"socklab.lab={report['scenarios'][0]['lab_id']}") == []


def test_json_output_is_the_report(engine_client, tmp_path: Path) -> None:
    result = invoke("run", "loopback-only", "--json", "--results", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((tmp_path / "latest" / "report.json").read_text())


def test_a_second_build_reuses_the_image(engine_client) -> None:
    first = invoke("build", "--quiet")
    second = invoke("build")
    assert first.returncode == second.returncode == 0
    assert first.stdout.strip() == second.stdout.strip()
    assert "building" not in second.stderr
    image = engine_client.images.get(first.stdout.strip())
    assert image.labels["socklab.recipe"].startswith(first.stdout.strip().split(":")[1])


def lab_up(scenario: str, env: dict[str, str] | None = None) -> str:
    """``invoke up`` a scenario; the id of the lab it brought up."""
    up = invoke("up", scenario, env=env)
    assert up.returncode == EXIT_OK, up.stdout + up.stderr
    found = re.search(rf"Lab (\S+) \({re.escape(scenario)}\) is up", up.stdout)
    assert found, up.stdout
    return found.group(1)


def test_up_exec_labs_down(engine_client, lab_owner: str) -> None:
    lab_id = lab_up("lan-interface")
    try:
        listed = invoke("labs")
        assert listed.returncode == EXIT_OK, listed.stderr
        (row,) = [line for line in listed.stdout.splitlines() if lab_id in line]
        assert "lan-interface" in row and lab_owner in row and "client, server" in row, listed.stdout
        probe = invoke("exec", "client", "--lab", lab_id, "--", "python3 -m nodes.probe --to server:65432 --send hi")
        assert probe.returncode == 0 and json.loads(probe.stdout)["outcome"] == "echoed", probe.stdout + probe.stderr
        failing = invoke("exec", "client", "--lab", lab_id, "--", "exit 7")
        assert failing.returncode == 7
        assert labelled(f"{LABEL_LAB}={lab_id}"), "the lab is still up after exec"
    finally:  # only the lab this test brought up, and only if it did
        down = invoke("down", "--lab", lab_id)
    assert down.returncode == EXIT_OK, down.stderr
    assert down.stdout.startswith("removed 3 "), down.stdout  # two hosts and their network
    assert labelled(f"{LABEL_LAB}={lab_id}") == []


def test_down_without_a_lab_removes_the_callers_own_labs_only(engine_client, lab_owner: str) -> None:
    """Somebody else's lab (another owner) survives ``invoke down``; the caller's own go."""
    someone = foreign_owner()
    theirs = ""
    try:
        mine = lab_up("loopback-only")
        theirs = lab_up("loopback-only", env={OWNER_ENV: someone})
        assert labelled(f"{LABEL_LAB}={theirs}", owner=someone), "the other owner's lab is up"
        down = invoke("down")
        assert down.returncode == EXIT_OK, down.stderr
        assert down.stdout.startswith("removed 3 "), down.stdout  # mine: two hosts, one network
        assert labelled(f"{LABEL_LAB}={mine}") == []
        left = without_volumes(labelled(f"{LABEL_LAB}={theirs}", f"{LABEL_OWNER}={someone}", owner=ANYONE))
        assert len(left) == 3, f"the other owner's lab must be untouched: {left}"
        theirs_down = invoke("down", env={OWNER_ENV: someone})
        assert theirs_down.stdout.startswith("removed 3 "), theirs_down.stdout
    finally:
        remove_owned(someone)  # this test made that owner up: its labs are this test's to remove


def test_two_owners_on_one_engine_each_clean_their_own_labs_only(engine_client, lab_owner: str) -> None:
    """Two users of one engine bring labs up; each one's ``invoke clean`` takes its own and leaves the other's."""
    someone = foreign_owner()
    try:
        mine, theirs = lab_up("loopback-only"), lab_up("loopback-only", env={OWNER_ENV: someone})
        mine_too = lab_up("tcp-echo")
        cleaned = invoke("clean")
        assert cleaned.returncode == EXIT_OK and cleaned.stdout.startswith("removed "), cleaned.stderr
        assert labelled(f"{LABEL_LAB}={mine}") == labelled(f"{LABEL_LAB}={mine_too}") == []
        assert len(without_volumes(labelled(f"{LABEL_LAB}={theirs}", owner=someone))) == 3, "theirs is untouched"
        refused = invoke("clean", "--everyone", env={OWNER_ENV: someone})  # no terminal here to ask on
        assert refused.returncode == EXIT_BAD_INPUT and "add --yes to mean it" in refused.stderr
        assert len(without_volumes(labelled(f"{LABEL_LAB}={theirs}", owner=someone))) == 3, "refused: nothing went"
        assert invoke("clean", env={OWNER_ENV: someone}).returncode == EXIT_OK
        assert labelled(f"{LABEL_LAB}={theirs}", owner=someone) == []
    finally:
        remove_owned(someone)


def test_exec_without_a_lab_finds_the_host_in_the_callers_own_lab(engine_client, lab_owner: str) -> None:
    """Two owners' labs both have a ``client``: each one's ``invoke exec client`` lands in its own, not the other's."""
    someone = foreign_owner()
    try:
        mine, theirs = lab_up("lan-interface"), lab_up("lan-interface", env={OWNER_ENV: someone})
        for owner_env, lab in (({}, mine), ({OWNER_ENV: someone}, theirs)):
            name = invoke("exec", "client", "--", "cat /etc/hostname", env=owner_env)
            assert name.returncode == 0 and name.stdout.strip() == "client", name.stderr
            # each lab has subnets of its own: the host's routes say which lab it is in
            routes = invoke("exec", "client", "--", "ip -o route", env=owner_env)
            there = invoke("exec", "client", "--lab", lab, "--", "ip -o route", env=owner_env)
            assert routes.returncode == 0 and routes.stdout == there.stdout, routes.stderr
        assert invoke("exec", "client", "--", "ip -o route").stdout != invoke(
            "exec", "client", "--", "ip -o route", env={OWNER_ENV: someone}).stdout, "two labs, two subnets"
        gone = invoke("down", "--lab", mine)
        assert gone.returncode == EXIT_OK, gone.stderr
        alone = invoke("exec", "client", "--", "true")  # only the other owner's lab has a client now
        assert alone.returncode == EXIT_BAD_INPUT and "any running lab of yours" in alone.stderr, alone.stderr
    finally:
        remove_owned(someone)


def test_exec_without_a_running_lab_is_a_clear_error(engine_client) -> None:
    result = invoke("exec", "ghost", "--lab", "no-such-lab", "--", "true")
    assert result.returncode == EXIT_BAD_INPUT
    assert "no host 'ghost' in lab no-such-lab" in result.stderr


@pytest.mark.exclusive
def test_clean_is_idempotent(engine_client) -> None:
    """Exclusive: ``clean`` removes every lab on the engine, whoever made it."""
    lab_id = lab_up("loopback-only")
    first, second = invoke("clean", "--everyone", "--yes"), invoke("clean", "--everyone", "--yes")
    assert first.returncode == second.returncode == EXIT_OK, first.stderr + second.stderr
    assert int(first.stdout.split()[1]) >= 3, first.stdout  # at least this test's lab: two hosts, one network
    assert labelled(f"{LABEL_LAB}={lab_id}") == []
    assert second.stdout.startswith("removed 0 "), second.stdout  # nothing left to remove: not an error


def test_shell_is_interactive_on_a_real_terminal(backend) -> None:
    """A pseudo-terminal stands in for the user: commands typed, output read back, exit status kept."""
    import os
    import pty
    import select
    import sys
    import time

    from socklab.lab import Lab
    from socklab.model import Host, Network

    hosts = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
    with Lab.open(backend, "shell", {"lan": Network("lan")}, hosts) as lab:
        pid, terminal = pty.fork()
        if pid == 0:  # the child: invoke, as typed by a user
            os.chdir(ROOT)
            os.execvp(sys.executable, [sys.executable, "-m", "invoke", "shell", "client", "--lab", lab.id])
        seen = b""

        def read_until(text: bytes, seconds: float = 120) -> None:  # an event awaited; the bound only stops a hang
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
