"""A catalogue of one's own, and invoke exec as a user types it: argv kept, exit status back."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from socklab.errors import EXIT_BAD_INPUT
from tests.helpers import ROOT, invoke

MINE = Path(__file__).parent / "data" / "mine"


def test_a_folder_of_ones_own_is_the_catalogue_for_list_explain_and_run(tmp_path: Path) -> None:
    listed = invoke("list", "--scenarios", str(MINE))
    assert listed.returncode == 0 and "Lessons of my own" in listed.stdout and "greeting" in listed.stdout
    assert "tcp-echo" not in listed.stdout
    explained = invoke("explain", "greeting", env={"SOCKLAB_SCENARIOS": str(MINE)})
    assert explained.returncode == 0 and "A netcat one-liner greets whoever connects" in explained.stdout
    ran = invoke("run", "greeting", "--scenarios", str(MINE), "--results", str(tmp_path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (scenario,) = json.loads((tmp_path / "latest" / "report.json").read_text())["scenarios"]
    (check,) = scenario["checks"]
    assert check["passed"] and check["evidence"]["stdout"].startswith("hello from 198.1")


def test_docs_writes_the_table_into_the_folders_own_readme(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    shutil.copytree(MINE, folder)
    result = invoke("docs", "--scenarios", str(folder))
    assert result.returncode == 0, result.stderr
    assert "| Lessons of my own | `greeting` | A netcat one-liner greets whoever connects | 1 |" in (
        folder / "README.md").read_text()


def test_a_folder_that_is_not_there_is_a_usage_error() -> None:
    result = invoke("list", "--scenarios", str(MINE / "nowhere"))
    assert result.returncode == EXIT_BAD_INPUT and "is not a folder" in result.stderr


def test_exec_keeps_the_words_as_typed_and_returns_the_exit_status() -> None:
    up = invoke("up", "tcp-echo")
    assert up.returncode == 0, up.stderr
    named = re.search(r"invoke down --lab (\S+)`", up.stdout)
    assert named, up.stdout
    lab = named.group(1)
    try:
        probe = invoke("exec", "client", "--lab", lab, "--", "python3", "-m", "nodes.probe", "--to", "server:65432",
                       "--send", "Hello, world")
        assert probe.returncode == 0, probe.stderr
        assert json.loads(probe.stdout)["reply"] == "Hello, world"
        line = invoke("exec", "client", "--lab", lab, "--", "echo $((6*7)); exit 3")
        assert (line.returncode, line.stdout.strip()) == (3, "42")
        data = bytes(range(256)) * 4096  # a megabyte, every byte value: what a pipe carries arrives whole
        piped = subprocess.run([sys.executable, "-m", "invoke", "exec", "client", "--lab", lab, "--", "sh", "-c",
                                "cat > /lab/piped && sha256sum /lab/piped"], input=data, capture_output=True,
                               cwd=ROOT, timeout=120)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
        with subprocess.Popen([sys.executable, "-m", "invoke", "exec", "client", "--lab", lab, "--", "true"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=ROOT) as ignoring:
            try:  # the pipe stays open, never written: the command ends all the same
                assert ignoring.wait(timeout=60) == 0
            finally:
                ignoring.kill()
    finally:
        assert invoke("down", "--lab", lab).returncode == 0
