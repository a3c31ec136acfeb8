"""A swarm node that leaves while labs run, and comes back: real engines of tools/swarm_cluster.py, one killed.

Three engines: e1 the manager (zone a), e2 (zone b) and e3 (zone c), a
worker whose dockerd the tests kill (SIGKILL: its socket then refuses, as a
machine that is gone does; its containers' processes live on without it)
and start again (``swarm_cluster.restart_engine``). The tests' own scenario
files place hosts by zone, so which lab has a host on e3 is known.

What must hold: an exec on a host of the lost node fails with ``NodeLost``
naming it; a run fails only the scenarios with hosts there, and goes on;
teardown names the node that still holds hosts and how to clean them; once
the node is back, the owner's next command on the swarm finishes that
teardown (``socklab.backend.swarm.unfinished``), as ``invoke clean --backend
swarm`` does, and nothing of the tests remains on any engine. Root only, and exclusive, as
tests/integration/test_swarm_across_engines.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker.models.containers import Container

import docker
from socklab import api, catalogue
from socklab.backend.swarm import NodeLost, SwarmBackend
from socklab.constants import LABEL_OWNER, LABEL_SCENARIO
from tests.helpers import ROOT, invoke
from tests.swarm import engines_cluster
from tools import swarm_cluster

pytestmark = [
    pytest.mark.exclusive,
    pytest.mark.skipif(os.geteuid() != 0, reason="the test cluster needs root: network namespaces, mounts, dockerd"),
]

ZONES = {"e1": "a", "e2": "b", "e3": "c"}
GATE = "/tmp/go"  # a gated check waits for this file on its host; the test makes it once the node is lost
WAITING = "/tmp/waiting"  # ... and the check makes this one as it starts waiting

SCENARIO = """
[scenario]
name = "{name}"
topic = "Binding and interfaces"
title = "A client in zone {client} reaches a server in zone {server}"
explains = "A lab for tests/integration/test_swarm_faults.py: where each host runs is set by node labels."

[networks.lan]
ipv6 = false

[hosts.server]
networks = ["lan"]
place = "zone={server}"

[hosts.client]
networks = ["lan"]
place = "zone={client}"

[[services]]
host = "server"
run = "echo serve --bind '' --port 65432"
ready = "tcp://0.0.0.0:65432"
"""

GATED_CHECK = f"""
[[checks]]
name = "the test lets the checks go on"
host = "client"
shell = "touch {WAITING}; i=0; while [ ! -e {GATE} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; test -e {GATE}"
expect = {{ exit = 0 }}
limit = 150
"""

ECHO_CHECK = """
[[checks]]
name = "the client gets its echo across the overlay"
host = "client"
probe = { proto = "tcp", to = "{server.lan.ipv4}:65432", send = "Hello, world" }
expect = "echoed"
"""


@pytest.fixture
def cluster(engine: object) -> Iterator[swarm_cluster.Cluster]:
    """Three engines in a swarm, each node labelled with its zone, the manager holding the node image; gone after.

    One cluster per test (a few seconds): each kills e3 once. Killed and restarted a second time in one cluster,
    e3's node once stayed Down for minutes, in CI and here.
    """
    with engines_cluster("fsw") as made:
        manager = docker.DockerClient(base_url=made.manager.endpoint, timeout=300)
        for member in made.engines:
            node_id = engine_client(member).info()["Swarm"]["NodeID"]
            node = manager.nodes.get(node_id)
            spec = node.attrs["Spec"]
            node.update({**spec, "Labels": {**spec.get("Labels", {}), "zone": ZONES[member.name]}})
        yield made


@pytest.fixture
def lost(cluster: swarm_cluster.Cluster, lab_owner: str) -> Iterator[swarm_cluster.Engine]:
    """The engine the test kills (e3); after the test it runs again, and nothing of the test's owner remains."""
    e3 = cluster.engines[2]
    try:
        yield e3
    finally:
        if dockerd_pid(e3) is None:
            swarm_cluster.restart_engine(cluster, e3)
        invoke("clean", "--backend", "swarm", env=cluster.environment(), timeout=300)
    assert not remains(cluster, lab_owner)


def engine_client(member: swarm_cluster.Engine) -> docker.DockerClient:
    return docker.DockerClient(base_url=member.endpoint, timeout=120)


