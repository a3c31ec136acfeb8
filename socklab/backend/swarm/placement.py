"""Which swarm node each host of a lab runs on.

A lab on a swarm is worth having because its hosts can be on different
machines: a client's packets then really cross a network between kernels.
So hosts go ``apart`` by default (each on the node holding the fewest hosts
of the lab so far), ``together`` when a scenario wants some of them to share
one kernel, or on the nodes that carry a node label (``zone=b``). Between
nodes equally good for the lab, the one running the fewest socklab hosts
overall wins, so that labs running side by side (``--jobs``) spread over
the cluster too.

Swarm's own scheduler places services, not the containers socklab makes on
each node's engine, so this is socklab's own choice; it is small, pure and
tested on its own.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from socklab.errors import SocklabError
from socklab.model import Host

APART, TOGETHER = "apart", "together"


@dataclass(frozen=True)
class Node:
    """A swarm node that can take hosts: ready, active, and with an engine socklab can reach."""

    node_id: str
    hostname: str
    endpoint: str  # how to reach its engine: unix://, tcp:// or ssh://, as the Docker SDK takes it
    labels: Mapping[str, str] = field(default_factory=dict)
    manager: bool = False

    def __str__(self) -> str:
        return self.hostname


class PlacementProblem(SocklabError):
    """No node of the swarm fits a host's ``place`` (exit 2): the message names the host, the key and the fix."""


def label_of(place: str) -> tuple[str, str] | None:
    """``"zone=b"`` -> ("zone", "b"); None for ``apart`` and ``together``."""
    if place in (APART, TOGETHER):
        return None
    name, _, value = place.partition("=")
    return name, value


def place(hosts: Sequence[Host], nodes: Sequence[Node], running: Mapping[str, int] | None = None,
          rng: random.Random | None = None) -> dict[str, Node]:
    """Each host's node, by host name.

    ``running`` counts the socklab hosts each node (by id) already runs; the
    random tie-break keeps two labs placed at the same moment from piling
    onto the same node.
    """
    if not nodes:
        raise PlacementProblem("the swarm has no node ready to take a lab's hosts (`docker node ls` shows their "
                               "state); start or reactivate one, or add one with `docker swarm join`")
    running = running or {}
    order = {node.node_id: (rng or random).random() for node in nodes}
    in_lab: dict[str, int] = {node.node_id: 0 for node in nodes}
    together: Node | None = None
    chosen: dict[str, Node] = {}
    for host in hosts:
        wanted = label_of(host.place)
        candidates = [node for node in nodes if wanted is None or node.labels.get(wanted[0]) == wanted[1]]
        if not candidates:
            raise PlacementProblem(
                f"hosts.{host.name}.place: no ready node of the swarm has the label {host.place!r} "
                f"(nodes: {', '.join(sorted(str(node) for node in nodes))}); add it to one with "
                f"`docker node update --label-add {host.place} NODE`, or place the host apart")
        if host.place == TOGETHER and together is not None:
            node = together
        else:
            node = min(candidates, key=lambda n: (in_lab[n.node_id], running.get(n.node_id, 0), order[n.node_id]))
            if host.place == TOGETHER:
                together = node
        in_lab[node.node_id] += 1
        chosen[host.name] = node
    return chosen
