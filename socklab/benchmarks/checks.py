"""What a check costs: one alone, from asking to its result, and each of a scenario's many, side by side.

Both are measured through the hosts' resident agents (``socklab.agents``)
and by an exec per check (``SOCKLAB_AGENT=off``'s way), taking turns, so
that the machine's noise falls on both:

- *one check alone*: a TCP probe echoed by a server on another host,
  timed around ``Lab.probe`` (agent) and around the backend's exec of the
  very same command line (exec), the lab already up and warm;
- *per check in a scenario*: address-matrix (40 checks, made side by side)
  run as ``invoke run`` runs it; its checks phase divided by its checks.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

from socklab import agents, catalogue, commands, runner
from socklab.backend.docker import DockerBackend
from socklab.benchmarks import Figure, environment, ratio
from socklab.constants import LAB_USER
from socklab.lab import Lab
from socklab.model import Command, Host, Network, Probe, Service

CALLS = 20  # checks alone per repeat: a repeat's figure is their median
SCENARIO = "address-matrix"
PROBE = Probe(to="{server.lan.ipv4}:7", send="Hello, world", timeout=10)


def agents_set(on: bool) -> contextlib.AbstractContextManager[None]:
    """Labs opened meanwhile start agents (or not): ``$SOCKLAB_AGENT`` for the while."""
    return environment(agents.AGENT_ENV, "on" if on else "off")


def _milliseconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def one_check(backend: DockerBackend, repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    through_agent = Figure("one check alone, through the host's agent", "ms", target="<= 30")
    by_exec = Figure("one check alone, by docker exec", "ms")
    hosts = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
    with agents_set(True), Lab.open(backend, "bench-check", {"lan": Network("lan")}, hosts) as lab:
        lab.require(Service("echo", "server", Command.parse("echo serve --bind '' --port 7"), ready="tcp://*:7"))
        argv = commands.probe_argv(PROBE, lambda text: lab.render(text, "client"))
        handle = lab.infos["client"].handle

        def agent_call() -> None:
            seen = lab.probe("client", PROBE)
            if (seen.outcome, seen.via) != ("echoed", "agent"):
                raise RuntimeError(f"the check through the agent did not hold: {seen} (via {seen.via})")

        def exec_call() -> None:
            done = backend.exec(handle, argv, user=LAB_USER)
            if '"echoed"' not in done.stdout:
                raise RuntimeError(f"the check by exec did not hold: {done}")

        agent_call()  # warm: the agent's first fork, the engine's exec path
        exec_call()
        for turn in range(repeats):
            progress(f"  one check alone, turn {turn + 1}")
            agent_times, exec_times = [], []
            for _ in range(CALLS):
                agent_times.append(_milliseconds(agent_call))
                exec_times.append(_milliseconds(exec_call))
            through_agent.samples.append(round(statistics.median(agent_times), 2))
            by_exec.samples.append(round(statistics.median(exec_times), 2))
    return [through_agent, by_exec, ratio("one check alone: exec / agent", by_exec, through_agent)]


def per_check(backend: DockerBackend, repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    (scenario,) = catalogue.load([SCENARIO])
    made = {True: Figure(f"per check in {SCENARIO} ({len(scenario.checks)} checks side by side), agent", "ms",
                         target="<= 20"),
            False: Figure(f"per check in {SCENARIO}, exec", "ms")}
    for turn in range(repeats):
        progress(f"  {SCENARIO}, turn {turn + 1}")
        for on in (True, False):
            with agents_set(on):
                result = runner.run_scenario(scenario, backend)
            if result.status != "passed":
                raise RuntimeError(f"{SCENARIO} failed: {result.error or [c.detail for c in result.checks]}")
            made[on].samples.append(round(result.phase_seconds["checks"] / len(result.checks) * 1000, 1))
    return [made[True], made[False], ratio(f"per check in {SCENARIO}: exec / agent", made[False], made[True])]


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    backend = DockerBackend()
    backend.ensure_image(progress)
    return [*one_check(backend, repeats, progress), *per_check(backend, repeats, progress)]
