"""What a host does once it is up, before any service starts, as one root script.

It runs on each host as soon as that host is running, while others may still
be starting; the scenario's own ``setup`` lines run afterwards (they may name
other hosts' addresses), in a second script.

0. nodes/ (and any program being graded) arrive as a tar on the script's
   standard input and are unpacked under /opt/socklab, the PYTHONPATH.
1. Isolation. Docker gives hosts on an internal network a default route via
   the bridge, and the bridge's address belongs to the engine's own host: a
   lab host could reach services of the machine it runs on. Dropping the
   default routes makes every address outside the lab unreachable at once
   (ENETUNREACH, nothing sent); rejecting the engine's addresses on each
   network closes the rest.
2. Link-local addresses usable at once. The kernel gives each interface an
   fe80:: address and checks it for duplicates for a second (it is
   "tentative" meanwhile, and link-local traffic waits); the engine attaches
   interfaces before any sysctl could turn that off. Re-adding the address
   the kernel chose with ``nodad`` ends the wait; there is nobody on a lab
   network to clash with.
3. Link conditions declared on the host's networks (``socklab.impairments``).
4. The host reports its interfaces (``ip -j address show``, after step 2
   settled the link-local addresses), so that the lab knows every interface
   name and fe80:: address without ever asking again (``socklab.addressing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from socklab import impairments
from socklab.addressing import Link, links_from_ip
from socklab.backend import Backend, HostInfo, Interface
from socklab.constants import NODES_PARENT
from socklab.errors import LabError
from socklab.model import Host, Network

COMMENT = "socklab: the engine's host is not part of the lab"
INTERFACES_MARK = "socklab-interfaces "  # starts the one line of the script's output that is not a note
NO_DAD = ("ip -6 -o addr show scope link tentative | while read -r _ dev _ address _; do "
          "ip -6 addr del \"$address\" dev \"$dev\" && ip -6 addr add \"$address\" dev \"$dev\" nodad; done")


def script(host: Host, interfaces: dict[str, Interface], networks: dict[str, Network]) -> str:
    lines = ["set -e", f"tar -x -C {NODES_PARENT}",
             "ip route del default 2>/dev/null || true", "ip -6 route del default 2>/dev/null || true"]
    for interface in interfaces.values():
        if interface.engine4:
            lines.append(f"iptables -A OUTPUT -d {interface.engine4} -m comment --comment \"{COMMENT}\" "
                         "-j REJECT --reject-with icmp-net-unreachable")
        if interface.engine6:
            lines.append(f"ip6tables -A OUTPUT -d {interface.engine6} -m comment --comment \"{COMMENT}\" "
                         "-j REJECT --reject-with icmp6-no-route")
    lines.append(NO_DAD)
    for name in host.networks:
        address = interfaces[name].ipv4
        if address:
            lines += impairments.commands(address, name, networks[name].conditions)
    lines.append(f"printf '%s' '{INTERFACES_MARK}'; ip -j address show")
    return "\n".join(lines)


@dataclass
class Prepared:
    """What a host said while it was readied: notes for the report, and its interfaces by network."""

    notes: list[str] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)


def install(backend: Backend, info: HostInfo, host: Host, networks: dict[str, Network], archive: bytes) -> Prepared:
    """Prepare one host (the script above, nodes/ on its stdin), or raise LabError."""
    result = backend.exec(info.handle, ["sh", "-c", script(host, info.interfaces, networks)], user="root",
                          stdin=archive)
    if not result.ok:
        raise LabError(f"preparing host {host.name!r} failed (exit {result.exit_code}): "
                       f"{(result.stderr or result.stdout).strip()[-800:]}")
    prepared = Prepared()
    for line in result.stdout.splitlines():
        if line.startswith(INTERFACES_MARK):
            prepared.links = links_from_ip(line.removeprefix(INTERFACES_MARK), info.interfaces)
        elif line.strip():
            prepared.notes.append(f"{host.name}: {line}")
    return prepared
