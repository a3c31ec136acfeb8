"""Application server: requests per second, a new connection per request, from two client hosts at once.

The project's server (``nodes.app``, with one worker and with two) against
the baseline in ``baseline_app_server.py``, a straightforward single-threaded
server of the tutorial's kind. They take turns on the same lab, with the
same clients: ``app client --requests N --concurrency C`` on both client
hosts together; a turn's rate is the two clients' rates added up.

All hosts share the machine's cores, so the clients' own CPU caps the rate
as much as the server does. The server's CPU per request (its processes'
user and system time over the requests served, read from /proc on the
server host) says how efficient each server is, whatever the clients cost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from socklab.backend.docker import DockerBackend
from socklab.benchmarks import Figure, ratio
from socklab.concurrency import parallel_map
from socklab.lab import Lab
from socklab.model import Argv, Command, FileCopy, Host, Network, Service

REQUESTS = 4000  # per client host and turn
CONCURRENCY = 16
BASELINE = Path(__file__).with_name("baseline_app_server.py")
BASELINE_ON_HOST = "/lab/baseline_app_server.py"
SERVERS = {  # label -> (port, service)
    "nodes.app, 1 worker": 7001,
    "nodes.app, 2 workers": 7002,
    "baseline": 7003,
}


def services() -> list[Service]:
    return [
        Service("app-1", "server", Command.parse("app serve --port 7001 --quiet"), ready="tcp://*:7001"),
        Service("app-2", "server", Command.parse("app serve --port 7002 --quiet --workers 2"), ready="tcp://*:7002"),
        Service("baseline", "server", Argv(("python3", BASELINE_ON_HOST, "serve", "--port", "7003")),
                ready="tcp://*:7003"),
    ]


def server_cpu_seconds(lab: Lab, port: int) -> float:
    """User and system time of every process serving ``port`` (workers included), from /proc."""
    pattern = f"--port {str(port)[0]}[{str(port)[1]}]{str(port)[2:]}"  # a pattern that does not match itself
    script = f'for p in $(pgrep -f -- "{pattern}"); do cat /proc/$p/stat; done; getconf CLK_TCK'
    *stats, ticks = lab.exec("server", ["sh", "-c", script]).stdout.split("\n")[:-1] or ["100"]
    # after the ")" closing the command name, fields count from 3 (state): utime is 14, stime 15
    used = sum(int(fields[11]) + int(fields[12]) for fields in (s.rsplit(")", 1)[1].split() for s in stats))
    return used / int(ticks)


def rate(lab: Lab, port: int) -> float:
    """Both client hosts at once; the sum of their completed requests per second."""
    load = f"app client --to {{server.lan.ipv4}}:{port} --value ring --requests {REQUESTS} --concurrency {CONCURRENCY}"
    seen = parallel_map(lambda host: lab.run(host, load, limit=300), ["client1", "client2"])
    for one in seen:
        if one.outcome != "ok" or one.evidence.get("failed"):
            raise RuntimeError(f"the load failed on port {port}: {one.outcome} {one.detail} "
                               f"{one.evidence.get('errors')}")
    return round(sum(one.evidence["requests_per_s"] for one in seen), 1)


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    backend = DockerBackend()
    backend.ensure_image(progress)
    hosts = {name: Host(name, ("lan",)) for name in ("server", "client1", "client2")}
    figures = {label: Figure(f"requests/s: {label}", "req/s") for label in SERVERS}
    cpu = {label: Figure(f"server CPU per request: {label}", "us") for label in SERVERS}
    with Lab.open(backend, "bench-app", {"lan": Network("lan")}, hosts,
                  files=[FileCopy(BASELINE_ON_HOST, BASELINE)]) as lab:
        for service in services():
            started = lab.start_service(service)
            if not started.ready:
                raise RuntimeError(started.detail + started.log)
        for turn in range(repeats):
            progress(f"  application server, turn {turn + 1}")
            for label, port in SERVERS.items():
                before = server_cpu_seconds(lab, port)
                figures[label].samples.append(rate(lab, port))
                used = server_cpu_seconds(lab, port) - before
                cpu[label].samples.append(round(used / (2 * REQUESTS) * 1e6, 1))
    baseline = figures["baseline"]
    return [*figures.values(),
            ratio("app server (1 worker) / baseline", figures["nodes.app, 1 worker"], baseline),
            ratio("app server (2 workers) / baseline", figures["nodes.app, 2 workers"], baseline, target=">= 2"),
            *cpu.values(),
            ratio("server CPU per request: baseline / app server (1 worker)", cpu["baseline"],
                  cpu["nodes.app, 1 worker"])]
