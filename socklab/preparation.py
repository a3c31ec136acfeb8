"""What a host does once it is up, before any service starts, as one root script.

It runs on each host as soon as that host is running, while others may still
be starting; the scenario's own ``setup`` lines run afterwards (they may name
other hosts' addresses), in a second script.

0. The host has what a lab host needs (``REQUIRED``: python3 for nodes/
   and the probe, iproute2, iptables, tar, coreutils, the lab user and its
   folders), which matters for an image of one's own: what it lacks is
   named, with the fix (build it FROM socklab-node), as ``ImageProblem``
   (exit 2). It costs no command of its own: shell built-ins at the top.
   nodes/ (and any program being graded) arrive as a tar on the script's
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

Then, on the same thread, the host's own files arrive (``Lab.open``): the
engine unpacks them (``socklab.files``), since root on a lab host may
neither chown nor write into the lab user's folders (no CAP_CHOWN, no
CAP_DAC_OVERRIDE), so this script could not give them their owners.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from socklab import impairments
from socklab.addressing import Link, links_from_ip
from socklab.backend import Backend, ExecResult, HostInfo, ImageProblem, Interface
from socklab.backend.base import IMAGE_FIX
from socklab.constants import LAB_HOME, LAB_USER, NODES_PARENT
from socklab.errors import LabError
from socklab.files import LAB_ID
from socklab.model import Host, Network

COMMENT = "socklab: the engine's host is not part of the lab"
INTERFACES_MARK = "socklab-interfaces "  # starts the one line of the script's output that is not a note
MISSING_MARK = "socklab-missing:"  # the host lacks what follows (words of REQUIRED, space-separated)
MISSING_EXIT = 3
NO_DAD = ("ip -6 -o addr show scope link tentative | while read -r _ dev _ address _; do "
          "ip -6 addr del \"$address\" dev \"$dev\" && ip -6 addr add \"$address\" dev \"$dev\" nodad; done")
# What every lab host needs, and what each word the check prints means.
REQUIRED = {
    "python3": "python3 (nodes/, the probe and the readiness checks run on it)",
    "ip": "ip (iproute2: addresses and routes)",
    "iptables": "iptables (the lab's isolation)",
    "ip6tables": "ip6tables (the lab's isolation)",
    "tar": "tar (nodes/ arrives as a tar)",
    "timeout": "timeout (coreutils: every check is bounded)",
    "env": "env (coreutils: a command's folder and environment)",
    "tc": "tc (iproute2: link conditions)",
    "user": f"the user {LAB_USER} (uid and gid {LAB_ID}, home {LAB_HOME})",
    "folders": f"the folders {LAB_HOME}/log and {LAB_HOME}/run (services' logs and pid files)",
}


def requirements(host: Host, networks: dict[str, Network]) -> list[str]:
    """Shell lines that stop the script (exit ``MISSING_EXIT``) and name what the host lacks, if anything."""
    tools = ["python3", "ip", "iptables", "ip6tables", "tar", "timeout", "env"]
    if any(networks[name].conditions for name in host.networks):
        tools.append("tc")
    return [
        'missing=""',
        f'for tool in {" ".join(tools)}; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done',
        f'[ "$(id -u {LAB_USER} 2>/dev/null):$(id -g {LAB_USER} 2>/dev/null)" = "{LAB_ID}:{LAB_ID}" ] '
        '|| missing="$missing user"',
        f'[ -d {LAB_HOME}/log ] && [ -d {LAB_HOME}/run ] || missing="$missing folders"',
        f'if [ -n "$missing" ]; then echo "{MISSING_MARK}$missing"; exit {MISSING_EXIT}; fi',
    ]


def script(host: Host, interfaces: dict[str, Interface], networks: dict[str, Network]) -> str:
    lines = ["set -e", *requirements(host, networks), f"mkdir -p {NODES_PARENT}", f"tar -x -C {NODES_PARENT}",
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
    """Prepare one host (the script above, nodes/ on its stdin), or raise LabError (ImageProblem: it lacks things)."""
    result = backend.exec(info.handle, ["sh", "-c", script(host, info.interfaces, networks)], user="root",
                          stdin=archive)
    if lacking := missing(result):
        image = f"hosts.{host.name}.image ({host.image})" if host.image else f"host {host.name!r} (the node image)"
        raise ImageProblem(f"{image} lacks what every lab host needs: {'; '.join(lacking)}. Fix: {IMAGE_FIX}")
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


def missing(result: ExecResult) -> list[str]:
    """What the preparation found missing on a host, in words; [] if nothing was.

    Besides the script's own check, the engine may fail to start it at all:
    no ``sh`` to run it, or no lab home to run it in (exit 126, the engine's
    message on the command's output).
    """
    output = f"{result.stdout}\n{result.stderr}"
    for line in result.stdout.splitlines():
        if result.exit_code == MISSING_EXIT and line.startswith(MISSING_MARK):
            return [REQUIRED.get(word, word) for word in line.removeprefix(MISSING_MARK).split()]
    if result.exit_code == 126 and "executable file not found" in output:
        return ["sh (a POSIX shell: every command of the lab runs under it)"]
    if result.exit_code == 126 and "chdir to cwd" in output:
        return [REQUIRED["user"]]
    return []
