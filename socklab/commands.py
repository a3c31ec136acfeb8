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
from collections.abc import Callable, Sequence

from socklab import keys
from socklab.constants import GRADED_USER, LAB_HOME, LAB_USER, SUBMISSION_HOME
from socklab.model import Argv, Command, Probe, Run, Service

Render = Callable[[str], str]

COMMAND_LIMIT = 120.0  # seconds any one check's program may take
READY_LIMIT = 15.0  # seconds a service has to become ready
GRACE = 5.0  # on top of a probe's own timeouts, for Python to start and report
READY_EXIT_GONE = 3  # nodes.ready: the service exited first
# A graded program's hard limits (prlimit's names): its largest file, its open files, no core dump.
GRADED_LIMITS = {"fsize": 16 * 2**20, "nofile": 4096, "core": 0}
GRADED_TASKS = 768  # threads the graded user may have on a host (nodes.guard); hosts allow PIDS_LIMIT
GRADED_PROCESSES = 64  # and processes (each soon holds megabytes of its own: see nodes.guard)


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


def limit_of(argv: Sequence[str]) -> float:
    """How long a command may take in all: its ``timeout``'s limit and grace (``bounded``), or COMMAND_LIMIT."""
    words = list(argv)
    if words[:2] == ["timeout", "-k"] and len(words) > 3:
        return float(words[2]) + float(words[3])
    return COMMAND_LIMIT


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


def service_steps(service: Service, render: Render,
                  ready_limit: float = READY_LIMIT) -> tuple[list[str], list[str] | None]:
    """Start ``service`` in the background; then (if it has a readiness condition) wait until it is ready.

    The background part has its output redirected away from the command
    that starts it, so that command ends at once while the service lives
    on. Its exit status, if it ever exits, is written next to its pid. The
    wait is a command of its own, for a host's agent to run in its own
    Python (``socklab.agents``); ``service_argv`` makes both one exec.

    What an earlier run of the same service left (a service started again
    after it died) goes first, before anything starts: its pid file would
    tell the wait that the new one had already exited, and the guard's
    file that the new guard already watches.
    """
    log, pid, status = service_files(service)
    watching = f"{pid}.guard"
    argv = words(service.command, render)
    command = shlex.join(placed(argv, render, service.cwd, service.env))
    guard = ""
    if service.user == GRADED_USER:  # this wrapper runs as root (``exec_user``): the program alone is the student
        command = shlex.join(confined(placed(argv, render, service.cwd, service.env)))
        watch = python("guard", ["--user", GRADED_USER, "--max", str(GRADED_TASKS),
                                 "--max-processes", str(GRADED_PROCESSES), "--ready", watching])
        # the guard first, and the program only once it watches: a fork bomb would leave it no room to start
        guard = (f"{shlex.join(watch)} >>{log} 2>&1 </dev/null & "
                 f"for i in $(seq 100); do [ -e {watching} ] && break; sleep 0.02; done; ")
    start = (f"rm -f {pid} {status} {watching}; "
             f"( {guard}{command} >>{log} 2>&1 </dev/null & {_written('$!', pid)}; wait $!; "
             f"{_written('$?', status)} ) >/dev/null 2>&1 </dev/null &")
    if service.ready is None:
        return ["sh", "-c", start], None
    wait = ready_argv(render(service.ready), ready_limit, pid=pid, log=log)
    if service.user == GRADED_USER:  # the readiness check is the lab's, as for any other service
        wait = ["setpriv", f"--reuid={LAB_USER}", f"--regid={LAB_USER}", "--init-groups", "--", *wait]
    return ["sh", "-c", start], wait


def _written(value: str, path: str) -> str:
    """Shell: write ``value`` to ``path`` whole or not at all, for readers polling it (a file being written by
    ``echo >path`` is there and empty for a moment, and a reader then took a pid file for a dead program's)."""
    return f"echo {value} >{path}.new && mv -f {path}.new {path}"


def service_argv(service: Service, render: Render, ready_limit: float = READY_LIMIT) -> list[str]:
    """``service_steps`` as one command line: start the service, then wait on the host until it is ready."""
    (_, _, start), wait = service_steps(service, render, ready_limit)
    return ["sh", "-c", f"{start}\nexec {shlex.join(wait)}" if wait else start]


def exec_user(service: Service) -> str:
    """Who runs ``service_argv``'s wrapper: root for the graded user (it drops to that user for the program only)."""
    return "root" if service.user == GRADED_USER else service.user


def confined(argv: list[str]) -> list[str]:
    """``argv`` as the graded user, started by root: no capability, no way back up, bounded.

    The program runs as ``GRADED_USER`` (its own uid and gid, in none of the
    lab's groups), so it can neither write socklab's files (nodes/, the lab
    user's home, the logs and pid files) nor signal or trace the lab's
    processes, and it starts in its own folder, SUBMISSION_HOME. setpriv
    leaves it no capability at all (a uid change from root clears them, and
    the inheritable set is emptied) and sets no_new_privs, so that no
    set-uid program or file capability (tcpdump's) gives any back. The
    bounding set stays the host's: dropping from it needs CAP_SETPCAP,
    which lab hosts do not have, and with nothing permitted and no_new_privs
    it grants nothing. The limits (``GRADED_LIMITS``) are set as hard ones,
    before the uid changes, so that it cannot raise them: no file over 16 MiB
    (its log included), no more open files than a lesson's server needs, no
    core dump. choom makes it the first that the out-of-memory killer takes
    (a memory hog dies before the lab's own servers on its host), nice leaves
    the lab's programs the CPU first. Each wrapper execs the next, so the
    pid a shell sees (``$!``) is the program's own.
    """
    limits = [f"--{name}={value}" for name, value in GRADED_LIMITS.items()]
    return ["choom", "-n", "1000", "--", "nice", "-n", "10", "prlimit", *limits, "--",
            "setpriv", f"--reuid={GRADED_USER}", f"--regid={GRADED_USER}", "--init-groups", "--inh-caps=-all",
            "--no-new-privs", "--", "env", "-C", SUBMISSION_HOME, f"HOME={SUBMISSION_HOME}", f"USER={GRADED_USER}",
            f"LOGNAME={GRADED_USER}", *argv]


def as_user(argv: Sequence[str], user: str) -> tuple[list[str], str]:
    """A command run to its end (a check, a client) as ``user``: the argv and the user for the engine's exec.

    For the graded user it is root's exec with the program ``confined``; a
    leading ``timeout`` (``bounded``) stays outside, as root, so that the
    program cannot kill the clock that bounds it.
    """
    words = list(argv)
    if user != GRADED_USER:
        return words, user
    clock, rest = (words[:4], words[4:]) if words[:1] == ["timeout"] else ([], words)
    return [*clock, *confined(rest)], "root"


def ready_argv(condition: str, limit: float = READY_LIMIT, *, pid: str | None = None,
               log: str | None = None) -> list[str]:
    """``nodes.ready`` waiting, on the host, for a condition (a socket, a log line, a command that exits 0)."""
    argv = python("ready", [condition, "--timeout", f"{limit:g}"])
    argv += ["--pidfile", pid] if pid else []
    return argv + (["--log", log] if log else [])
