"""The swarm backend on a real single-node swarm: the machine's own engine, made a manager for these tests only.

Exclusive: ``docker swarm init`` changes the engine for everybody while it
lasts (tests/swarm.py undoes it, leaving the engine as found), so these
tests never run beside others. What they show: labs run on overlay
networks, through the manager, with each host a container on its node's
engine; the checks hold as on one engine, IPv6 ones included (given by
socklab: socklab.backend.swarm.ipv6); ``labs``, ``exec`` and ``down`` find
the hosts through the swarm; and nothing is left behind.
"""

from __future__ import annotations

import csv
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import docker
from socklab import api, catalogue
from socklab.backend import subnets
from socklab.backend.docker.backend import CreatedNetwork, lab_labels
from socklab.backend.swarm import SwarmBackend
from socklab.backend.swarm.overlays import OverlayNetworks
from socklab.concurrency import parallel_map
from socklab.constants import LABEL_LAB
from socklab.errors import EXIT_CHECK_FAILED
from socklab.model import Network
from tests.helpers import invoke
from tests.swarm import single_node_swarm

pytestmark = pytest.mark.exclusive


@pytest.fixture(scope="module")
def swarm() -> Iterator[docker.DockerClient]:
    with single_node_swarm() as client:
        yield client


def report(folder: Path) -> dict:
    return json.loads((folder / "latest" / "report.json").read_text())


def test_ipv4_scenarios_hold_on_overlay_networks_as_on_one_engine(swarm: docker.DockerClient, tmp_path: Path) -> None:
    result = invoke("run", "tcp-echo,udp-echo,lan-interface,stream-vs-datagram", "--backend", "swarm", "--jobs", "2",
                    "--results", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    scenarios = report(tmp_path)["scenarios"]
    assert {s["name"]: s["status"] for s in scenarios} == dict.fromkeys(
        ["tcp-echo", "udp-echo", "lan-interface", "stream-vs-datagram"], "passed")
    assert all(check["passed"] for s in scenarios for check in s["checks"])


def test_a_lab_on_the_swarm_is_made_of_overlays_and_containers_found_through_it(
    swarm: docker.DockerClient, lab_owner: str,
) -> None:
    backend = SwarmBackend()
    (scenario,) = catalogue.load(["tcp-echo"])
    running = api.up(scenario, backend=backend)
    try:
        (network,) = swarm.api.networks(filters={"label": f"{LABEL_LAB}={running.lab_id}"})
        assert (network["Driver"], network["Scope"], network["Internal"], network["Attachable"]) == (
            "overlay", "swarm", True, True)
        (listed,) = [lab for lab in api.labs(backend) if lab.lab_id == running.lab_id]
        assert listed.hosts == ("client", "server") and listed.networks == ("lan",) and listed.owner == lab_owner
        handle = backend.find_host("client", running.lab_id)
        assert handle.node == swarm.info()["Swarm"]["NodeID"]
        server = running.hosts["server"]["lan"].ipv4
        said = backend.exec(handle, ["python3", "-m", "nodes.echo", "client", "--to", f"{server}:65432"], user="lab")
        assert said.ok and json.loads(said.stdout)["outcome"] == "echoed", said
    finally:
        removed = api.down(running.lab_id, backend)
    assert removed >= 3  # two hosts and the network, at least (their scratch volumes too)
    assert not swarm.api.networks(filters={"label": f"{LABEL_LAB}={running.lab_id}"})
    assert not swarm.api.containers(all=True, filters={"label": f"{LABEL_LAB}={running.lab_id}"})


def test_ipv6_given_by_socklab_holds_as_on_one_engine(swarm: docker.DockerClient, tmp_path: Path) -> None:
    """Dual-stack lessons, names resolving to both families, link-local addresses, 1500-byte MTU lessons."""
    names = ["dual-stack", "hostname-binding", "ipv6-link-local", "udp-limits"]
    result = invoke("run", ",".join(names), "--backend", "swarm", "--jobs", "2", "--results", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s["name"]: s["status"] for s in report(tmp_path)["scenarios"]} == dict.fromkeys(names, "passed")


def test_a_class_is_graded_on_the_swarm_as_on_one_engine(swarm: docker.DockerClient, tmp_path: Path) -> None:
    """The class of test_grading: the same marks, each student's labs on the swarm's nodes."""
    rubric = tmp_path / "grading.toml"
    rubric.write_text('scenarios = ["tcp-echo", "lan-interface"]\n'
                      '[roles.echo]\nrun = "python3 echo-server.py {host} {port}"\n'
                      '[points]\n"tcp-echo / the client host gets its message echoed" = 2\n')
    result = invoke("grade", str(Path(__file__).parent / "class_echo"), "--role", "echo", "--rubric", str(rubric),
                    "--results", str(tmp_path / "out"), "-j", "2", "--backend", "swarm", timeout=600)
    assert result.returncode == EXIT_CHECK_FAILED, result.stdout + result.stderr
    rows = {row["student"]: row for row in csv.DictReader((tmp_path / "out" / "latest" / "class.csv").open())}
    echoed = "tcp-echo / the client host gets its message echoed"
    assert [rows[name][echoed] for name in ("alice", "bob", "carol", "dave")] == ["2", "2", "0", "0"], rows


def test_two_clients_making_networks_at_once_on_one_manager_never_share_a_subnet(
    swarm: docker.DockerClient, lab_owner: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both see the same subnets free and ask for the same one; the manager takes both and allocates one."""
    listed = threading.Barrier(2, timeout=30)
    real_taken = OverlayNetworks.taken_subnets

    def taken_then_wait(self: OverlayNetworks) -> list[Any]:
        taken = real_taken(self)
        listed.wait()  # both have listed before either creates: they choose alike
        return taken

    same_start = subnets.free_pairs
    monkeypatch.setattr(OverlayNetworks, "taken_subnets", taken_then_wait)
    monkeypatch.setattr(subnets, "free_pairs", lambda taken, rng=None: same_start(taken, random.Random(16)))
    labels = lab_labels("race", "race")

    def make(lab: str) -> CreatedNetwork:
        return OverlayNetworks(docker.from_env()).create_network(lab, Network("lan", ipv6=False), labels)

    try:
        first, second = parallel_map(make, ["race-a", "race-b"])
        assert first.subnet4 != second.subnet4
        for made in (first, second):
            config = swarm.api.inspect_network(made.name)["IPAM"]["Config"]
            assert [pool["Subnet"] for pool in config] == [str(made.subnet4)]
    finally:
        OverlayNetworks(docker.from_env()).remove_labelled(f"{LABEL_LAB}=race")


def test_the_readme_pytest_example_runs_on_the_swarm_with_socklab_backend_set(
    swarm: docker.DockerClient, pytester: pytest.Pytester, lab_owner: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An engineer's cross-host tests move to the swarm with one variable; IPv6 (socklab's own there) included."""
    monkeypatch.setenv("SOCKLAB_BACKEND", "swarm")
    pytester.makepyfile(test_across='''
def test_echo_across_hosts_over_both_families(socklab_lab):
    lab = socklab_lab(hosts={"server": ["lan"], "client": ["lan"]})
    lab.start("server", "echo serve --bind :: --port 65432", ready="tcp://*:65432")
    for to in ("{server.lan.ipv4}:65432", "[{server.lan.ipv6}]:65432"):
        seen = lab.probe("client", to=to, send="Hello, world")
        assert seen.outcome == "echoed", seen
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not swarm.api.networks(filters={"label": f"socklab.owner={lab_owner}"})
