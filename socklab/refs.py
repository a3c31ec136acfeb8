"""Symbolic addresses: ``{server.lan.ipv4}`` in a scenario, a real address in a lab.

Scenario authors cannot know the addresses a lab will get (subnets are
allocated so that labs never collide), so they name them instead. Names are
checked against the topology when the file is loaded and replaced by real
values once the lab is up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

ATTRIBUTES = {  # {HOST.NETWORK.ATTRIBUTE}
    "ipv4": "the host's IPv4 address on that network",
    "ipv6": "the host's global (ULA) IPv6 address on that network",
    "link_local": "the host's fe80:: address on that network, with the %interface scope of the host using it",
    "link_local_address": "the same fe80:: address without a scope, as a program that forgets it would write it",
    "iface": "the name of the host's interface on that network (eth0, eth1 ...)",
}
NETWORK_ATTRIBUTES = {  # {NETWORK.ATTRIBUTE}
    "subnet4": "the network's IPv4 subnet",
    "subnet6": "the network's IPv6 subnet",
    "unused_ipv4": "an IPv4 address of the network that no host has: nobody answers ARP for it",
    "unused_ipv6": "an IPv6 address of the network that no host has: nobody answers neighbour discovery",
    "broadcast4": "the network's IPv4 broadcast address: a datagram sent there reaches every host of the network",
}
NEEDS_IPV6 = {"ipv6", "link_local", "link_local_address", "subnet6", "unused_ipv6"}
UNUSED_HOST_NUMBER = 250  # hosts are numbered from 2 up; no lab has 249 hosts on one network

# Anything in braces that looks like a dotted name is meant as a reference,
# so that a typo is reported instead of being sent as text; other braces
# (JSON in a message, say) are left alone.
_CANDIDATE = re.compile(r"\{([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+)\}")


@dataclass(frozen=True)
class Ref:
    host: str | None  # None for a network's own attribute, as in {lan.unused_ipv4}
    network: str
    attribute: str

    def __str__(self) -> str:
        return "{" + ".".join(p for p in (self.host, self.network, self.attribute) if p) + "}"


def _parse(dotted: str) -> Ref | None:
    parts = dotted.split(".")
    if len(parts) == 3 and parts[2] in ATTRIBUTES:
        return Ref(*parts)
    if len(parts) == 2 and parts[1] in NETWORK_ATTRIBUTES:
        return Ref(None, *parts)
    return None


def find_refs(text: str) -> Iterator[Ref | str]:
    """Yield each reference in ``text``, or the raw text of a malformed one."""
    for match in _CANDIDATE.finditer(text):
        yield _parse(match.group(1)) or match.group(0)


def render(text: str, resolve: Callable[[Ref], str]) -> str:
    """Replace every reference by its value; validation has vouched for them."""

    def replace(match: re.Match[str]) -> str:
        ref = _parse(match.group(1))
        return resolve(ref) if ref else match.group(0)

    return _CANDIDATE.sub(replace, text)
