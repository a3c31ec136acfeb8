"""Application server: CPU per request of the project's server against the classic tutorial's, a connection per request.

The headline is "server CPU per request: baseline / app server" (target
>= 2, the figure issue 14 names): how many times more CPU the baseline
spends to answer one request than ``nodes.app`` with one worker does. The
baseline (``baseline_app_server.py``) is the classic tutorial's application
server rebuilt to its design (one ``selectors`` loop, a ``Message`` object
per connection with its read, process and write steps), run with
``--quiet`` as the project's server is, so that neither pays for logging
(the tutorial prints four lines per connection; on a lab host, where a
service's output goes to its log file, that took it from about 75 to about
370 us per request when measured, which would say more about the log than
about the server).

Every server takes turns on the same lab with the same clients:
``app client --requests N --concurrency C`` on both client hosts together.
A server's CPU per request is its processes' user and system time over the
requests served, read from /proc on the server host (workers included), so
it says what each server costs whatever the clients cost (/proc counts
in clock ticks of 10 ms: over a turn's 8,000 requests, steps of 1.25 us).
Requests/s (the two clients' rates added up) are kept as information only:
every host shares the machine's two cores, so the clients' own CPU, which
is more than the server's per request, caps the rate as much as any server
does.
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
SERVERS = {  # label -> port
    "nodes.app, 1 worker": 7001,
    "nodes.app, 2 workers": 7002,
    "baseline": 7003,
}


def services() -> list[Service]:
    return [
        Service("app-1", "server", Command.parse("app serve --port 7001 --quiet"), ready="tcp://*:7001"),
        Service("app-2", "server", Command.parse("app serve --port 7002 --quiet --workers 2"), ready="tcp://*:7002"),
        Service("baseline", "server", Argv(("python3", BASELINE_ON_HOST, "serve", "--port", "7003", "--quiet")),
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
    app, baseline = "nodes.app, 1 worker", "baseline"
    return [
        ratio("server CPU per request: baseline / app server", cpu[baseline], cpu[app], target=">= 2"),
        *cpu.values(),
        *figures.values(),
        ratio("requests/s: app server (1 worker) / baseline", figures[app], figures[baseline]),
        ratio("requests/s: app server (2 workers) / baseline", figures["nodes.app, 2 workers"], figures[baseline]),
    ]
