"""Pick subnets for a lab's networks so that no two labs on one engine collide.

Each candidate pairs the i-th /24 of 198.18.0.0/15 with the i-th /64 of the
project's ULA prefix, so a network's IPv4 and IPv6 subnets are easy to tell
apart from other labs' at a glance. Candidates overlapping anything the engine
already has are skipped; between two processes racing for the same one, the
engine itself refuses the second (overlapping pools), and the loser moves on.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator

from socklab.constants import IPV4_POOL, IPV4_SUBNET_PREFIX, IPV6_POOL, IPV6_SUBNET_PREFIX

AnyNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Pair = tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]

SLOTS = 2 ** (IPV4_SUBNET_PREFIX - IPV4_POOL.prefixlen)  # 512 /24s in the /15


def pair(index: int) -> Pair:
    v4 = ipaddress.IPv4Network((int(IPV4_POOL.network_address) + (index << (32 - IPV4_SUBNET_PREFIX)),
                                IPV4_SUBNET_PREFIX))
    v6 = ipaddress.IPv6Network((int(IPV6_POOL.network_address) + (index << (128 - IPV6_SUBNET_PREFIX)),
                                IPV6_SUBNET_PREFIX))
    return v4, v6


def free_pairs(taken: Iterable[AnyNetwork], rng: random.Random | None = None) -> Iterator[Pair]:
    """Yield every free (IPv4, IPv6) pair once, starting at a random slot.

    Starting at random makes concurrent labs unlikely to race for the same
    slot in the first place.
    """
    taken = list(taken)
    start = (rng or random).randrange(SLOTS)
    for offset in range(SLOTS):
        v4, v6 = pair((start + offset) % SLOTS)
        if not any(v4.overlaps(t) for t in taken if t.version == 4) and not any(
            v6.overlaps(t) for t in taken if t.version == 6
        ):
            yield v4, v6


def host_address(subnet: AnyNetwork, index: int) -> str:
    """The index-th host's address: .2, .3 ... (the gateway keeps .1)."""
    return str(subnet.network_address + 2 + index)


def gateway(subnet: AnyNetwork) -> str:
    return str(subnet.network_address + 1)
