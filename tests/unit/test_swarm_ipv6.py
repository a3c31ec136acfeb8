"""IPv6 as socklab gives it on a swarm's overlays: the paired /64, the kernel's link-local, the host's commands."""

from __future__ import annotations

import ipaddress

from socklab.backend.subnets import pair
from socklab.backend.swarm.ipv6 import Member, link_local, names, paired_subnet, script


def test_the_ipv6_subnet_is_the_one_paired_with_the_overlays_ipv4_subnet_as_on_one_engine() -> None:
    for index in (0, 7, 511):
        v4, v6 = pair(index)
        assert paired_subnet(v4) == v6


def test_link_local_is_the_kernels_modified_eui64() -> None:
    # as read from a container: MAC 02:42:ac:1a:00:02 has fe80::42:acff:fe1a:2
    assert link_local("02:42:ac:1a:00:02") == "fe80::42:acff:fe1a:2"
    assert ipaddress.IPv6Address(link_local("00:00:00:00:00:01")).is_link_local


SERVER = Member("server", "fd50:c1ab:0:5::2", "02:42:c6:12:05:02", "198.18.5.2")
CLIENT = Member("client", "fd50:c1ab:0:5::3", "02:42:c6:12:05:04", "198.18.5.4")


def test_a_host_gets_its_address_and_each_peers_global_and_link_local_neighbour() -> None:
    commands = script(SERVER, [CLIENT])
    assert "ip -6 address replace fd50:c1ab:0:5::2/64 dev \"$IF\" nodad" in commands
    assert "ip -6 neighbour replace fd50:c1ab:0:5::3 lladdr 02:42:c6:12:05:04" in commands
    assert f"ip -6 neighbour replace {link_local(CLIENT.mac)} lladdr 02:42:c6:12:05:04" in commands
    assert "02:42:c6:12:05:02 ]" in commands  # the interface is the one with the host's own MAC


def test_names_resolve_to_both_families_for_peers_and_to_ipv6_for_the_host_itself() -> None:
    assert names(SERVER, [CLIENT]) == ["fd50:c1ab:0:5::2 server", "198.18.5.4 client", "fd50:c1ab:0:5::3 client"]
