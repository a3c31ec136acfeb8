"""The swarm backend across three real engines on this machine: a lab's hosts apart, the checks holding as on one.

The cluster is tools/swarm_cluster.py's: three more dockerds, each in a
network namespace of its own, joined over veth links (never the machine's
own engine, whose swarm membership stays as it is). Only the manager is
given the node image (as a machine that built it would have it); the
backend sends it to the two others. Root only (namespaces, dockerd), and
exclusive: three engines on two shared cores do not run beside other tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import docker
from socklab import api, catalogue
from socklab.backend.docker.images import image_name
from socklab.backend.swarm import SwarmBackend
from socklab.constants import LABEL_LAB
from tests.helpers import invoke
from tests.swarm import engines_cluster
from tools import swarm_cluster

pytestmark = [
    pytest.mark.exclusive,
    pytest.mark.skipif(os.geteuid() != 0, reason="the test cluster needs root: network namespaces, mounts, dockerd"),
]


@pytest.fixture(scope="module")
def cluster(engine: object) -> Iterator[swarm_cluster.Cluster]:
    """Three engines in a swarm, the manager holding the node image the machine's engine has; gone afterwards."""
    with engines_cluster("sl") as made:
        yield made


def engines(cluster: swarm_cluster.Cluster) -> dict[str, docker.DockerClient]:
    return {e.name: docker.DockerClient(base_url=e.endpoint, timeout=120) for e in cluster.engines}


def test_a_lab_spreads_over_the_engines_and_a_client_reaches_a_server_on_another(
    cluster: swarm_cluster.Cluster, lab_owner: str,
) -> None:
    backend = SwarmBackend(cluster.manager.endpoint)
    (scenario,) = catalogue.load(["tcp-echo"])
    running = api.up(scenario, backend=backend)
    try:
        server, client = backend.find_host("server", running.lab_id), backend.find_host("client", running.lab_id)
        assert server.node and client.node and server.node != client.node  # apart: two kernels, a VXLAN between
        (listed,) = [lab for lab in backend.labs() if lab.lab_id == running.lab_id]
        by_id = {node.node_id: node.hostname for node in backend.cluster.nodes}
        assert listed.nodes == (by_id[client.node], by_id[server.node])  # in the order of hosts: client, server
        shown = invoke("labs", "--backend", "swarm", env=cluster.environment())
        assert f"client ({by_id[client.node]})" in shown.stdout and f"server ({by_id[server.node]})" in shown.stdout
        address = running.hosts["server"]["lan"].ipv4
        said = backend.exec(client, ["python3", "-m", "nodes.echo", "client", "--to", f"{address}:65432"], user="lab")
        assert said.ok and json.loads(said.stdout)["outcome"] == "echoed", said
        # the node image went from the manager to the engines that lacked it
        for name, client_of in engines(cluster).items():
            assert image_name() in client_of.images.get(image_name()).tags, name
    finally:
        api.down(running.lab_id, backend)
    for name, client_of in engines(cluster).items():
        assert not client_of.api.containers(all=True, filters={"label": f"{LABEL_LAB}={running.lab_id}"}), name
        assert not client_of.api.networks(filters={"label": f"{LABEL_LAB}={running.lab_id}"}), name


def test_the_whole_catalogue_holds_across_engines_as_on_one(cluster: swarm_cluster.Cluster, tmp_path: Path) -> None:
    """IPv6 given by socklab, 1500-byte MTU lessons over 1550-byte links, broadcast and multicast kept together.

    Two labs at a time: three engines share the machine's two cores here, and with four, after the rest of
    the suite, the manager twice let a host's join to an overlay pass Docker's 20 s deadline ("attaching to
    network failed ... context deadline exceeded"), or held a removed host's attachment for more than 10 s.
    """
    result = invoke("run", "--all", "--backend", "swarm", "--jobs", "2", "--results", str(tmp_path),
                    env=cluster.environment(), timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert len(report["scenarios"]) == len(catalogue.load(()))
    assert all(s["status"] == "passed" for s in report["scenarios"]), result.stdout
