"""The swarm backend's overheads: a lab on overlays spread over three engines against a bridge on one engine.

The benchmark makes its own cluster with tools/swarm_cluster.py (three
dockerds in network namespaces of their own, named ``bsw-...``; never the
machine's own engine's swarm state) and removes it afterwards, whatever
happens. The node image is loaded into the manager, as a machine that built
it would have it; the swarm backend sends it to the two others, once
(timed: a figure of its own, as are the cluster's making and the load).

Two measures, each taking turns between its contenders so that the
machine's noise falls on all alike:

1. a 3-host lab on one IPv4-only network, up and down: the Docker backend
   on engine e1 alone (a bridge) against the swarm backend with the hosts
   apart, one per engine (an overlay: VXLAN between the engines' kernels),
   and with the hosts together on one node (an overlay, no VXLAN): what the
   overlay costs, and what spreading adds to it. One lab of each, untimed,
   first: a node's first overlay endpoint also makes its gateway bridge.
2. the whole catalogue (IPv6 on a swarm is socklab's own, set up on each
   host as it starts: a cost counted here) run as ``invoke run -j 4``: with
   the Docker backend on e1 alone, then with the swarm backend on 1, 2 and
   3 engines. One cluster of three serves all: the engines not
   used are drained (node availability ``drain``), which the backend's
   discovery leaves out of placement, so every count runs beside the same
   three idle-or-busy dockerds.

All the engines share the machine's cores, so spreading cannot speed
anything up here: the figures are the backend's overheads. Root only
(namespaces, dockerd): otherwise, or without the tools the cluster needs,
it says so and measures nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socklab import catalogue
from socklab.benchmarks import Figure, ratio
from socklab.constants import PROJECT_ROOT
from socklab.model import Host, Network, Scenario

if TYPE_CHECKING:
    from socklab.backend.base import Backend

ENGINES = 3
JOBS = 4
HOSTS = 3
RUN_LIMIT = 1800.0  # s: a bound that only stops a hung catalogue run
CLUSTER_PREFIX = "bsw-"
ACTIVE, DRAIN = "active", "drain"


def names(scenarios: Iterable[Scenario]) -> list[str]:
    """The catalogue's scenarios by name, in order: every one runs on a swarm as on one engine."""
    return sorted(s.name for s in scenarios)


def cluster_name() -> str:
    """A fresh cluster name of this benchmark's: never one somebody else's cluster may have."""
    return f"{CLUSTER_PREFIX}{uuid.uuid4().hex[:8]}"


def availability(spec: Mapping[str, Any], active: bool) -> dict[str, Any]:
    """A node's spec with its availability set (``active``, or ``drain``: no new hosts), the rest as it was."""
    return {**spec, "Availability": ACTIVE if active else DRAIN}


def lab_topology(place: str = "apart") -> tuple[dict[str, Network], dict[str, Host]]:
    """Three hosts on one IPv4-only network: the lab of the first measure."""
    hosts = {f"h{i}": Host(f"h{i}", ("lan",), place=place) for i in range(HOSTS)}
    return {"lan": Network("lan", ipv6=False)}, hosts


def skipped(why: str) -> list[Figure]:
    return [Figure("swarm backend overheads", "s", note=f"skipped: {why}")]


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    if os.geteuid() != 0:
        progress("  skipped: the swarm benchmark needs root (its cluster's network namespaces and dockerds)")
        return skipped("needs root (tools/swarm_cluster.py: network namespaces, mounts, dockerd)")
    from tools import swarm_cluster  # root only; the tool needs nothing beyond the standard library

    try:
        swarm_cluster.check_prerequisites()
    except swarm_cluster.PrerequisiteError as exc:
        progress(f"  skipped: {exc}")
        return skipped(str(exc))
    name = cluster_name()
    progress(f"  making cluster {name} ({ENGINES} engines)")
    try:
        started = time.perf_counter()
        cluster = swarm_cluster.up(name, ENGINES)
        made = Figure(f"swarm: cluster of {ENGINES} engines made (tools/swarm_cluster.py up)", "s",
                      [round(time.perf_counter() - started, 3)], note=f"once; storage {cluster.storage_driver}")
        return [made, *_measure(cluster, repeats, progress)]
    finally:
        progress(f"  removing cluster {name}")
        swarm_cluster.down(name)
        left = swarm_cluster.leftovers(name)
        if left:
            raise RuntimeError(f"cluster {name} left {', '.join(left)}: `python tools/swarm_cluster.py down "
                               f"--name {name}` removes it")


