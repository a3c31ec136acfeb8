"""Concurrency: 10,000 connections held at once on one server, opened from four client hosts.

Each client host opens 2,500 connections and holds them silent until all of
its own are up and a few seconds more (``--hold``), so the four hosts'
connections overlap on the server; then every connection is echoed and
closed. The server's side is observed on the server host: established
connections counted by ``ss`` while they are held, and the server's peak
resident memory (VmHWM) afterwards.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from socklab.backend.docker import DockerBackend
from socklab.benchmarks import Figure
from socklab.concurrency import parallel_map
from socklab.lab import Lab
from socklab.model import Host, Network

CLIENTS = ("c1", "c2", "c3", "c4")
PER_CLIENT = 2500
HOLD = 4.0
SERVERS = {"asyncecho": 7100, "multiconn": 7200}


def server_side_peak(lab: Lab, port: int, stop: threading.Event) -> int:
    """The most established connections seen on the server's port, sampled until ``stop``."""
    peak = 0
    count = ["sh", "-c", f"ss -Htn state established '( sport = :{port} )' | wc -l"]
    while not stop.is_set():
        peak = max(peak, int(lab.exec("server", count).stdout.strip() or 0))
        time.sleep(0.2)
    return peak


def one_round(lab: Lab, program: str, port: int) -> dict[str, float]:
    load = (f"{program} client --to {{server.lan.ipv4}}:{port} --connections {PER_CLIENT} --hold {HOLD:g} "
            f"--timeout 120")
    stop = threading.Event()
    peak: list[int] = []
    watcher = threading.Thread(target=lambda: peak.append(server_side_peak(lab, port, stop)))
    watcher.start()
    try:
        seen = parallel_map(lambda host: lab.run(host, load, limit=180), CLIENTS)
    finally:
        stop.set()
        watcher.join()
    memory = lab.exec("server", ["sh", "-c", f"cat /proc/$(cat /lab/run/{program}.pid)/status"]).stdout
    hwm = re.search(r"VmHWM:\s+(\d+) kB", memory)
    return {
        "established": sum(s.evidence.get("opened", 0) for s in seen),
        "echoed": sum(s.evidence.get("completed", 0) for s in seen),
        "errors": sum(sum((s.evidence.get("errors") or {}).values()) for s in seen),
        "server_peak": peak[0] if peak else 0,
        "memory_mib": round(int(hwm.group(1)) / 1024, 1) if hwm else float("nan"),
    }


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    backend = DockerBackend()
    backend.ensure_image(progress)
    hosts = {name: Host(name, ("lan",)) for name in ("server", *CLIENTS)}
    figures: list[Figure] = []
    with Lab.open(backend, "bench-10k", {"lan": Network("lan")}, hosts) as lab:
        for program, port in SERVERS.items():
            lab.start("server", f"{program} serve --port {port} --quiet --timeout 300", ready=f"tcp://*:{port}",
                      name=program)
            rows = {key: Figure(f"{program}: {label}", unit, target=target) for key, label, unit, target in (
                ("established", "connections established", "connections", ">= 10000"),
                ("echoed", "echoes correct", "connections", ">= 10000"),
                ("errors", "errors", "connections", "<= 0"),
                ("server_peak", "connections held at once on the server", "connections", ">= 10000"),
                ("memory_mib", "server peak memory (VmHWM)", "MiB", ""),
            )}
            for turn in range(max(1, repeats // 2)):
                progress(f"  {program}, 10,000 connections, turn {turn + 1}")
                for key, value in one_round(lab, program, port).items():
                    rows[key].samples.append(value)
            figures += rows.values()
    return figures
