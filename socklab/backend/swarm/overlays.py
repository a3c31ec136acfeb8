"""The lab's networks on a swarm: overlays made on the manager, which every node's hosts may join."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, ClassVar

import requests
from docker.errors import APIError

from socklab.backend.docker.backend import DockerBackend
from socklab.errors import EnvironmentProblem

ALLOCATION_WAIT = 2.0  # seconds a new overlay may take to get its subnets from the manager's allocator


class OverlayNetworks(DockerBackend):
    """The manager's engine, making a lab's networks as overlays the whole swarm shares.

    Unlike a bridge, an overlay on subnets another one already has is
    accepted, then left without them (the manager's allocator refuses it
    after the fact, and a container that tries to join waits 20 s and fails,
    leaving a task that blocks the network's removal until the node leaves
    the swarm). So a new overlay is checked for its subnets, and one without
    is removed at once, and the next free pair tried: two clients creating
    networks at once on one manager never end up sharing, or stuck.
    """

    # The hosts' links keep the 1500-byte MTU they have on one engine (an overlay's default is 1450: the driver
    # takes VXLAN's 50 bytes off the MTU it is given), so that the lessons on datagram sizes read the same. VXLAN
    # packets between machines are then 1550 bytes; where the path carries only 1500, the kernel tells the hosts
    # a path MTU of 1450 instead.
    NETWORK_OPTIONS: ClassVar[dict[str, Any]] = {"driver": "overlay", "attachable": True, "scope": "swarm",
                                                 "options": {"com.docker.network.driver.mtu": "1550"}}
    # A host removed on its node leaves its attachment (a task) on the manager until the node has said so: an
    # overlay is "in use by task" meanwhile. Seconds on a quiet swarm; 10 s were once not enough for a run of the
    # whole catalogue at -j 4 on three engines sharing two cores. About a minute in all.
    REMOVAL_SWEEPS: ClassVar[int] = 64

    def allocated(self, name: str, subnets: list[str]) -> bool:
        """Every subnet asked for is the network's, or it is removed (a host must not join a half-made overlay)."""
        deadline = time.monotonic() + ALLOCATION_WAIT
        while True:
            config = (self.api.inspect_network(name).get("IPAM") or {}).get("Config") or []
            if set(subnets) <= {pool.get("Subnet") for pool in config}:
                return True
            if time.monotonic() > deadline:
                self.api.remove_network(name)
                return False
            time.sleep(0.05)

    def remove_labelled(self, label: str, *, networks: bool = True, sweeps: int | None = None) -> int:
        """As on one engine; a network still held by a task at the end says what that task is, and on which node."""
        try:
            return super().remove_labelled(label, networks=networks, sweeps=sweeps)
        except EnvironmentProblem as exc:
            held = re.search(r"in use by task (\w+)", str(exc))
            if held is None:
                raise
            raise EnvironmentProblem(f"{exc} ({self.task(held.group(1))})") from None

    def task(self, task_id: str) -> str:
        """What the manager says of a task: its node, its state and desired state, and its last message."""
        with contextlib.suppress(APIError, requests.RequestException):
            for task in self.api.tasks(filters={"id": task_id}):  # type: ignore[no-untyped-call]  # stubs lack it
                status = task.get("Status") or {}
                node = task.get("NodeID", "?")
                with contextlib.suppress(APIError, requests.RequestException):
                    node = (self.api.inspect_node(node).get("Description") or {}).get("Hostname", node)
                return (f"task {task_id}: on node {node}, {status.get('State', '?')} (desired: "
                        f"{task.get('DesiredState', '?')}){': ' + status['Message'] if status.get('Message') else ''}")
        return f"task {task_id}: the manager no longer lists it"
