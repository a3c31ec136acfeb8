"""Where a lab's hosts go on a swarm: apart by default, together or by node label when the scenario says."""

from __future__ import annotations

import random

import pytest

from socklab.backend.swarm.placement import Node, PlacementProblem, place
from socklab.model import Host

NODES = [Node("n1", "alpha", "unix:///a.sock"), Node("n2", "beta", "unix:///b.sock", {"zone": "b"}),
         Node("n3", "gamma", "unix:///c.sock", {"zone": "b"})]


def hosts(*places: str) -> list[Host]:
    return [Host(f"h{i}", place=where) for i, where in enumerate(places)]


def test_hosts_go_apart_while_there_are_nodes_enough() -> None:
    chosen = place(hosts("apart", "apart", "apart"), NODES, rng=random.Random(1))
    assert sorted(node.node_id for node in chosen.values()) == ["n1", "n2", "n3"]


def test_more_hosts_than_nodes_are_spread_evenly() -> None:
    chosen = place(hosts(*["apart"] * 7), NODES, rng=random.Random(2))
    counts = sorted([node.node_id for node in chosen.values()].count(n.node_id) for n in NODES)
    assert counts == [2, 2, 3]


def test_the_least_busy_node_is_chosen_first() -> None:
    chosen = place(hosts("apart"), NODES, running={"n1": 5, "n2": 0, "n3": 2}, rng=random.Random(3))
    assert chosen["h0"].node_id == "n2"


def test_hosts_placed_together_share_one_node_and_the_rest_go_elsewhere() -> None:
    chosen = place(hosts("together", "together", "apart"), NODES, rng=random.Random(4))
    assert chosen["h0"] == chosen["h1"]
    assert chosen["h2"] != chosen["h0"]


def test_a_node_label_keeps_a_host_to_the_nodes_that_carry_it() -> None:
    for seed in range(20):
        chosen = place(hosts("zone=b", "zone=b"), NODES, running={"n2": 9}, rng=random.Random(seed))
        assert {chosen["h0"].node_id, chosen["h1"].node_id} == {"n2", "n3"}


def test_a_label_no_node_carries_names_the_host_the_key_and_the_fix() -> None:
    with pytest.raises(PlacementProblem) as caught:
        place(hosts("apart", "zone=z"), NODES)
    message = str(caught.value)
    assert "hosts.h1.place" in message and "zone=z" in message and "docker node update --label-add" in message


def test_no_node_at_all_is_an_environment_problem_with_advice() -> None:
    with pytest.raises(PlacementProblem, match="docker node ls"):
        place(hosts("apart"), [])
