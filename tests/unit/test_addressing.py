"""Subnet allocation and symbolic addresses: pure logic, no engine."""

from __future__ import annotations

import ipaddress
import random

from socklab import refs
from socklab.backend import subnets
from socklab.constants import IPV4_POOL, IPV6_POOL


def test_pairs_stay_in_the_lab_pools_and_match_by_index() -> None:
    v4, v6 = subnets.pair(300)
    assert v4.subnet_of(IPV4_POOL) and v6.subnet_of(IPV6_POOL)
    assert (v4.prefixlen, v6.prefixlen) == (24, 64)
    assert str(v4) == "198.19.44.0/24" and str(v6) == "fd50:c1ab:0:12c::/64"


def test_taken_subnets_are_skipped_and_every_free_pair_comes_once() -> None:
    taken = [ipaddress.ip_network("198.18.0.0/16"), ipaddress.ip_network("fd50:c1ab:0:1ff::/64"),
             ipaddress.ip_network("10.0.0.0/8")]
    pairs = list(subnets.free_pairs(taken, random.Random(7)))
    assert len(pairs) == len(set(pairs)) == 256 - 1  # the /16 takes 256 slots, the /64 one more
    assert all(not v4.overlaps(taken[0]) and v6 != taken[1] for v4, v6 in pairs)


def test_a_full_pool_yields_nothing() -> None:
    assert list(subnets.free_pairs([IPV4_POOL])) == []


def test_hosts_get_addresses_after_the_gateway() -> None:
    v4, v6 = subnets.pair(0)
    assert (subnets.gateway(v4), subnets.host_address(v4, 0), subnets.host_address(v6, 1)) == (
        "198.18.0.1", "198.18.0.2", "fd50:c1ab::3")


def test_references_are_found_rendered_and_typos_reported() -> None:
    text = "[{server.lan.ipv6}]:80 {\"json\": 1} {server.lan}"
    found = list(refs.find_refs(text))
    assert found == [refs.Ref("server", "lan", "ipv6"), "{server.lan}"]
    assert refs.render("{a.b.ipv4}:1 {x}", lambda ref: "198.18.0.2") == "198.18.0.2:1 {x}"
