"""An interactive terminal on a lab host, through the engine's exec API.

``invoke shell HOST`` must not shell out to the docker CLI, so this does
what ``docker exec -it`` does: a TTY exec whose socket is pumped to and
from the local terminal, held in raw mode, with the window size passed on.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import sys
import termios
import tty
from collections.abc import Iterator
from typing import Any

import docker
from socklab.constants import LAB_HOME


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def attach(api: docker.APIClient, container: str, argv: list[str], *, user: str) -> int:
    """Run ``argv`` with a TTY on ``container``, wired to this terminal; return its exit status."""
    environment = {"TERM": os.environ.get("TERM", "xterm")}
    exec_id = api.exec_create(container, argv, stdin=True, tty=True, environment=environment, user=user,
                              workdir=LAB_HOME)["Id"]
    stream: Any = api.exec_start(exec_id, tty=True, socket=True)
    sock = getattr(stream, "_sock", stream)
    size = shutil.get_terminal_size()
    with contextlib.suppress(docker.errors.APIError):
        api.exec_resize(exec_id, height=size.lines, width=size.columns)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    with _raw(stdin), selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ, "remote")
        selector.register(stdin, selectors.EVENT_READ, "local")
        open_ = True
        while open_:
            for key, _ in selector.select():
                if key.data == "remote":
                    data = sock.recv(65536)
                    if not data:
                        open_ = False
                        break
                    os.write(stdout, data)
                else:
                    data = os.read(stdin, 65536)
                    if not data:
                        selector.unregister(stdin)
                        continue
                    sock.sendall(data)
    sock.close()
    return api.exec_inspect(exec_id)["ExitCode"] or 0
