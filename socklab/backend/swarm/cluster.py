"""The swarm as socklab sees it: a manager for networks, and each node's own engine for its hosts.

Swarm runs services; it does not create a plain container on a node, nor
exec into one there. So socklab speaks to the manager for what is the
cluster's (overlay networks, the list of nodes) and to each node's engine
for the hosts placed on it. How to reach a node's engine is written on the
node itself, as the node label ``socklab.endpoint`` (``unix://``, ``tcp://``
with the environment's TLS settings, or ``ssh://``, as the Docker SDK takes
them): one place, read by every client of the cluster. The manager's own
node needs no label: it is reached as the manager is.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from socklab.backend.docker.backend import DockerBackend
from socklab.backend.docker.engine import EngineUnreachable, connect, engine_errors
from socklab.backend.swarm.placement import Node
from socklab.errors import EnvironmentProblem

ENDPOINT_LABEL = "socklab.endpoint"
MANAGER_VARIABLE = "SOCKLAB_SWARM_MANAGER"
# How long a node's engine may take to answer a ping (GET /_ping), when socklab first connects to it and before
# listing or tearing down there. A healthy engine answers in milliseconds, even busy; one that does not within a few
# seconds is stopped, hung or cut off, and teardown passes it over (naming it) rather than wait on it for the SDK's
# 120 s. Requests themselves keep the 120 s they have on one engine: a check's command runs inside one exec
# request for up to its limit (120 s by default), so a shorter request timeout would cut healthy checks short.
ANSWER_WAIT = 5.0
REQUEST_WAIT = 120  # the Docker SDK's default, as socklab.backend.docker.engine.connect uses for one engine
NOT_A_MANAGER = (
    "Fix: point socklab at a manager of the swarm ({variable}=unix:///PATH, tcp://HOST:2376 or ssh://USER@HOST; "
    "DOCKER_HOST is used if it is not set), or make this engine one with `docker swarm init`; "
    "`python tools/swarm_cluster.py up` builds a test cluster on this machine (docs/swarm-cluster.md)"
)


def manager_endpoint() -> str:
    """The manager's endpoint as the user set it: ``$SOCKLAB_SWARM_MANAGER``, else DOCKER_HOST's (``""``)."""
    return os.environ.get(MANAGER_VARIABLE, "")


@dataclass
class Cluster:
    """The manager, the nodes that can take hosts, and a backend per node's engine (made on first use)."""

    manager: DockerBackend
    nodes: list[Node]
    unreachable: dict[str, str]  # hostname -> why socklab cannot place hosts there
    _engines: dict[str, DockerBackend] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def discover(cls, endpoint: str | None = None) -> Cluster:
        """Ask the manager for its nodes; exit-2 errors if it answers not, or is no manager."""
        endpoint = manager_endpoint() if endpoint is None else endpoint
        client = connect(base_url=endpoint or None)
        with engine_errors("asking the swarm manager for its nodes"):
            swarm = client.info().get("Swarm") or {}
            if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
                where = endpoint or "the engine DOCKER_HOST names (the local one by default)"
                raise EnvironmentProblem(f"{where} is not a manager of a Docker swarm (its swarm state: "
                                         f"{swarm.get('LocalNodeState', 'unknown')}). "
                                         + NOT_A_MANAGER.format(variable=MANAGER_VARIABLE))
            listed = client.api.nodes()
        manager = DockerBackend(client)
        nodes, unreachable = [], {}
        for raw in listed:
            node, why = node_from_listing(raw, swarm["NodeID"], endpoint)
            if node is None:
                unreachable[raw["Description"]["Hostname"]] = why
            else:
                nodes.append(node)
        cluster = cls(manager, sorted(nodes, key=lambda n: n.hostname), unreachable)
        for node in cluster.nodes:
            if node.node_id == swarm["NodeID"]:
                cluster._engines[node.node_id] = manager
        return cluster

    def engine(self, node_id: str, *, within: float | None = None) -> DockerBackend:
        """The backend of one node's engine, connected on first use; with ``within``, only if it answers that fast.

        Connecting waits ANSWER_WAIT for the engine's first answer, not the
        SDK's 120 s, and outside the lock, so that a hung node holds up no
        other node's calls. ``within`` (seconds) asks for a ping first: what
        lists or tears down on every node uses it, and a node that does not
        answer in time raises ``EngineUnreachable``, as one that refuses does.
        """
        with self._lock:
            engine = self._engines.get(node_id)
        if engine is None:
            node = self.node(node_id)
            client = connect(timeout=int(ANSWER_WAIT), base_url=node.endpoint)
            client.api.timeout = REQUEST_WAIT
            with self._lock:
                engine = self._engines.setdefault(node_id, DockerBackend(client))
            if engine.client is not client:  # another thread connected meanwhile: one client per node
                client.close()
        if within is not None:
            try:
                answer = engine.api.get(f"{engine.api.base_url}/_ping", timeout=within)
            except requests.RequestException as exc:
                raise EngineUnreachable(f"swarm node {self.node(node_id)}'s engine did not answer a ping "
                                        f"({exc})") from None
            if answer.status_code != 200:
                raise EngineUnreachable(f"swarm node {self.node(node_id)}'s engine answered a ping with "
                                        f"{answer.status_code} {answer.reason}")
        return engine

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise EnvironmentProblem(f"the swarm has no node {node_id} that socklab can reach now "
                                 f"(`docker node ls` on the manager shows the nodes)")


def node_from_listing(raw: dict[str, Any], manager_id: str, manager_endpoint: str) -> tuple[Node | None, str]:
    """A node from the manager's listing, or why it cannot take hosts."""
    spec, status = raw.get("Spec") or {}, raw.get("Status") or {}
    labels = dict(spec.get("Labels") or {})
    hostname = (raw.get("Description") or {}).get("Hostname", raw["ID"])
    if status.get("State") != "ready":
        return None, f"its state is {status.get('State', 'unknown')}"
    if spec.get("Availability") != "active":
        return None, f"its availability is {spec.get('Availability', 'unknown')}"
    endpoint = labels.get(ENDPOINT_LABEL, "")
    if raw["ID"] == manager_id:
        endpoint = endpoint or manager_endpoint or "local"
    if not endpoint:
        return None, (f"it has no {ENDPOINT_LABEL} label saying how to reach its engine; add one with "
                      f"`docker node update --label-add {ENDPOINT_LABEL}=tcp://HOST:2376 {hostname}`")
    return Node(raw["ID"], hostname, endpoint, labels, raw["ID"] == manager_id), ""
