"""An attached exec as a ``Channel``: its standard input to write to, its standard output to read as it comes.

The engine multiplexes the exec's output streams on one socket (a frame
header per chunk): stdout's frames are what ``receive`` yields; stderr's
last bytes are kept (``said``), to say why the command ended if it did.

A channel is read on one thread and written on others (``socklab.agents``).
Over TLS (a remote engine's endpoint) that is not safe as such: an SSL
connection may not be read and written by two threads at once. So the
socket is non-blocking, each read or write is made under one lock, and
the waiting is done without it, in ``poll``: a reader waiting for output
never holds up a writer. Nothing times out either: a channel waits as
long as the lab lasts (an agent idle between checks is not a dead one).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

from docker.utils.socket import STDERR, STDOUT

import docker

STDERR_KEPT = 2000  # bytes of the command's own error output kept, for the reason it ended
HEADER = 8  # a frame's header: its stream (1 byte), 3 bytes of nothing, its length (4 bytes, big-endian)
CHUNK = 65536
POLL_MS = 1000  # the longest a wait goes without looking whether the channel was closed


class ExecChannel:
    def __init__(self, api: docker.APIClient, exec_id: str) -> None:
        stream: Any = api.exec_start(exec_id, socket=True)
        self._sock: Any = getattr(stream, "_sock", stream)  # a unix or TCP socket, or an SSL one over TLS
        self._sock.setblocking(False)
        self._io = threading.Lock()  # one call on the socket at a time
        self._sending = threading.Lock()  # one message at a time, whole
        self._closed = False
        self.said = b""

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        with self._sending:
            while view:
                view = view[self._call(self._sock.send, view, select.POLLOUT):]

    def receive(self) -> Iterator[bytes]:
        pending = bytearray()
        while True:
            try:
                chunk = self._call(self._sock.recv, CHUNK, select.POLLIN)
            except OSError:
                if self._closed:  # by close(), from another thread: the output ends here
                    return
                raise
            if not chunk:
                return
            pending += chunk
            while len(pending) >= HEADER:
                size = int.from_bytes(pending[4:HEADER], "big")
                if len(pending) < HEADER + size:
                    break
                stream, frame = pending[0], bytes(pending[HEADER:HEADER + size])
                del pending[:HEADER + size]
                if stream == STDOUT:
                    yield frame
                elif stream == STDERR:
                    self.said = (self.said + frame)[-STDERR_KEPT:]

    def close(self) -> None:
        with self._io:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # the command's stdin ends, and a receive() under way returns
            with contextlib.suppress(OSError):
                self._sock.close()

    def _call(self, call: Callable[[Any], Any], argument: Any, event: int) -> Any:
        """``call(argument)`` on the socket, under the lock; until it can be made, wait (without the lock) for the
        socket to be ready for ``event``, or for what TLS asks (a read may need a write, and the other way)."""
        while True:
            with self._io:
                if self._closed:
                    raise OSError("the channel was closed")
                try:
                    return call(argument)
                except ssl.SSLWantReadError:
                    wait = select.POLLIN
                except ssl.SSLWantWriteError:
                    wait = select.POLLOUT
                except BlockingIOError:
                    wait = event
                fd = self._sock.fileno()
            poll = select.poll()
            poll.register(fd, wait)
            # Not for ever: closed meanwhile, its descriptor's number may be another file's by now. A wait cut
            # short only tries the call again.
            poll.poll(POLL_MS)