def dockerd_pid(member: swarm_cluster.Engine) -> int | None:
    try:
        pid = int((Path(member.run_dir) / "dockerd.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def kill_engine(member: swarm_cluster.Engine) -> None:
    pid = dockerd_pid(member)
    assert pid is not None, f"dockerd of {member.name} is not running"
    os.kill(pid, signal.SIGKILL)


def remains(cluster: swarm_cluster.Cluster, owner: str, *, but: swarm_cluster.Engine | None = None) -> list[str]:
    """Every container, network and volume of this owner on any engine of the cluster (``but`` one, not asked)."""
    found = []
    for member in cluster.engines:
        if member is but:
            continue
        client, label = engine_client(member), {"label": f"{LABEL_OWNER}={owner}"}
        found += [f"{member.name}: container {c['Names']}" for c in client.api.containers(all=True, filters=label)]
        found += [f"{member.name}: network {n['Name']}" for n in client.api.networks(filters=label)]
        found += [f"{member.name}: volume {v['Name']}" for v in client.api.volumes(filters=label).get("Volumes") or []]
    return found


def scenario_file(folder: Path, name: str, server: str, client: str, checks: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SCENARIO.format(name=name, server=server, client=client) + checks)
    return path


def test_a_lost_node_fails_the_next_exec_and_down_names_it_and_what_it_held_goes_once_it_is_back(
    cluster: swarm_cluster.Cluster, lost: swarm_cluster.Engine, lab_owner: str, tmp_path: Path,
) -> None:
    backend = SwarmBackend(cluster.manager.endpoint)
    (scenario,) = catalogue.load([str(scenario_file(tmp_path, "fsw-held", "b", "c", ECHO_CHECK))])
    running = api.up(scenario, backend=backend)
    client = backend.find_host("client", running.lab_id)
    assert client.node == engine_client(lost).info()["Swarm"]["NodeID"]  # the zone put it on e3

    kill_engine(lost)
    with pytest.raises(NodeLost) as caught:
        backend.exec(client, ["true"], user="lab")
    assert lost.hostname in str(caught.value)

    # labs still lists the lab (its server and its network), and down names the node and the way to clean later
    (lab,) = [lab for lab in backend.labs() if lab.lab_id == running.lab_id]
    assert lab.hosts == ("server",) and lab.networks == ("lan",)
    with pytest.raises(NodeLost) as caught:
        api.down(running.lab_id, backend)
    assert lost.hostname in str(caught.value) and "invoke clean --backend swarm" in str(caught.value)
    assert not [found for found in remains(cluster, lab_owner, but=lost) if "container" in found]  # the server went

    swarm_cluster.restart_engine(cluster, lost)
    assert remains(cluster, lab_owner)  # the client on e3, and the network the manager could not remove
    # the next command of the owner's on the swarm, whatever it is, finishes the teardown the lost node cut short
    listed = invoke("labs", "--backend", "swarm", env=cluster.environment(), timeout=300)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert not remains(cluster, lab_owner)
    assert not engine_client(cluster.manager).configs.list(filters={"name": "socklab-unfinished-"})


def test_a_run_fails_only_the_scenarios_with_hosts_on_the_lost_node_and_goes_on(
    cluster: swarm_cluster.Cluster, lost: swarm_cluster.Engine, lab_owner: str, tmp_path: Path,
) -> None:
    files = [scenario_file(tmp_path, "fsw-held", "b", "c", GATED_CHECK + ECHO_CHECK),  # its client on e3
             scenario_file(tmp_path, "fsw-spared", "a", "b", GATED_CHECK + ECHO_CHECK)]
    results = tmp_path / "results"
    run = subprocess.Popen(
        [sys.executable, "-m", "invoke", "run", ",".join(str(f) for f in files), "--backend", "swarm", "--jobs", "2",
         "--results", str(results)], cwd=ROOT, env={**os.environ, **cluster.environment()},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Both labs are in their checks, each client waiting at the gate: the node now goes.
        waiting = {"fsw-held": lost, "fsw-spared": cluster.engines[1]}
        for name, member in waiting.items():
            gated(member, name, lambda c: c.exec_run(["test", "-e", WAITING]).exit_code == 0, run)
        kill_engine(lost)
        gated(cluster.engines[1], "fsw-spared", lambda c: c.exec_run(["touch", GATE]).exit_code == 0, run)
        stdout, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 1, stdout + stderr
    report = json.loads((results / "latest" / "report.json").read_text())
    status = {s["name"]: s for s in report["scenarios"]}
    assert status["fsw-spared"]["status"] == "passed", status["fsw-spared"]
    held = status["fsw-held"]
    assert held["status"] == "failed" and lost.hostname in held["error"], held
    assert "invoke clean --backend swarm" in held["error"], held  # its teardown: what the node holds, and the fix

    swarm_cluster.restart_engine(cluster, lost)
    cleaned = invoke("clean", "--backend", "swarm", env=cluster.environment(), timeout=300)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not remains(cluster, lab_owner)


def gated(member: swarm_cluster.Engine, scenario: str, done: Callable[[Container], bool],
          run: subprocess.Popen[str]) -> None:
    """Wait until ``done(container)`` holds for the client of ``scenario`` on ``member``; fail if the run ends first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert run.poll() is None, f"the run ended before the node was lost: {run.communicate()}"
        for container in engine_client(member).containers.list(
                filters={"label": [f"{LABEL_SCENARIO}={scenario}", "socklab.host=client"]}):
            if done(container):
                return
        time.sleep(0.5)
    pytest.fail(f"the client of {scenario} on {member.name} never got there")