def _measure(cluster: Any, repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    """Everything timed on a cluster that is up (``tools.swarm_cluster.Cluster``)."""
    import docker
    from socklab.backend.docker import DockerBackend
    from socklab.backend.docker.images import image_name
    from socklab.backend.swarm import SwarmBackend

    here = DockerBackend()
    image = here.ensure_image(progress)
    manager = docker.DockerClient(base_url=cluster.manager.endpoint, timeout=600)
    progress(f"  loading {image} into the manager")
    started = time.perf_counter()
    manager.images.load(here.api.get_image(image_name()))
    loaded = Figure("swarm: node image loaded into the manager from this machine's engine", "s",
                    [round(time.perf_counter() - started, 3)], note="once")
    swarm = SwarmBackend(cluster.manager.endpoint)
    progress("  sending it to the other engines (the swarm backend's distribution)")
    started = time.perf_counter()
    swarm.ensure_image(progress)
    sent = Figure(f"swarm: node image sent by the backend to {ENGINES - 1} nodes at once", "s",
                  [round(time.perf_counter() - started, 3)], note="once")
    bridge = DockerBackend(docker.DockerClient(base_url=cluster.engines[0].endpoint, timeout=300))
    figures = [loaded, sent, *lab_cycles(bridge, swarm, repeats, progress)]
    return figures + catalogue_runs(cluster, manager, repeats, progress)


# -- 1: one lab up and down -------------------------------------------------------------


def lab_cycle(backend: Backend, place: str = "apart") -> tuple[float, float]:
    """The 3-host lab up and down once: the seconds each took."""
    from socklab.lab import Lab

    networks, hosts = lab_topology(place)
    started = time.perf_counter()
    with Lab.open(backend, f"bench-swarm-{place}", networks, hosts):
        up = time.perf_counter() - started
        down_started = time.perf_counter()
    return up, time.perf_counter() - down_started


def lab_cycles(bridge: Backend, swarm: Backend, repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    """The 3-host lab on a bridge of e1, on overlays apart over the engines, and together on one, taking turns."""
    contenders: list[tuple[str, Backend, str]] = [
        ("bridge, engine e1 alone (docker backend)", bridge, "apart"),
        (f"overlay, hosts apart over {ENGINES} engines (swarm backend)", swarm, "apart"),
        ("overlay, hosts together on one engine (swarm backend)", swarm, "together"),
    ]
    ups = {label: Figure(f"swarm: {HOSTS}-host IPv4 lab up, {label}", "s") for label, _, _ in contenders}
    downs = {label: Figure(f"swarm: {HOSTS}-host IPv4 lab down, {label}", "s") for label, _, _ in contenders}
    progress("  a lab of each, untimed (first endpoints on each node)")
    for _, backend, place in contenders:
        lab_cycle(backend, place)
    for turn in range(repeats):
        progress(f"  {HOSTS}-host lab, bridge and overlay, turn {turn + 1}")
        for label, backend, place in contenders:
            up, down = lab_cycle(backend, place)
            ups[label].samples.append(round(up, 3))
            downs[label].samples.append(round(down, 3))
    bridged, apart, together = (label for label, _, _ in contenders)
    return [*ups.values(), *downs.values(),
            ratio(f"swarm: {HOSTS}-host lab up: overlay apart / bridge", ups[apart], ups[bridged]),
            ratio(f"swarm: {HOSTS}-host lab down: overlay apart / bridge", downs[apart], downs[bridged]),
            ratio(f"swarm: {HOSTS}-host lab up: overlay apart / together", ups[apart], ups[together])]


# -- 2: the catalogue on 1, 2 and 3 engines ---------------------------------------------------


def restrict(manager: Any, engines: int) -> None:
    """Only the first ``engines`` nodes (by hostname; the manager, e1, first) take hosts: the others drained."""
    nodes = sorted(manager.api.nodes(), key=lambda node: node["Description"]["Hostname"])
    for index, node in enumerate(nodes):
        wanted = availability(node["Spec"], index < engines)
        if wanted != node["Spec"]:
            manager.api.update_node(node["ID"], node["Version"]["Index"], wanted)


def catalogue_runs(cluster: Any, manager: Any, repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    chosen = names(catalogue.load())
    title = f"the catalogue's {len(chosen)} scenarios, -j {JOBS}"
    bridge = Figure(f"swarm: {title}, bridge, engine e1 alone (docker backend)", "s")
    on = {count: Figure(f"swarm: {title}, swarm backend on {count} engine{'s' if count > 1 else ''}", "s")
          for count in range(1, ENGINES + 1)}
    bridge_env = {"DOCKER_HOST": cluster.engines[0].endpoint}
    swarm_env = dict(cluster.environment())
    try:
        for turn in range(repeats):
            progress(f"  catalogue, -j {JOBS}, turn {turn + 1}: bridge on e1")
            _record(bridge, invoke_run(chosen, "docker", bridge_env), progress)
            for count, figure in on.items():
                progress(f"  catalogue, -j {JOBS}, turn {turn + 1}: swarm on {count} engine(s)")
                restrict(manager, count)
                _record(figure, invoke_run(chosen, "swarm", swarm_env), progress)
    finally:
        restrict(manager, ENGINES)
    return [bridge, *on.values(), *(ratio(f"swarm: {title}: swarm on {count} / bridge", figure, bridge)
                                    for count, figure in on.items())]


def _record(figure: Figure, outcome: tuple[float, list[str]], progress: Callable[[str], None]) -> None:
    """A run's wall time; failed scenarios are named in the figure's note (their time is not like a pass's)."""
    seconds, failed = outcome
    figure.samples.append(seconds)
    if failed:
        progress(f"    failed: {', '.join(failed)}")
        figure.note = "; ".join(filter(None, [figure.note, f"run {len(figure.samples)} failed: {', '.join(failed)}"]))


def invoke_run(scenarios: Sequence[str], backend: str, env: Mapping[str, str]) -> tuple[float, list[str]]:
    """Wall time of ``invoke run SCENARIOS --backend B -j 4`` and the scenarios that did not pass.

    A run that could not be made at all (exit status 2: the engine, the
    environment) is an error, not a figure.
    """
    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "invoke", "run", ",".join(scenarios), "--backend", backend,
                               "--jobs", str(JOBS), "--quiet", "--results", results],
                              cwd=PROJECT_ROOT, env=os.environ | dict(env), capture_output=True, text=True,
                              timeout=RUN_LIMIT)
        elapsed = round(time.perf_counter() - started, 3)
        report = Path(results) / "latest" / "report.json"
        if done.returncode not in (0, 1) or not report.exists():
            raise RuntimeError(f"invoke run --backend {backend} failed ({done.returncode}): {done.stderr[-1000:]}")
        ran = json.loads(report.read_text())["scenarios"]
    return elapsed, [s["name"] for s in ran if s["status"] != "passed"]
