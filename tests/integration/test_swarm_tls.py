"""The swarm backend reaching a node's engine as a remote machine's: ``tcp://`` with TLS and client certificates.

The cluster is tools/swarm_cluster.py's, made with ``tls``: each engine
also listens on its link address with TLS (client certificates required)
and the worker's node label names that endpoint. socklab runs in the
bridge's namespace (``Cluster.client_argv``), the only place the engines'
TCP ports can be reached from; the manager is reached on its socket. Root
only, and exclusive, as the other cluster tests.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import docker
from socklab.constants import LABEL_LAB, LABEL_OWNER
from tests.helpers import invoke
from tests.swarm import engines_cluster
from tools import swarm_cluster

pytestmark = [
    pytest.mark.exclusive,
    pytest.mark.skipif(os.geteuid() != 0, reason="the test cluster needs root: network namespaces, mounts, dockerd"),
]

# A CA bundle for the machine's other services, as many machines set: it must not replace the engine's CA (with
# the Docker SDK alone it does, and every request to the engine fails: docker-py issue 2433).
SYSTEM_BUNDLE = {"REQUESTS_CA_BUNDLE": ssl.get_default_verify_paths().openssl_cafile}


@pytest.fixture(scope="module")
def cluster(engine: object) -> Iterator[swarm_cluster.Cluster]:
    with engines_cluster("tl", engines=2, tls=True) as made:
        yield made


def socklab(cluster: swarm_cluster.Cluster, *args: str, env: dict[str, str] | None = None,
            stdin: str | None = None) -> tuple[int, str]:
    """``invoke TASK --backend swarm ARGS`` from the bridge's namespace: its exit status and all it printed."""
    done = invoke(args[0], "--backend", "swarm", *args[1:], env=cluster.environment() | SYSTEM_BUNDLE | (env or {}),
                  prefix=cluster.client_argv(), stdin=stdin)
    return done.returncode, done.stdout + done.stderr


def test_the_checks_hold_with_hosts_on_a_node_reached_over_tls(cluster: swarm_cluster.Cluster, tmp_path: Path,
                                                               lab_owner: str) -> None:
    began = int(time.time()) - 1
    status, said = socklab(cluster, "run", "tcp-echo,udp-echo,app-protocol", "--results", str(tmp_path))
    assert status == 0, said
    # the hosts went apart: each lab had hosts on the worker, whose engine was reached over TLS only
    worker = docker.DockerClient(base_url=cluster.engines[1].endpoint, timeout=60)
    made = worker.api.events(since=began, until=int(time.time()) + 1, decode=True,
                             filters={"type": "container", "event": "create", "label": f"{LABEL_OWNER}={lab_owner}"})
    labs = {event["Actor"]["Attributes"][LABEL_LAB] for event in made}
    assert len(labs) == 3, labs
    for scenario in json.loads((tmp_path / "latest" / "report.json").read_text())["scenarios"]:
        # every check through its host's agent, those on the worker too: over TLS, the channel is never read and
        # written at once (an SSL connection allows it from one thread at a time)
        assert {check["via"] for check in scenario["checks"]} == {"agent"} and not scenario["notes"], scenario
    assert not left_on(cluster, lab_owner)


def test_a_host_on_the_node_reached_over_tls_is_listed_and_takes_standard_input(
    cluster: swarm_cluster.Cluster, lab_owner: str,
) -> None:
    status, said = socklab(cluster, "up", "tcp-echo")
    assert status == 0, said
    lab = said.split("Lab ", 1)[1].split()[0]
    try:
        status, listed = socklab(cluster, "labs")
        assert status == 0, listed
        worker = cluster.engines[1].hostname
        (remote,) = [host for host in ("client", "server") if f"{host} ({worker})" in listed]
        # no half-close over TLS: the command is given exactly the bytes sent, then their end
        status, echoed = socklab(cluster, "exec", remote, "--lab", lab, "--", "cat", stdin="across TLS\n" * 1000)
        assert (status, echoed) == (0, "across TLS\n" * 1000), echoed[:600]
    finally:
        status, said = socklab(cluster, "down", "--lab", lab)
        assert status == 0, said
    assert not left_on(cluster, lab_owner)


def test_without_the_client_certificate_the_run_stops_with_the_fix_and_leaves_nothing(
    cluster: swarm_cluster.Cluster, tmp_path: Path, lab_owner: str,
) -> None:
    status, said = socklab(cluster, "run", "tcp-echo", "--results", str(tmp_path),
                           env={"DOCKER_TLS_VERIFY": "", "DOCKER_CERT_PATH": ""})
    assert status == 2, said
    assert f"{cluster.engines[1].tcp_endpoint.removeprefix('tcp://')} answered, but it speaks TLS" in said, said
    assert "DOCKER_CERT_PATH" in said
    assert not left_on(cluster, lab_owner)


def left_on(cluster: swarm_cluster.Cluster, owner: str) -> list[str]:
    """What of this owner's is on any engine of the cluster: containers, networks, volumes."""
    found = []
    for engine in cluster.engines:
        client = docker.DockerClient(base_url=engine.endpoint, timeout=60)
        label = {"label": f"{LABEL_OWNER}={owner}"}
        found += [f"{engine.name}: container {c['Names'][0]}" for c in client.api.containers(all=True, filters=label)]
        found += [f"{engine.name}: network {n['Name']}" for n in client.api.networks(filters=label)]
        found += [f"{engine.name}: volume {v['Name']}" for v in client.api.volumes(filters=label).get("Volumes") or []]
    return found
