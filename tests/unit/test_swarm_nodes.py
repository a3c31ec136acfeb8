"""Which swarm nodes can take hosts, read from the manager's listing: ready, active, and reachable."""

from __future__ import annotations

from typing import Any

from socklab.backend.swarm.cluster import ENDPOINT_LABEL, node_from_listing


def listed(node_id: str, *, state: str = "ready", availability: str = "active",
           labels: dict[str, str] | None = None, hostname: str = "") -> dict[str, Any]:
    """A node as the engine's /nodes lists it (the fields socklab reads)."""
    return {"ID": node_id, "Description": {"Hostname": hostname or node_id},
            "Spec": {"Availability": availability, "Labels": labels or {}}, "Status": {"State": state}}


def test_a_worker_is_reached_at_the_endpoint_its_label_gives() -> None:
    node, why = node_from_listing(listed("w1", labels={ENDPOINT_LABEL: "tcp://10.0.0.2:2376", "zone": "b"}), "m1", "")
    assert node is not None and not why
    assert (node.endpoint, node.labels["zone"], node.manager) == ("tcp://10.0.0.2:2376", "b", False)


def test_the_managers_own_node_needs_no_label() -> None:
    node, _ = node_from_listing(listed("m1"), "m1", "ssh://admin@10.0.0.1")
    assert node is not None and node.manager and node.endpoint == "ssh://admin@10.0.0.1"


def test_a_worker_without_a_label_takes_no_hosts_and_the_reason_says_how_to_add_one() -> None:
    node, why = node_from_listing(listed("w2", hostname="beta"), "m1", "")
    assert node is None
    assert f"docker node update --label-add {ENDPOINT_LABEL}=" in why and "beta" in why


def test_a_node_down_or_drained_takes_no_hosts() -> None:
    assert node_from_listing(listed("w3", state="down", labels={ENDPOINT_LABEL: "unix:///x"}), "m1", "") == (
        None, "its state is down")
    assert node_from_listing(listed("w4", availability="drain", labels={ENDPOINT_LABEL: "unix:///x"}), "m1", "") == (
        None, "its availability is drain")
