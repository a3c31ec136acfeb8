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

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import docker
from socklab import api, catalogue
from socklab.backend.swarm import SwarmBackend
from socklab.constants import LABEL_LAB
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
