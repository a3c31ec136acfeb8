"""How the model's actions become command lines on a lab host.

Every program runs as ``python3 -m nodes.<program>`` (nodes/ is on the
PYTHONPATH of every host) under coreutils ``timeout``, so that no check can
hang a run. Services run detached through a small shell wrapper that keeps
their log and exit status in the lab user's folder, and the same exec then
waits, on the host itself, until the service is ready.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from socklab.constants import LAB_HOME, NODES_PARENT
from socklab.model import Command, Probe, Service

Render = Callable[[str], str]

COMMAND_LIMIT = 120.0  # seconds any one check's program may take
READY_LIMIT = 15.0  # seconds a service has to become ready
GRACE = 5.0  # on top of a probe's own timeouts, for Python to start and report
READY_EXIT_GONE = 3  # nodes.ready: the service exited first


def python(program: str, args: list[str]) -> list[str]:
    return ["python3", "-m", f"nodes.{program}", *args]


def bounded(argv: list[str], seconds: float) -> list[str]:
    """Kill the command if it overruns (SIGTERM, then SIGKILL a second later)."""
    return ["timeout", "-k", "1", f"{seconds:g}", *argv]


def program_argv(command: Command, render: Render, limit: float = COMMAND_LIMIT) -> list[str]:
    return bounded(python(command.program, [render(arg) for arg in command.args]), limit)


def probe_argv(probe: Probe, render: Render) -> list[str]:
    """``nodes.probe``'s options mirror the probe table's keys one to one."""
    args = ["--proto", probe.proto, "--timeout", f"{probe.timeout:g}"]
    for flag, value in (("--to", probe.to), ("--bind", probe.bind), ("--send", probe.send),
                        ("--from", probe.source)):
        if value is not None:
            args += [flag, render(value)]
    if probe.size is not None:
        args += ["--size", str(probe.size)]
    if probe.family != "any":
        args += ["--family", probe.family]
    if probe.bufsize is not None:
        args += ["--bufsize", str(probe.bufsize)]
    args += ["--connected"] * probe.connected + ["--reuse-addr"] * probe.reuse_addr
    if probe.v6only is not None:
        args.append("--v6only" if probe.v6only else "--dual-stack")
    # A name may resolve to several addresses, each tried in turn.
    return bounded(python("probe", args), probe.timeout * 4 + GRACE)


def service_files(service: Service) -> tuple[str, str, str]:
    """Where a service's log, pid and exit status live on its host."""
    return (f"{LAB_HOME}/log/{service.name}.log", f"{LAB_HOME}/run/{service.name}.pid",
            f"{LAB_HOME}/run/{service.name}.exit")


def service_argv(service: Service, render: Render, ready_limit: float = READY_LIMIT) -> list[str]:
    """Start ``service`` in the background, then wait until it is ready.

    The background part has its output redirected away from the exec, so the
    exec ends when the readiness wait does, while the service lives on. Its
    exit status, if it ever exits, is written next to its pid.
    """
    log, pid, status = service_files(service)
    args = [render(a) for a in service.command.args]
    if service.impl:
        argv = ["python3", f"{NODES_PARENT}/{service.impl.filename}", *args]
    else:
        argv = python(service.command.program, args)
    command = shlex.join(argv)
    start = (f"( {command} >>{log} 2>&1 </dev/null & echo $! >{pid}; wait $!; echo $? >{status} ) "
             f">/dev/null 2>&1 </dev/null &")
    if service.ready is None:
        return ["sh", "-c", start]
    wait = shlex.join(python("ready", [render(service.ready), "--timeout", f"{ready_limit:g}", "--pidfile", pid]))
    return ["sh", "-c", f"{start}\nexec {wait}"]
