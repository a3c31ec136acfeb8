"""The swarm benchmark's choices: which scenarios it runs, how it restricts the nodes, and its skip when not root."""

from __future__ import annotations

from typing import Any

import pytest

from socklab import benchmarks, catalogue
from socklab.benchmarks import swarm
from tools import swarm_cluster


def test_the_whole_catalogue_is_run() -> None:
    scenarios = catalogue.load()
    assert swarm.names(scenarios) == sorted(s.name for s in scenarios)


def test_the_lab_is_three_hosts_on_one_ipv4_only_network_placed_as_asked() -> None:
    networks, hosts = swarm.lab_topology("together")
    assert [net.ipv6 for net in networks.values()] == [False]
    assert len(hosts) == 3 and {host.place for host in hosts.values()} == {"together"}
    assert all(host.networks == ("lan",) for host in hosts.values())


def test_a_cluster_name_is_the_benchmarks_own_and_one_the_tool_takes() -> None:
    first, second = swarm.cluster_name(), swarm.cluster_name()
    assert first != second and first.startswith("bsw-")
    assert swarm_cluster.check_name(first) == first


def test_availability_changes_that_and_nothing_else() -> None:
    spec = {"Role": "worker", "Availability": "active", "Labels": {"socklab.endpoint": "unix:///x"}}
    drained = swarm.availability(spec, active=False)
    assert drained == {**spec, "Availability": "drain"} and spec["Availability"] == "active"
    assert swarm.availability(drained, active=True) == spec


class FakeNodes:
    """A manager's node API: what restrict asks for, and the updates it sends."""

    def __init__(self, availabilities: dict[str, str]) -> None:
        self.listed = [{"ID": f"id-{host}", "Version": {"Index": 7}, "Description": {"Hostname": host},
                        "Spec": {"Role": "worker", "Availability": state}} for host, state in availabilities.items()]
        self.updates: list[tuple[str, int, dict[str, Any]]] = []

    def nodes(self) -> list[dict[str, Any]]:
        return self.listed

    def update_node(self, node_id: str, version: int, spec: dict[str, Any]) -> None:
        self.updates.append((node_id, version, spec))


class FakeManager:
    def __init__(self, availabilities: dict[str, str]) -> None:
        self.api = FakeNodes(availabilities)


def test_restricting_to_n_engines_drains_the_others_by_hostname_and_touches_no_node_already_right() -> None:
    manager = FakeManager({"c-e3": "active", "c-e1": "active", "c-e2": "drain"})
    swarm.restrict(manager, 2)
    assert [(node, spec["Availability"]) for node, _, spec in manager.api.updates] == [("id-c-e2", "active"),
                                                                                       ("id-c-e3", "drain")]
    assert all(version == 7 for _, version, _ in manager.api.updates)


def test_not_root_it_says_so_and_measures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(swarm_cluster, "up", lambda *args, **kwargs: pytest.fail("a cluster was made"))
    said: list[str] = []
    figures = swarm.run(3, said.append)
    assert [figure.samples for figure in figures] == [[]]
    assert "root" in figures[0].note and any("root" in line for line in said)


def test_it_is_registered_and_not_quick() -> None:
    assert "swarm" in benchmarks.NAMES and "swarm" not in benchmarks.QUICK
    assert benchmarks.registry()["swarm"] is swarm.run
