"""A hostile submission: try to rewrite socklab's files, then exit 3.

    python3 rewriter.py SERVICE...

Each attempt prints one line, ``DENIED what errno`` or ``DONE what``: the
node programs under /opt/socklab (the probe, the readiness check), the lab
user's home, and the log, pid and exit files of each SERVICE named (its own
among them: it writes a pid of 1 and an exit status of 0 there, to pass for
a program that never died).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from functools import partial

NODES = "/opt/socklab/nodes"


def attempt(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as exc:
        print(f"DENIED {what} {errno.errorcode.get(exc.errno or 0, exc.errno)}", flush=True)
    else:
        print(f"DONE {what}", flush=True)


def write(path: str, text: str, mode: str = "w") -> Callable[[], object]:
    def act() -> None:
        with open(path, mode) as file:
            file.write(text)
    return act


def main() -> None:
    print(f"pid {os.getpid()}", flush=True)
    evil = '{"outcome": "echoed"}\n'
    attempt("append nodes/probe.py", write(f"{NODES}/probe.py", "\nprint('forged')\n", "a"))
    attempt("create nodes/evil.py", write(f"{NODES}/evil.py", "print('forged')\n"))
    attempt("replace nodes/ready.py", lambda: os.replace(f"{NODES}/echo.py", f"{NODES}/ready.py"))
    attempt("remove nodes/echo.py", lambda: os.unlink(f"{NODES}/echo.py"))
    attempt("chmod nodes", lambda: os.chmod(NODES, 0o777))
    attempt("create /lab/evil", write("/lab/evil", evil))
    attempt("create /lab/log/evil.log", write("/lab/log/evil.log", evil))
    attempt("create /lab/run/evil.pid", write("/lab/run/evil.pid", "1\n"))
    for service in sys.argv[1:]:
        for path in (f"/lab/log/{service}.log", f"/lab/run/{service}.pid", f"/lab/run/{service}.exit"):
            attempt(f"write {path}", write(path, "1\n" if path.endswith(".pid") else "0\n"))
            attempt(f"remove {path}", partial(os.unlink, path))
            attempt(f"rename {path}", partial(os.rename, path, path + ".old"))
    print("done", flush=True)
    sys.exit(3)


if __name__ == "__main__":
    main()
