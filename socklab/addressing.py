"""A lab's address book: what every ``{host.network.attribute}`` reads as, once the lab is up.

The engine tells the addresses and subnets it allocated (``HostInfo``); each
host's own kernel tells its interface names and link-local addresses, which
the preparation script reports as it readies the host (``links_from_ip``).
With both in hand, rendering a reference is a lookup: it never runs a
command, so any thread may render at any time.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass

from socklab import refs
from socklab.backend import HostInfo, Interface
from socklab.errors import LabError
from socklab.results import Addresses, HostAddresses


@dataclass(frozen=True)
class Link:
    """A host's interface on one network, as its kernel names it."""

    iface: str
    link_local: str = ""  # fe80::..., without a scope; empty if the interface has none


def links_from_ip(ip_json: str, interfaces: Mapping[str, Interface]) -> dict[str, Link]:
    """Network -> Link, from ``ip -j address show`` on the host, matched by the IPv4 address the engine gave."""
    by_address = {interface.ipv4: network for network, interface in interfaces.items() if interface.ipv4}
    links = {}
    for link in json.loads(ip_json or "[]"):
        addresses = link.get("addr_info", [])
        network = next((by_address[a["local"]] for a in addresses if a.get("local") in by_address), None)
        if network:
            link_local = next((a["local"] for a in addresses
                               if a.get("family") == "inet6" and a.get("scope") == "link"), "")
            links[network] = Link(link["ifname"], link_local)
    return links


class AddressBook:
    def __init__(self, infos: Mapping[str, HostInfo], links: Mapping[str, Mapping[str, Link]]) -> None:
        self.infos, self.links = dict(infos), {host: dict(found) for host, found in links.items()}

    def addresses(self) -> HostAddresses:
        """Every host's addresses on every network, for reports and ``invoke up``."""
        return {
            host: {net: Addresses(i.ipv4, i.ipv6, i.subnet4, i.subnet6) for net, i in info.interfaces.items()}
            for host, info in self.infos.items()
        }

    def render(self, text: str, on_host: str | None = None) -> str:
        """``text`` with every reference replaced by its value, as seen from ``on_host``."""
        return refs.render(text, lambda ref: self.resolve(ref, on_host))

    def resolve(self, ref: refs.Ref, on_host: str | None = None) -> str:
        """The value of ``{host.network.attribute}``, as seen from ``on_host``.

        A link-local address only means something with a scope, and the scope
        is the interface of the host that uses the address: the same
        ``{server.lan.link_local}`` reads ``fe80::...%eth1`` on a client
        whose lan interface is eth1.
        """
        if ref.host is None:
            return self._network_attribute(ref)
        interface = self.infos[ref.host].interfaces[ref.network]
        if ref.attribute == "ipv4":
            return interface.ipv4 or ""
        if ref.attribute == "ipv6":
            if not interface.ipv6:
                raise LabError(f"{ref}: network {ref.network!r} has no IPv6 in this lab; make it dual-stack "
                               f"(ipv6 = true, or Network({ref.network!r}, ipv6=True)), or use its ipv4")
            return interface.ipv6
        link = self._link(ref.host, ref.network)
        if ref.attribute == "iface":
            return link.iface
        if ref.attribute == "link_local_address":
            return link.link_local
        viewer = on_host if on_host and ref.network in self.infos[on_host].interfaces else ref.host
        return f"{link.link_local}%{self._link(viewer, ref.network).iface}"

    def _link(self, host: str, network: str) -> Link:
        try:
            return self.links[host][network]
        except KeyError:
            raise LabError(f"host {host!r} did not report its interface on network {network!r} "
                           "while it was prepared") from None

    def _network_attribute(self, ref: refs.Ref) -> str:
        """A network's subnets, as the engine allocated them, its broadcast address, and an address no host has."""
        interface = next(i.interfaces[ref.network] for i in self.infos.values() if ref.network in i.interfaces)
        subnet = interface.subnet6 if ref.attribute.endswith("6") else interface.subnet4
        if ref.attribute.startswith("subnet") or subnet is None:
            return subnet or ""
        if ref.attribute == "broadcast4":
            return str(ipaddress.ip_network(subnet).broadcast_address)
        return str(ipaddress.ip_network(subnet).network_address + refs.UNUSED_HOST_NUMBER)
