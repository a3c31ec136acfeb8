"""A cap on how many tasks a graded program may have on its host: the lab's guard against a fork bomb.

    python -m nodes.guard --user student --max 256

socklab starts it, as root, beside every program it runs as the graded user
(``socklab.commands.service_argv``), before that program. Every ``--every``
seconds it counts the tasks (processes and threads) whose real user is
``--user``; past ``--max`` it stops every one of them (SIGSTOP, so that none
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
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
SETTLE_ROUNDS = 200  # scans, at most, to catch the tasks forked while the others were being stopped


def tasks_by_process(uid: int) -> dict[int, int]:
    """Every live process whose real uid is ``uid``, with its number of threads (zombies hold no task)."""
    found: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        # /proc/PID's owner is the effective uid, and root for a process that made itself undumpable: the
        # status file's real uid cannot be hidden that way.
        if int(fields.get("Uid", "-1").split()[0]) == uid and not fields.get("State", "").strip().startswith("Z"):
            found[int(entry.name)] = int(fields.get("Threads", "1"))
    return found


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone meanwhile
            os.kill(pid, sig)


def stop_and_kill(uid: int) -> int:
    """Stop every process of ``uid`` until a scan finds none still running, then kill them all; how many were."""
    stopped: set[int] = set()
    for _ in range(SETTLE_ROUNDS):
        running = set(tasks_by_process(uid)) - stopped
        if not running:
            break
        signal_all(running, signal.SIGSTOP)
        stopped |= running
    for _ in range(SETTLE_ROUNDS):
        left = tasks_by_process(uid)
        if not left:
            break
        signal_all(left, signal.SIGKILL)
        time.sleep(0.01)
    return len(stopped)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.guard", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--user", required=True, help="the user whose tasks are counted (the graded user)")
    p.add_argument("--max", type=int, default=256, help="tasks that user may have on this host (default: 256)")
    p.add_argument("--every", type=float, default=0.1, help="seconds between counts (default: 0.1)")
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
    os.seteuid(uid)
    parent = os.getppid()
    while True:
        tasks = tasks_by_process(uid)
        count = sum(tasks.values())
        if count > args.max:
            killed = stop_and_kill(uid)
            print(f"[guard] {args.user} had {count} tasks on this host, over its limit of {args.max}: "
                  f"its {killed} processes were stopped and killed", file=sys.stderr, flush=True)
        elif not tasks and os.getppid() != parent:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
