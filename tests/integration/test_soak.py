"""Load held, in small: labs made and removed in a loop leave nothing growing, and two runs at once both pass.

The heavy version (eight whole catalogues at once, 200 labs in a loop, the
host's firewall rules too) is a benchmark, ``invoke bench --only load``
(socklab/benchmarks/load.py), whose counting this shares. Here everything
counted on the engine is this test's own (its owner, ``lab_owner``); the
host's veth links are the whole host's, so only the loose ones count (on no
bridge: what a network removed under its endpoints would leave), after a
moment to settle, since other labs on the engine make and remove theirs
meanwhile.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from socklab.benchmarks import load
from socklab.errors import EXIT_OK
from tests.helpers import ROOT, labelled

LABS = 20
WARM_UP = 2  # labs before counting: the engine client's connection pool fills, modules load
RUN_LIMIT = 300  # s: only stops a hung run


def loose_veths() -> int:
    """The host's veth links on no bridge: a lab's are on its network's bridge while it lives, and go with it."""
    return sum(1 for line in load.veth_links() if " master " not in line)


def test_labs_made_and_removed_in_a_loop_leave_nothing_growing(backend, lab_owner: str) -> None:
    for _ in range(WARM_UP):
        load.one_lab(backend)
    process_before = load.process_counts()
    engine_before = load.engine_counts(backend, lab_owner)
    veths_before = loose_veths()
    started = time.monotonic()
    for _ in range(LABS):
        load.one_lab(backend)
    took = time.monotonic() - started
    assert engine_before == load.engine_counts(backend, lab_owner) == dict.fromkeys(load.ENGINE_KINDS, 0)
    assert labelled(owner=lab_owner) == []
    process_after = load.settled(load.process_counts, process_before)
    assert process_after == process_before, f"{LABS} labs in {took:.0f} s: this process grew {process_after}"
    veths = load.settled(lambda: {"loose veth links": loose_veths()}, {"loose veth links": veths_before})
    assert veths["loose veth links"] is not None and veths["loose veth links"] <= veths_before, (
        f"{LABS} labs left loose veth links on the host: {veths_before} before, {veths} after")


def test_two_runs_of_a_few_scenarios_at_once_both_pass(engine, lab_owner: str, tmp_path: Path) -> None:
    scenarios = "loopback-only,tcp-echo,udp-echo"
    runs = [subprocess.Popen([sys.executable, "-m", "invoke", "run", scenarios, "--quiet", "--results",
                              str(tmp_path / f"run-{i}")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for i in range(2)]
    try:
        ended = [run.communicate(timeout=RUN_LIMIT) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)  # each tears its labs down first
                run.communicate(timeout=120)
    for run, (out, err) in zip(runs, ended, strict=True):
        assert run.returncode == EXIT_OK, out + err
    assert labelled(owner=lab_owner) == []
