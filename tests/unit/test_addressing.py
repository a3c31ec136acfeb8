"""Subnet allocation and symbolic addresses: pure logic, no engine."""

from __future__ import annotations

import ipaddress
import json
import random

import pytest

from socklab import refs
from socklab.addressing import AddressBook, Link, links_from_ip
from socklab.backend import HostHandle, HostInfo, Interface, subnets
from socklab.constants import IPV4_POOL, IPV6_POOL
from socklab.errors import LabError
from socklab.results import Addresses


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


# -- the address book: every reference a lookup, never a command ---------------

IP_JSON = json.dumps([
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "scope": "host"}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "198.18.0.2", "scope": "global"},
                                     {"family": "inet6", "local": "fe80::a", "scope": "link"}]},
    {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "198.18.1.3", "scope": "global"}]},
])


def book() -> AddressBook:
    """server on lan (eth0, with a link-local address) and wan (eth1, without one); client on wan only as eth0."""
    server = HostInfo(HostHandle("l", "server", "1"), {
        "lan": Interface("lan", "198.18.0.2", "fd50:c1ab::2", "198.18.0.0/24", "fd50:c1ab::/64"),
        "wan": Interface("wan", "198.18.1.3", None, "198.18.1.0/24")})
    client = HostInfo(HostHandle("l", "client", "2"), {"lan": Interface("lan", "198.18.0.3", "fd50:c1ab::3")})
    links = {"server": links_from_ip(IP_JSON, server.interfaces), "client": {"lan": Link("eth7", "fe80::b")}}
    return AddressBook({"server": server, "client": client}, links)


def test_interfaces_are_matched_to_networks_by_the_address_the_engine_gave() -> None:
    server = book().links["server"]
    assert server == {"lan": Link("eth0", "fe80::a"), "wan": Link("eth1", "")}


def test_a_link_local_reference_takes_the_scope_of_the_host_that_uses_it() -> None:
    addresses = book()
    assert addresses.render("[{server.lan.link_local}]:7", on_host="client") == "[fe80::a%eth7]:7"
    assert addresses.render("{server.lan.link_local}", on_host="server") == "fe80::a%eth0"
    assert addresses.render("{server.lan.link_local_address} {server.wan.iface}") == "fe80::a eth1"
    assert addresses.render("{lan.unused_ipv4} {wan.subnet4}") == "198.18.0.250 198.18.1.0/24"
    assert addresses.render("{lan.broadcast4}") == "198.18.0.255"


def test_a_host_that_reported_no_interface_is_a_lab_error_not_a_crash() -> None:
    addresses = AddressBook(book().infos, {})
    with pytest.raises(LabError, match="did not report its interface on network 'lan'"):
        addresses.render("{server.lan.iface}")


def test_addresses_for_reports_are_records() -> None:
    assert book().addresses()["server"]["lan"] == Addresses("198.18.0.2", "fd50:c1ab::2", "198.18.0.0/24",
                                                             "fd50:c1ab::/64")


def test_an_ipv6_address_asked_of_a_network_without_ipv6_is_an_error_naming_the_fix() -> None:
    assert book().render("[{server.lan.ipv6}]:80") == "[fd50:c1ab::2]:80"
    with pytest.raises(LabError, match=r"\{server\.wan\.ipv6\}: network 'wan' has no IPv6 in this lab; make it "
                                       r"dual-stack \(ipv6 = true"):
        book().render("[{server.wan.ipv6}]:80")
