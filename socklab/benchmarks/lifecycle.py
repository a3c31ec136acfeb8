"""Lab lifecycle: hosts up and down, socklab against docker-compose on the same image and topology.

Both bring up N hosts on one internal dual-stack network (same image, same
capabilities and limits, same addresses) and take them down again, taking
turns so that the machine's noise falls on both alike. socklab also
prepares each host (unpacks nodes/, isolates it), which compose does not.

A third contender is the engine's floor: the same network and containers
created, started and removed with bare SDK calls (in parallel, as socklab
does) and nothing else. What socklab adds is its time minus the floor.
The engine's teardown time grows with the host's connection-tracking table
(Docker dumps it on every endpoint removal), so its size is noted, and one
figure measures it: a 2-host lab's teardown with the table as found and
with about 100,000 entries more (``fill_conntrack``: empty UDP datagrams
from 127.0.0.1 to closed ports of 127.0.0.1, one entry per flow, each gone
by itself nf_conntrack_udp_timeout seconds later), the table's size beside
each. Another weighs what IPv6 costs: a 2-host lab up and down on an
IPv4-only network against a dual-stack one (scenarios get IPv6 only where
they use it, ``socklab.families``).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from docker.types import IPAMConfig, IPAMPool

from socklab.backend import subnets
from socklab.backend.docker import DockerBackend
from socklab.backend.docker.backend import CAPABILITIES, MEMORY_LIMIT, PIDS_LIMIT, SYSCTLS
from socklab.benchmarks import Figure, ratio
from socklab.concurrency import parallel_map
from socklab.constants import LABEL_LAB, LABEL_OWNER, owner
from socklab.lab import Lab
from socklab.model import Host, Network

SIZES = (2, 3, 10, 50)
TARGETS = {3: "<= 1.0"}  # seconds, up and down
UP_TARGETS = {50: "<= 15"}


CONNTRACK = Path("/proc/sys/net/netfilter")
FILL = 100_000  # entries added to the table for the teardown figure
FILL_SECONDS = 10.0  # at most this long spent adding them
FILL_SHARE = 0.5  # never fill the table beyond this share of nf_conntrack_max
FILL_TURNS = 4  # at most this many turns, whatever the repeats: each waits for the filled entries to expire


def conntrack_entries() -> str:
    count = conntrack_count()
    return "unknown" if count is None else str(count)


def conntrack_count() -> int | None:
    """Entries in the connection-tracking table of this process's network namespace (the host's, for a benchmark)."""
    try:
        return int((CONNTRACK / "nf_conntrack_count").read_text())
    except (OSError, ValueError):
        return None


def _conntrack_setting(name: str, default: int) -> int:
    try:
        return int((CONNTRACK / name).read_text())
    except (OSError, ValueError):
        return default


def bound_udp_ports() -> set[int]:
    """Every UDP port some socket of this namespace is bound to, IPv4 or IPv6 (from /proc/net/udp and udp6)."""
    ports: set[int] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        ports.update(int(line.split()[1].rsplit(":", 1)[1], 16) for line in lines if line.split())
    return ports


def fill_conntrack(entries: int = FILL, seconds: float = FILL_SECONDS) -> int:
    """Add about ``entries`` entries to the host's connection-tracking table; return how many datagrams were sent.

    An empty UDP datagram from 127.0.0.1 to a closed port of 127.0.0.1 is
    one flow, so one entry, which nobody answers (the kernel's ICMP port
    unreachable belongs to it) and which expires by itself after
    nf_conntrack_udp_timeout seconds (30 here). Each sender socket (one
    source port) sends to every closed port from 1024 up, so the flows are
    all different; ports some socket is bound to are skipped, so that no
    program gets a datagram. Bounded: at most ``entries`` datagrams, at most
    ``seconds`` spent, and never more than FILL_SHARE of nf_conntrack_max in
    the table (a full table drops new connections, everybody's).
    """
    count = conntrack_count()
    if count is None:
        return 0
    entries = min(entries, int(_conntrack_setting("nf_conntrack_max", 65536) * FILL_SHARE) - count)
    taken = bound_udp_ports()
    closed = [port for port in range(1024, 65536) if port not in taken]
    sent, deadline = 0, time.monotonic() + seconds
    for _ in range(math.ceil(max(entries, 0) / len(closed))):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind(("127.0.0.1", 0))
            for port in closed[:entries - sent]:
                if time.monotonic() > deadline:
                    return sent
                try:
                    sender.sendto(b"", ("127.0.0.1", port))
                except OSError:  # a full queue for a moment (ENOBUFS): that flow is skipped
                    continue
                sent += 1
    return sent


def socklab_cycle(backend: DockerBackend, size: int, network: Network | None = None,
                  before_down: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """One lab of ``size`` hosts up and down: the seconds each took (``before_down`` runs between, untimed)."""
    hosts = {f"h{i}": Host(f"h{i}", ("lan",)) for i in range(size)}
    started = time.perf_counter()
    with Lab.open(backend, f"bench-{size}", {"lan": network or Network("lan")}, hosts):
        up = time.perf_counter() - started
        before_down()
        down_started = time.perf_counter()
    return up, time.perf_counter() - down_started


def engine_floor_cycle(backend: DockerBackend, image: str, size: int) -> tuple[float, float]:
    """Only what any tool must ask the engine for: one network, N containers started, all removed."""
    api = backend.api
    v4, v6 = next(subnets.free_pairs(backend.taken_subnets()))
    label = {LABEL_LAB: f"bench-floor-{size}", LABEL_OWNER: owner()}
    started = time.perf_counter()
    network = api.create_network(f"socklab-bench-floor-{size}", driver="bridge", internal=True, enable_ipv6=True,
                                 labels=label, ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(v4)),
                                                                             IPAMPool(subnet=str(v6))]))["Id"]
    config = api.create_host_config(network_mode=network, init=True, cap_drop=["ALL"], cap_add=CAPABILITIES,
                                    security_opt=["no-new-privileges"], mem_limit=MEMORY_LIMIT,
                                    pids_limit=PIDS_LIMIT, sysctls=SYSCTLS)

    def start(index: int) -> str:
        container = api.create_container(image, host_config=config, labels=label)["Id"]
        api.start(container)
        return container

    containers = parallel_map(start, range(size))
    up = time.perf_counter() - started
    parallel_map(lambda container: api.remove_container(container, force=True), containers)
    api.remove_network(network)
    return up, time.perf_counter() - started - up


def compose_file(image: str, size: int, project: str, backend: DockerBackend) -> str:
    """The same topology for docker-compose (file format 2.4, which Debian's compose speaks)."""
    v4, v6 = next(subnets.free_pairs(backend.taken_subnets()))
    services = {}
    for i in range(size):
        services[f"h{i}"] = {
            "image": image, "hostname": f"h{i}", "init": True, "command": ["sleep", "infinity"],
            "cap_drop": ["ALL"], "cap_add": CAPABILITIES, "security_opt": ["no-new-privileges"],
            "mem_limit": MEMORY_LIMIT, "pids_limit": PIDS_LIMIT, "sysctls": SYSCTLS,
            "labels": {LABEL_LAB: project, LABEL_OWNER: owner()},
            "networks": {"lan": {"ipv4_address": subnets.host_address(v4, i),
                                 "ipv6_address": subnets.host_address(v6, i)}},
        }
    network = {"internal": True, "enable_ipv6": True, "labels": {LABEL_LAB: project, LABEL_OWNER: owner()},
               "ipam": {"config": [{"subnet": str(v4), "gateway": subnets.gateway(v4)},
                                   {"subnet": str(v6), "gateway": subnets.gateway(v6)}]}}
    return json.dumps({"version": "2.4", "services": services, "networks": {"lan": network}}, indent=1)


def compose_cycle(image: str, size: int, backend: DockerBackend) -> tuple[float, float]:
    project = f"socklab-bench-compose-{size}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "docker-compose.json"
        path.write_text(compose_file(image, size, project, backend))
        command = ["docker-compose", "-p", project, "-f", str(path)]
        started = time.perf_counter()
        try:
            subprocess.run([*command, "up", "-d"], check=True, capture_output=True)
            up = time.perf_counter() - started
        finally:
            subprocess.run([*command, "down"], check=True, capture_output=True)
    return up, time.perf_counter() - started - up


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    backend = DockerBackend()
    image = backend.ensure_image(progress)
    compose = shutil.which("docker-compose")
    figures = []
    for size in SIZES:
        ours = Figure(f"lab of {size} hosts: up and down (socklab)", "s", target=TARGETS.get(size, ""),
                      note=f"conntrack entries at start: {conntrack_entries()}")
        ours_up = Figure(f"lab of {size} hosts: up (socklab)", "s", target=UP_TARGETS.get(size, ""))
        theirs = Figure(f"lab of {size} hosts: up and down (docker-compose)", "s",
                        note="" if compose else "docker-compose is not installed (Debian: docker-compose)")
        floor = Figure(f"lab of {size} hosts: up and down (engine floor: bare SDK calls)", "s")
        for turn in range(repeats if size < 50 else max(1, repeats // 2)):
            progress(f"  {size} hosts, turn {turn + 1}")
            up, down = socklab_cycle(backend, size)
            ours.samples.append(round(up + down, 3))
            ours_up.samples.append(round(up, 3))
            if compose:
                up, down = compose_cycle(image, size, backend)
                theirs.samples.append(round(up + down, 3))
            up, down = engine_floor_cycle(backend, image, size)
            floor.samples.append(round(up + down, 3))
        figures += [ours, ours_up, floor, theirs]
        if theirs.samples:
            figures.append(ratio(f"lab of {size} hosts: socklab / docker-compose", ours, theirs,
                                 target="<= 0.5" if size == 3 else ""))
    return figures + ipv4_only_against_dual_stack(backend, repeats, progress) + \
        teardown_against_conntrack(backend, repeats, progress)


def ipv4_only_against_dual_stack(backend: DockerBackend, repeats: int,
                                 progress: Callable[[str], None]) -> list[Figure]:
    """A 2-host lab up and down on an IPv4-only network and on a dual-stack one, taking turns."""
    v4 = Figure("lab of 2 hosts: up and down, IPv4-only network (socklab)", "s")
    v4_up = Figure("lab of 2 hosts: up, IPv4-only network (socklab)", "s")
    dual = Figure("lab of 2 hosts: up and down, dual-stack network (socklab)", "s")
    dual_up = Figure("lab of 2 hosts: up, dual-stack network (socklab)", "s")
    for turn in range(repeats):
        progress(f"  2 hosts, IPv4 only and dual-stack, turn {turn + 1}")
        for network, both, up_only in ((Network("lan", ipv6=False), v4, v4_up), (Network("lan"), dual, dual_up)):
            up, down = socklab_cycle(backend, 2, network)
            both.samples.append(round(up + down, 3))
            up_only.samples.append(round(up, 3))
    return [v4, dual, ratio("lab of 2 hosts up and down: IPv4-only / dual-stack", v4, dual), v4_up, dual_up,
            ratio("lab of 2 hosts up: IPv4-only / dual-stack", v4_up, dual_up)]


def teardown_against_conntrack(backend: DockerBackend, repeats: int,
                               progress: Callable[[str], None]) -> list[Figure]:
    """A 2-host lab's teardown with the host's conntrack table as found, then filled with ~FILL entries more.

    Each turn takes the table as found first; then, once the lab is up,
    fills it (``fill_conntrack``) and takes the lab down; then waits (at
    most nf_conntrack_udp_timeout + 5 seconds) for the filled entries to
    expire, so that the next turn finds the table as it was; at most
    FILL_TURNS turns. The table's size just before each
    teardown is kept, and its median is printed in each figure's name.
    """
    if conntrack_count() is None:
        return [Figure("lab of 2 hosts: down, conntrack table filled (socklab)", "s",
                       note="no connection tracking here (/proc/sys/net/netfilter/nf_conntrack_count)")]
    sizes: dict[str, list[int]] = {"found": [], "filled": []}
    seconds: dict[str, list[float]] = {"found": [], "filled": []}
    expiry = min(_conntrack_setting("nf_conntrack_udp_timeout", 30), 120) + 5
    for turn in range(min(repeats, FILL_TURNS)):
        progress(f"  2 hosts, teardown with the conntrack table as found and filled, turn {turn + 1}")
        quiet = conntrack_count() or 0
        for kind in ("found", "filled"):

            def before_down(kind: str = kind) -> None:
                if kind == "filled":
                    fill_conntrack()
                sizes[kind].append(conntrack_count() or 0)

            seconds[kind].append(round(socklab_cycle(backend, 2, before_down=before_down)[1], 3))
        deadline = time.monotonic() + expiry
        while time.monotonic() < deadline and (conntrack_count() or 0) > quiet + FILL // 10:
            time.sleep(1)
    as_found = Figure(f"lab of 2 hosts: down, conntrack table as found ({_entries(sizes['found'])}) (socklab)",
                      "s", seconds["found"], note=f"entries before each teardown: {sizes['found']}")
    full = Figure(f"lab of 2 hosts: down, conntrack table filled ({_entries(sizes['filled'])}) (socklab)",
                  "s", seconds["filled"], note=f"entries before each teardown: {sizes['filled']}")
    return [as_found, full, ratio("lab of 2 hosts down: conntrack table filled / as found", full, as_found)]


def _entries(sizes: list[int]) -> str:
    return f"{int(statistics.median(sizes)):,} entries" if sizes else "no entries counted"
