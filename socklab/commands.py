"""How the model's actions become command lines on a lab host.

A node program runs as ``python3 -m nodes.<program>`` (nodes/ is on the
PYTHONPATH of every host), any other program as its argv, a shell line
under ``sh -c``; ``env -C`` sets the folder and environment asked for.
Checks run under coreutils ``timeout``, so that none can hang a run.
Services run detached through a small shell wrapper that keeps their log
and exit status in the lab user's folder, and the same exec then waits, on
the host itself, until the service is ready.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from socklab import keys
from socklab.constants import LAB_HOME, NODES_PARENT
from socklab.model import Argv, Command, Probe, Run, Service

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


def words(run: Run, render: Render) -> list[str]:
    """The argv that a node program, an argv of the user's or a shell line becomes, references rendered."""
    if isinstance(run, Command):
        return python(run.program, [render(arg) for arg in run.args])
    if isinstance(run, Argv):
        return [render(word) for word in run.words]
    return ["sh", "-c", render(run.text)]


def placed(argv: list[str], render: Render, cwd: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """``argv`` run in ``cwd`` with ``env`` added (coreutils ``env -C``), or as it is if neither is asked for."""
    if cwd is None and not env:
        return argv
    return ["env", *(["-C", render(cwd)] if cwd is not None else []),
            *(f"{name}={render(value)}" for name, value in (env or {}).items()), *argv]


def program_argv(run: Run, render: Render, limit: float = COMMAND_LIMIT, *, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> list[str]:
    return bounded(placed(words(run, render), render, cwd, env), limit)


def probe_argv(probe: Probe, render: Render) -> list[str]:
    """``nodes.probe``'s options, built from the probe keys' declared flags (``socklab.model.Probe``).

    A key left at its default is left out: the program's defaults are the
    model's (a test holds them equal), so the command line shows only what
    this check asks for.
    """
    args: list[str] = []
    for declared in keys.declared(Probe):
        value, spec = getattr(probe, declared.field), declared.key
        if value == declared.default or not spec.flag:
            continue
        if isinstance(value, bool):
            args.append(spec.flag if value else spec.flag_off)
        elif isinstance(value, float):
            args += [spec.flag, f"{value:g}"]
        else:
            args += [spec.flag, render(value) if spec.refs else str(value)]
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
    if service.impl and isinstance(service.command, Command):
        argv = ["python3", f"{NODES_PARENT}/{service.impl.filename}", *(render(a) for a in service.command.args)]
    else:
        argv = words(service.command, render)
    command = shlex.join(placed(argv, render, service.cwd, service.env))
    start = (f"( {command} >>{log} 2>&1 </dev/null & echo $! >{pid}; wait $!; echo $? >{status} ) "
             f">/dev/null 2>&1 </dev/null &")
    if service.ready is None:
        return ["sh", "-c", start]
    wait = shlex.join(ready_argv(render(service.ready), ready_limit, pid=pid, log=log))
    return ["sh", "-c", f"{start}\nexec {wait}"]


def ready_argv(condition: str, limit: float = READY_LIMIT, *, pid: str | None = None,
               log: str | None = None) -> list[str]:
    """``nodes.ready`` waiting, on the host, for a condition (a socket, a log line, a command that exits 0)."""
    argv = python("ready", [condition, "--timeout", f"{limit:g}"])
    argv += ["--pidfile", pid] if pid else []
    return argv + (["--log", log] if log else [])
