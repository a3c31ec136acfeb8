"""Lab lifecycle: hosts up and down, socklab against docker-compose on the same image and topology.

Both bring up N hosts on one internal dual-stack network (same image, same
capabilities and limits, same addresses) and take them down again, taking
turns so that the machine's noise falls on both alike. socklab also
prepares each host (unpacks nodes/, isolates it), which compose does not.

A third contender is the engine's floor: the same network and containers
created, started and removed with bare SDK calls (in parallel, as socklab
does) and nothing else. What socklab adds is its time minus the floor.
The engine's teardown time grows with the host's connection-tracking table
(Docker dumps it on every endpoint removal), so its size is noted.
"""

from __future__ import annotations

import json
import shutil
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


def conntrack_entries() -> str:
    try:
        return Path("/proc/sys/net/netfilter/nf_conntrack_count").read_text().strip()
    except OSError:
        return "unknown"


def socklab_cycle(backend: DockerBackend, size: int) -> tuple[float, float]:
    hosts = {f"h{i}": Host(f"h{i}", ("lan",)) for i in range(size)}
    started = time.perf_counter()
    with Lab.open(backend, f"bench-{size}", {"lan": Network("lan")}, hosts):
        up = time.perf_counter() - started
    return up, time.perf_counter() - started - up


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
    return figures
