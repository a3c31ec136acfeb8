"""tools/swarm_cluster.py makes a real multi-engine Docker Swarm on this machine, and removes it without a trace.

Both tests need root (namespaces, mounts, dockerd) and are ``exclusive``: three more dockerds on two shared cores
should not run beside the parallel Docker tests. The node image comes from the machine's engine (``engine``
fixture: built when missing) and is copied into each cluster engine, as nothing can be pulled here.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from socklab.backend.docker.images import NODE_LATEST
from tools import swarm_cluster
from tools.swarm_cluster import Cluster, ClusterError, Engine

pytestmark = [
    pytest.mark.exclusive,
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="the swarm cluster needs root: network namespaces, mounts, dockerd"),
]

# The overlay network of the test: Docker's own addressing in IPv4, IPv6 given by the test (give_ipv6). Docker
# 20.10's IPv6 on swarm overlays is not usable across engines (docs/swarm-cluster.md, "IPv6"): with --ipv6 a node
# now and then fails to attach ("Invalid address ... does not belong to any of this network's subnets"), each
# engine hands out the same IPv6 addresses (::3 on every engine: a ping "across" answers locally), and no engine is
# told of another's IPv6 neighbours.
V4_SUBNET = "198.18.254.0/24"
V6_PREFIX = "fd00:5c:1a:c::"  # a /64: container i is ::i


@dataclass
class Member:
    """A container of the test on one engine of the cluster."""

    engine: Engine
    name: str
    address4: str = ""
    address6: str = ""
    mac: str = ""
    pid: int = 0


def docker(engine: Engine, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", "-H", engine.endpoint, *args], capture_output=True, text=True, check=False,
                          timeout=180)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} on {engine.name} failed: {done.stderr.strip()}")
    return done


def start_member(cluster: Cluster, engine: Engine, network: str) -> Member:
    member = Member(engine=engine, name=f"{cluster.name}-{engine.name}")
    docker(engine, "run", "-d", "--name", member.name, "--network", network, "--entrypoint", "sleep", NODE_LATEST,
           "infinity")
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}}{{end}} {{.State.Pid}}"
    member.address4, member.mac, pid = docker(engine, "inspect", "-f", template, member.name).stdout.split()
    member.pid = int(pid)
    return member


def in_container(member: Member, *argv: str) -> None:
    """A command in the container's network namespace, from the host (the node image's user may not change it)."""
    subprocess.run(["nsenter", "-t", str(member.pid), "-n", *argv], check=True, capture_output=True, timeout=30)


def give_ipv6(members: list[Member]) -> None:
    """Each container its own IPv6 address on the overlay, and its peers' as permanent neighbours.

    The overlay's VXLAN device answers neighbour solicitations itself (proxy mode) from the entries the engine
    wrote, and Docker 20.10 writes IPv4 ones only: without these entries an IPv6 packet never leaves the engine.
    The peers' MAC addresses are known to every engine's VXLAN forwarding table, so the frames then reach them.
    """
    for index, member in enumerate(members, start=1):
        member.address6 = f"{V6_PREFIX}{index}"
    for member in members:
        in_container(member, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")  # newer engines switch it off
        in_container(member, "ip", "-6", "addr", "add", f"{member.address6}/64", "dev", "eth0", "nodad")
        for peer in members:
            if peer is not member:
                in_container(member, "ip", "-6", "neigh", "replace", peer.address6, "lladdr", peer.mac,
                             "dev", "eth0", "nud", "permanent")


def ping(source: Member, target: str, *options: str) -> subprocess.CompletedProcess[str]:
    return docker(source.engine, "exec", source.name, "ping", *options, "-c", "3", "-W", "3", target, check=False)


def traces(name: str) -> list[str]:
    """What of a cluster of this name the machine still has, found without the script's own bookkeeping."""
    found = [f"netns {entry.name}" for entry in Path("/run/netns").glob(f"{name}-*")]
    found += [f"folder {path}" for path in (swarm_cluster.RUN_BASE / name, swarm_cluster.LIB_BASE / name)
              if path.exists()]
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if f"/{name}/" in line.split()[4] + "/"]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                text = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                text += (proc / "cgroup").read_text()
            except OSError:
                continue
            if f"/{name}/" in text:
                found.append(f"process {proc.name} {text[:80]}")
    found += [f"cgroup {path}" for path in Path("/sys/fs/cgroup").glob(f"*/{swarm_cluster.CGROUP_BASE}/{name}")]
    return found


