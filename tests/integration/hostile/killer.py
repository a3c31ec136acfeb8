"""A hostile submission: kill every process it can (kill -9 -1, over and over), and try to trace the lab's.

    python3 killer.py SECONDS PID...

It forks a child of its own first, to show that its kills do land where
they may. For SECONDS it sends SIGKILL to every process it may signal
(kill(-1) spares the caller itself); then it tries PTRACE_ATTACH on each
PID named, and prints what it got, and its capabilities, one line each.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys
import time

PTRACE_ATTACH = 16


def main() -> None:
    seconds, targets = float(sys.argv[1]), [int(pid) for pid in sys.argv[2:]]
    child = os.fork()
    if child == 0:
        time.sleep(3600)
        os._exit(0)
    print("killing", flush=True)
    deadline, kills = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            os.kill(-1, signal.SIGKILL)
            kills += 1
        except OSError:
            pass
        time.sleep(0.005)
    _, status = os.waitpid(child, 0)
    print(f"own child: {'killed' if os.WIFSIGNALED(status) else 'alive'} after {kills} kill(-1) calls", flush=True)
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in targets:
        done = libc.ptrace(PTRACE_ATTACH, pid, None, None)
        print(f"ptrace {pid}: {'ATTACHED' if done == 0 else errno.errorcode[ctypes.get_errno()]}", flush=True)
    with open("/proc/self/status") as status_file:
        for line in status_file:
            if line.startswith(("Cap", "NoNewPrivs", "Uid")):
                print(line.strip(), flush=True)
    print("done", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
