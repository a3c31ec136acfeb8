"""IPv6 on a swarm's overlays, given by socklab rather than by Docker.

Docker 20.10's own IPv6 on swarm overlays cannot be used (docs/swarm-cluster.md):
now and then a host fails to join ("does not belong to any of this network's
subnets") and leaves an attachment that blocks the network's removal until
the node leaves the swarm; each engine hands out the same addresses; and no
engine learns another's IPv6 neighbours. So a lab network that uses IPv6 is
an IPv4 overlay, and socklab gives each host, itself, the address the lab
planned for it on the network's /64 (the ULA /64 paired with the overlay's
IPv4 /24, as on one engine), with the kernel's link-local beside it.

An overlay carries unicast frames between the hosts' MAC addresses it knows,
but not the multicast of neighbour discovery across nodes. So each host is
told every other host's MAC for its global and link-local address, as
permanent neighbour entries. Then IPv6 works between hosts on any nodes, as
a shared link would give it.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from socklab.backend.subnets import pair
from socklab.constants import IPV4_POOL, IPV4_SUBNET_PREFIX

# What a host on such a network needs from its kernel: IPv6 on (Docker turns it off where it gives none), and
# addresses usable at once (no duplicate detection: the lab gives each address once).
SYSCTLS = (("net.ipv6.conf.all.disable_ipv6", "0"), ("net.ipv6.conf.default.disable_ipv6", "0"),
           ("net.ipv6.conf.all.accept_dad", "0"), ("net.ipv6.conf.default.accept_dad", "0"))


def paired_subnet(subnet4: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
    """The ULA /64 that goes with a lab /24, as the Docker backend pairs them (socklab.backend.subnets)."""
    index = (int(subnet4.network_address) - int(IPV4_POOL.network_address)) >> (32 - IPV4_SUBNET_PREFIX)
    return pair(index)[1]


def link_local(mac: str) -> str:
    """The link-local address the kernel makes from a MAC address (modified EUI-64: RFC 4291, appendix A)."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


@dataclass(frozen=True)
class Member:
    """One host on one IPv6 network of the lab: the address socklab gives it, its IPv4 one, and its MAC there."""

    host: str
    address: str
    mac: str
    ipv4: str = ""


def script(me: Member, peers: Sequence[Member], prefix: int = 64) -> str:
    """The shell commands, run as root on ``me``, that give it its address and every peer's neighbour entries.

    The interface is found by its MAC address: a host on several networks
    has one per network, named in the order the engine attached them.
    """
    mac = shlex.quote(me.mac.lower())
    lines = [
        "set -e",
        f"for dev in /sys/class/net/*; do if [ \"$(cat $dev/address)\" = {mac} ]; then IF=${{dev##*/}}; fi; done",
        f'[ -n "$IF" ] || {{ echo "no interface with MAC {me.mac}" >&2; exit 1; }}',
        f'ip -6 address replace {shlex.quote(me.address)}/{prefix} dev "$IF" nodad',
    ]
    for peer in peers:
        for address in (peer.address, link_local(peer.mac)):
            lines.append(f'ip -6 neighbour replace {shlex.quote(address)} lladdr {shlex.quote(peer.mac)} dev "$IF" '
                         "nud permanent")
    lines.append(f"printf '%s\\n' {' '.join(shlex.quote(line) for line in names(me, peers))} >> /etc/hosts")
    return "\n".join(lines)


def names(me: Member, peers: Sequence[Member]) -> list[str]:
    """/etc/hosts lines, so that host names resolve to both families, as the engine's DNS answers on one engine.

    The overlay's DNS knows only the IPv4 addresses Docker gave; and once a
    name is found in /etc/hosts, the resolver asks no further. So each peer
    gets both of its lines; the host itself has its IPv4 line from the
    engine already.
    """
    lines = [f"{me.address} {me.host}"]
    for peer in peers:
        lines += [f"{peer.ipv4} {peer.host}"] if peer.ipv4 else []
        lines.append(f"{peer.address} {peer.host}")
    return lines
