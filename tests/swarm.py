"""Swarms for tests: the machine's own engine as a single-node swarm, or a cluster of engines of the tests' own.

A single-node swarm of the machine's own engine is made for a test and undone after, leaving the engine as found.

``docker swarm init`` listens on loopback only (127.0.0.1:2377), so nothing
of the swarm is reachable from the machine's interfaces. Undoing it is
``docker swarm leave --force``, and removing ``docker_gwbridge``, the bridge
the engine makes when a container first joins an overlay, if it was not
there before. An engine that is already part of a swarm is used as it is
(as a manager) and never left; a worker cannot make networks, so the test
is skipped there.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from docker.errors import APIError, NotFound

import docker
from socklab.backend.docker.images import image_name
from tools import swarm_cluster

GATEWAY_BRIDGE = "docker_gwbridge"


@contextlib.contextmanager
def single_node_swarm() -> Iterator[docker.DockerClient]:
    """The machine's engine as a swarm manager for the duration; as found afterwards."""
    client = docker.from_env(timeout=120)
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") == "active":
        if not swarm.get("ControlAvailable"):
            pytest.skip("this engine is a swarm worker (not a manager): socklab's swarm backend needs a manager")
        yield client  # somebody's swarm: used, never left
        return
    had_bridge = _exists(client, GATEWAY_BRIDGE)
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield client
    finally:
        client.swarm.leave(force=True)
        if not had_bridge:
            with contextlib.suppress(NotFound, APIError):  # APIError: somebody else's container is on it now
                client.api.remove_network(GATEWAY_BRIDGE)


def _exists(client: docker.DockerClient, network: str) -> bool:
    try:
        client.api.inspect_network(network)
    except NotFound:
        return False
    return True


@contextlib.contextmanager
def engines_cluster(prefix: str, engines: int = 3, tls: bool = False) -> Iterator[swarm_cluster.Cluster]:
    """A cluster of tools/swarm_cluster.py, its manager holding the node image as a machine that built it would
    (with ``tls``, its workers reached over TCP with TLS).

    The other engines get the image from the swarm backend (it sends it to
    the nodes that lack it). Removed afterwards, whatever happened; nothing
    of it may remain.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    made = swarm_cluster.up(name, engines=engines, tls=tls)
    try:
        here = docker.from_env(timeout=300)
        manager = docker.DockerClient(base_url=made.manager.endpoint, timeout=300)
        manager.images.load(here.api.get_image(image_name()))
        yield made
    finally:
        swarm_cluster.down(name)
    assert not swarm_cluster.leftovers(name)
