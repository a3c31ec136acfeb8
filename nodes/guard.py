"""A cap on how many tasks a graded program may have on its host: the lab's guard against a fork bomb.

    python -m nodes.guard --user student --max 768 --max-processes 64

socklab starts it, as root, beside every program it runs as the graded user
(``socklab.commands.service_argv``), before that program. Every ``--every``
seconds it counts the tasks (processes and threads) whose real user is
``--user``; past ``--max`` tasks, or ``--max-processes`` processes, it stops every one of them (SIGSTOP, so that none
forks while the others are being killed), then kills them all (SIGKILL), and
says so on its standard error, which is the program's log. It prints no JSON
result: the graded program's exit status (137) and its log tell what happened.

Why a guard, and not the kernel's limits alone: RLIMIT_NPROC counts a uid's
processes across the whole machine (lab hosts share the kernel and its uids),
so one submission's fork bomb would stop every other lab's submissions from
forking; and the host's pids limit alone would leave the lab's own commands
on that host (a probe from the server itself, a readiness check) without a
process to start until the lab is torn down. The guard forks nothing itself,
so it keeps working when the host has no process left to give.

Why two limits: a thread costs little (a server with a thread per client
may have hundreds), while each process of a Python program soon holds
megabytes of its own (writing reference counts copies the pages it shares
with its parent): hundreds of processes fill a host's memory long before
they reach a task limit fit for threads, and the out-of-memory killer,
not the guard, would be the one to stop them.

A fork bomb takes a host's processes and memory within milliseconds, and a
guard still starting then (importing, allocating) may never get going: the
program is started only once the guard watches (``--ready FILE``).

Exit status: 0 once the program that started it is gone and the user has no
process left on this host; 2 on a bad command line (an unknown user).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import signal
import sys
import time
from pathlib import Path

PROC = Path("/proc")
KILL_ROUNDS = 100  # SIGKILL to every process of the user, at most, until none is left


def owned(uid: int) -> list[int]:
    """The processes whose /proc entry belongs to ``uid`` (their effective uid): one stat each, nothing read.

    Quick where it matters: a fork bomb leaves the guard a sliver of the
    CPU, and reading a thousand status files then takes seconds.
    """
    pids = []
    for entry in os.scandir(PROC):
        with contextlib.suppress(OSError):  # gone meanwhile
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.append(int(entry.name))
    return pids


def tasks_by_process(uid: int) -> dict[int, int]:
    """Every live process whose real uid is ``uid``, with its number of threads (zombies hold no task).

    Only the status of the processes that may be its is read: those /proc
    shows as its, and those it shows as root's, as it does a process that
    made itself undumpable; the status file's real uid cannot be hidden.
    """
    found: dict[int, int] = {}
    for entry in os.scandir(PROC):
        try:
            if not entry.name.isdigit() or entry.stat().st_uid not in (uid, 0):
                continue
            status = Path(entry.path, "status").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
            found[int(entry.name)] = int(fields.get("Threads", "1"))
    return found


def stop_and_kill(uid: int) -> None:
    """Stop every process of ``uid`` at once, then kill them all, until none is left.

    ``kill(-1, sig)`` reaches every process the sender may signal, in one
    call that no fork can slip through. For that moment the guard's real
    uid becomes ``uid`` too, so that it may signal exactly that user's
    processes (a real uid of root would take in root's); its saved uid,
    root, brings it back.
    """
    os.setresuid(uid, uid, 0)
    try:
        for sig in (signal.SIGSTOP, *[signal.SIGKILL] * KILL_ROUNDS):
            with contextlib.suppress(ProcessLookupError):  # nobody left to signal
                os.kill(-1, sig)
            if sig == signal.SIGKILL and not tasks_by_process(uid):
                break
            time.sleep(0.01)
    finally:
        os.setresuid(0, uid, 0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.guard", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--user", required=True, help="the user whose tasks are counted (the graded user)")
    p.add_argument("--max", type=int, default=768,
                   help="tasks (threads) that user may have on this host (default: 768)")
    p.add_argument("--max-processes", type=int, default=64,
                   help="processes that user may have on this host (default: 64)")
    p.add_argument("--every", type=float, default=0.1, help="seconds between counts (default: 0.1)")
    p.add_argument("--ready", metavar="FILE",
                   help="create FILE once watching, for whoever starts the program to wait for")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        uid = pwd.getpwnam(args.user).pw_uid
    except KeyError:
        parser().error(f"no user {args.user!r} on this host")
    # Root on a lab host lacks CAP_KILL: only a sender whose real or effective uid is the target's may signal
    # it. The effective uid alone becomes the user's; the real and saved ones stay root's, so that the user
    # may neither signal nor trace the guard.
    ready = Path(args.ready) if args.ready else None
    if ready:
        ready.unlink(missing_ok=True)
    tasks_by_process(uid)  # everything a scan needs is loaded before anything can take the host's memory
    os.seteuid(uid)
    parent = os.getppid()
    if ready:
        os.seteuid(0)  # the file is root's, where the graded user may not write
        ready.touch()
        os.seteuid(uid)
    while True:
        quick, tasks = owned(uid), {}
        if len(quick) > args.max_processes:  # a fork bomb: no time to read each one's status
            over = f"{len(quick)} processes on this host, over its limit of {args.max_processes}"
        else:
            tasks = tasks_by_process(uid)
            count = sum(tasks.values())
            over = (f"{len(tasks)} processes on this host, over its limit of {args.max_processes}"
                    if len(tasks) > args.max_processes else
                    f"{count} tasks on this host, over its limit of {args.max}" if count > args.max else "")
        if over:
            stop_and_kill(uid)
            print(f"[guard] {args.user} had {over}: its processes were stopped and killed",
                  file=sys.stderr, flush=True)
        elif not tasks and os.getppid() != parent:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