def root_rules(netns: str = "") -> str:
    """The IPv4 and IPv6 rules of the machine's root network namespace, or of one of the cluster's."""
    enter = ["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []
    return "".join(subprocess.run([*enter, tool], capture_output=True, text=True, check=False).stdout
                   for tool in ("iptables-save", "ip6tables-save"))


@pytest.fixture
def cluster_name() -> str:
    return f"sctest-{uuid.uuid4().hex[:8]}"


def test_containers_on_different_engines_ping_each_other_in_ipv4_and_ipv6(engine, cluster_name):
    rules_before = root_rules()
    try:
        cluster = swarm_cluster.up(cluster_name, engines=3)
        swarm_cluster.load_image(cluster, NODE_LATEST)
        manager = cluster.manager
        labels = docker(manager, "node", "ls", "-q").stdout.split()
        endpoints = {docker(manager, "node", "inspect", "-f", '{{index .Spec.Labels "socklab.endpoint"}}',
                            node).stdout.strip() for node in labels}
        assert endpoints == {engine.endpoint for engine in cluster.engines}  # what the swarm backend will read

        network = f"{cluster_name}-net"
        docker(manager, "network", "create", "--driver", "overlay", "--attachable", "--internal",
               "--subnet", V4_SUBNET, network)
        members = [start_member(cluster, engine, network) for engine in cluster.engines]
        give_ipv6(members)
        first, second, third = members

        for source, target in ((first, second), (second, third)):
            assert source.engine.netns != target.engine.netns
            pinged = ping(source, target.address4)
            assert pinged.returncode == 0, f"IPv4 {source.name} -> {target.name}: {pinged.stdout}{pinged.stderr}"
            pinged = ping(source, target.address6, "-6", "-I", source.address6)
            assert pinged.returncode == 0, f"IPv6 {source.name} -> {target.name}: {pinged.stdout}{pinged.stderr}"

        # The engines' rules live in their own namespaces, and none of the cluster's among the machine's. Only
        # marks of this cluster count: the machine's engine is shared, and others' work (even a swarm of its own,
        # with its docker_gwbridge) changes the machine's rules meanwhile.
        for member in members:
            assert ":DOCKER-USER" in root_rules(member.engine.netns)
        new_rules = set(root_rules().splitlines()) - set(rules_before.splitlines())
        for mark in (V4_SUBNET, "198.19.255.", cluster.engines[0].address6):
            assert not [rule for rule in new_rules if mark in rule], f"a cluster engine wrote {mark} into the host's"
    finally:
        swarm_cluster.down(cluster_name)
    assert swarm_cluster.leftovers(cluster_name) == []
    assert traces(cluster_name) == []


def test_down_removes_a_cluster_whose_engines_were_killed(engine, cluster_name):
    try:
        cluster = swarm_cluster.up(cluster_name, engines=2)
        with pytest.raises(ClusterError, match="exists already"):
            swarm_cluster.up(cluster_name, engines=2)  # up never replaces, nor removes, a cluster it did not make
        swarm_cluster.load_image(cluster, NODE_LATEST)
        docker(cluster.engines[1], "run", "-d", "--name", f"{cluster_name}-left", "--entrypoint", "sleep",
               NODE_LATEST, "infinity")  # its process, its layers' mount and its netns file outlive the engine
        for engine_ in cluster.engines:  # as a crash or the OOM killer would: no clean shutdown, layers mounted
            pid = int((Path(engine_.run_dir) / "dockerd.pid").read_text())
            os.kill(pid, 9)
        assert any(item.startswith("process") for item in swarm_cluster.leftovers(cluster_name))
    finally:
        swarm_cluster.down(cluster_name)
    assert traces(cluster_name) == []
    swarm_cluster.down(cluster_name)  # idempotent: nothing left, nothing to do, no error
