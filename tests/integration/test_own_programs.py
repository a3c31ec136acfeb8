"""Programs that are not socklab's, across two hosts: from a scenario file, from invoke, and from pytest.

The programs live in tests/integration/own/: a key-value server in two
modules taking HOST PORT, a client with its server's name written in it, and
a netcat one-liner (the node image has netcat-openbsd).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from socklab.errors import EXIT_CHECK_FAILED, LabError, SocklabError
from socklab.lab import Lab
from tests.helpers import ROOT, invoke

OWN = Path(__file__).parent / "own"
KV_SERVER = ["python3", "kvserver.py", "{server.lan.ipv4}", "65432"]


def report(results: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((results / "latest" / "report.json").read_text())
    return loaded


def test_a_scenario_of_ones_own_runs_from_its_file(tmp_path: Path) -> None:
    result = invoke("run", str(OWN / "own.toml"), "--results", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    (scenario,) = report(tmp_path)["scenarios"]
    assert scenario["topic"] == "Programs of the tests' own"
    assert [c["passed"] for c in scenario["checks"]] == [True] * 4
    log = (tmp_path / "latest" / "logs" / "own" / "server.kv.log").read_text()
    assert "kv server listening on 198.1" in log


def test_a_server_bound_to_loopback_is_caught_with_what_the_client_said(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(OWN, broken)
    scenario = broken / "own.toml"
    scenario.write_text(scenario.read_text().replace('"kvserver.py", "{server.lan.ipv4}"',
                                                     '"kvserver.py", "127.0.0.1"'))
    result = invoke("run", str(scenario), "--results", str(tmp_path / "results"))
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    checks = {c["name"]: c for c in report(tmp_path / "results")["scenarios"][0]["checks"]}
    client = checks["the client's set and get come back"]
    assert not client["passed"] and client["observed"] == "exit 1"
    assert "ConnectionRefusedError" in client["evidence"]["stderr"]
    loopback = checks["the server is bound to its LAN address: its own loopback is refused"]
    assert (loopback["passed"], loopback["observed"]) == (False, "ok")


def test_the_example_project_holds_from_invoke_and_from_pytest(tmp_path: Path) -> None:
    ran = invoke("run", "examples/shout/shout.toml", "--results", str(tmp_path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/shout"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout


# -- the same powers from pytest ---------------------------------------------------


@pytest.fixture
def kv(socklab_lab) -> Lab:
    """Two hosts with the key-value programs on both (files=), the server's host on the node image by name."""
    lab: Lab = socklab_lab(hosts={"server": ["lan"], "client": ["lan"]}, files={"/lab/kv": "own/kv"},
                           image={"server": "socklab-node:latest"})
    return lab


def test_start_any_program_and_judge_it_by_what_it_printed(kv: Lab) -> None:
    service = kv.start("server", KV_SERVER, cwd="/lab/kv", ready="log:listening on")
    seen = kv.run("client", ["python3", "kvclient.py", "SET a 1", "GET a"], cwd="/lab/kv")
    assert (seen.exit_code, seen.stdout) == (0, "OK\n1\n"), seen
    assert "kv server listening on" in kv.service_logs([service])[service.name]


def test_put_and_get_move_files_both_ways(kv: Lab) -> None:
    kv.put("client", b"GET a\n", "/lab/requests.txt")
    kv.start("server", KV_SERVER, cwd="/lab/kv", ready="tcp://*:65432")
    seen = kv.run("client", shell="nc -N {server.lan.ipv4} 65432 < /lab/requests.txt > /lab/answer.txt")
    assert seen.exit_code == 0, seen
    assert kv.get("client", "/lab/answer.txt") == b"NOT FOUND\n"
    assert kv.get("server", "/lab/kv") == {name: (OWN / "kv" / name).read_bytes()
                                           for name in ("kvclient.py", "kvserver.py", "kvstore.py")}


def test_wait_ready_waits_for_a_server_the_lab_did_not_start(kv: Lab) -> None:
    kv.exec("server", ["sh", "-c", "sleep 0.5; exec nc -lk 7100 > /dev/null"], detach=True)
    kv.wait_ready("server", "tcp://*:7100")
    assert kv.probe("client", to="{server.lan.ipv4}:7100").outcome == "ok"
    with pytest.raises(LabError, match="nothing ready at tcp://\\*:7101 after 1 s"):
        kv.wait_ready("server", "tcp://*:7101", timeout=1)


def test_a_command_that_is_not_on_the_host_says_so(kv: Lab) -> None:
    with pytest.raises(LabError, match="not found"):
        kv.start("server", ["kv-server-that-is-not-there"], ready="tcp://*:65432")
    seen = kv.run("client", ["no-such-client"])
    assert seen.exit_code == 127 and "not on the host" in str(seen), seen


def test_files_that_are_not_there_are_refused_before_any_lab(socklab_lab) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        socklab_lab(hosts={"server": ["lan"]}, files={"/lab/x": "own/nowhere"})
    with pytest.raises(SocklabError):
        socklab_lab(hosts={"server": ["lan"]}, image={"server": "no-such-image:at-all"})
