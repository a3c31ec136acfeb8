"""The lab's networks on a swarm: overlays made on the manager, which every node's hosts may join."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from socklab.backend.docker.backend import DockerBackend

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
