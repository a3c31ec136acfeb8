"""An attached exec as a ``Channel``: its standard input to write to, its standard output to read as it comes.

The engine multiplexes the exec's output streams on one socket (a frame
header per chunk): stdout's frames are what ``receive`` yields; stderr's
last bytes are kept (``said``), to say why the command ended if it did.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from docker.utils.socket import STDERR, STDOUT, frames_iter

import docker

STDERR_KEPT = 2000  # bytes of the command's own error output kept, for the reason it ended


class ExecChannel:
    def __init__(self, api: docker.APIClient, exec_id: str) -> None:
        self._stream: Any = api.exec_start(exec_id, socket=True)
        self._sock: Any = getattr(self._stream, "_sock", self._stream)
        # The client's request timeout would end a receive() after that long without output, and take an agent
        # that is merely idle (a lab between runs of checks) for a dead one: a channel waits until closed.
        self._sock.settimeout(None)
        self._sending = threading.Lock()
        self.said = b""

    def send(self, data: bytes) -> None:
        with self._sending:
            self._sock.sendall(data)

    def receive(self) -> Iterator[bytes]:
        for stream, chunk in frames_iter(self._stream, tty=False):  # type: ignore[no-untyped-call]  # the SDK's helper has no annotations
            if stream == STDOUT:
                yield chunk
            elif stream == STDERR:
                self.said = (self.said + chunk)[-STDERR_KEPT:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # the command's stdin ends, and a receive() under way returns
        with contextlib.suppress(OSError):
            self._sock.close()
