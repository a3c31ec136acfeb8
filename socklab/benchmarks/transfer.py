"""Bulk TCP between two lab hosts: the bulk program against iperf3 on the same hosts, taking turns.

iperf3 is the reference for what the link gives; the bulk program is
Python, hashes every byte it receives with SHA-256 and checks it, so it is
expected to be slower: the question is by how much.

Both make the same transfer: ``BYTES`` over one new connection, timed from
the first byte to the last (iperf3's receiver's figure; the bulk client's,
up to the digest coming back). Both copy their data from user space into
the kernel (iperf3 without ``-Z``, bulk with ``sendall``), so neither
sends zero-copy. iperf3 used to run for 3 s against bulk's 1 GB (under a
second): a pair's two samples then stood in different stretches of a
shared machine's noise.

Bulk's ceiling is SHA-256 on one core (about 1.75 GB/s, 14 Gbit/s, on
this machine's CPUs with SHA-NI): its receiver hashes on a thread of its
own, which stays about 95% busy on a quiet machine. Bulk needs about 1.1
CPU-seconds per GB across both hosts, iperf3 about 0.65, so a machine busy
with other work lowers bulk's figure more than iperf3's.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from socklab.backend.docker import DockerBackend
from socklab.benchmarks import Figure, ratio
from socklab.lab import Lab
from socklab.model import Host, Network

BYTES = 1_000_000_000


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    backend = DockerBackend()
    backend.ensure_image(progress)
    hosts = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
    bulk = Figure(f"bulk TCP, {BYTES // 1_000_000} MB with SHA-256 check", "Mbit/s")
    iperf = Figure(f"iperf3 TCP, {BYTES // 1_000_000} MB", "Mbit/s")
    with Lab.open(backend, "bench-bulk", {"lan": Network("lan")}, hosts) as lab:
        lab.start("server", "bulk serve --port 7000 --timeout 120", ready="tcp://0.0.0.0:7000")
        lab.exec("server", ["iperf3", "--server", "--port", "5201", "--daemon"])
        if not lab.exec("server", ["python3", "-m", "nodes.ready", "tcp://*:5201", "--timeout", "10"]).ok:
            raise RuntimeError("iperf3 did not start listening on the server host")
        for turn in range(repeats):
            progress(f"  bulk transfer, turn {turn + 1}")
            seen = lab.run("client", f"bulk client --to {{server.lan.ipv4}}:7000 --bytes {BYTES} --timeout 120",
                           limit=180)
            if seen.outcome != "ok" or not seen.evidence.get("hash_match"):
                raise RuntimeError(f"the bulk transfer failed: {seen.outcome} {seen.detail}")
            bulk.samples.append(round(seen.evidence["throughput_mbps"], 1))
            result = lab.exec("client", ["iperf3", "-c", lab.render("{server.lan.ipv4}"), "-p", "5201",
                                         "-n", str(BYTES), "-J"])
            iperf.samples.append(round(json.loads(result.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6, 1))
    return [bulk, iperf, ratio("bulk TCP / iperf3", bulk, iperf, target=">= 0.75")]
