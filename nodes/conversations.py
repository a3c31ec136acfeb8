"""Many client connections at once on one thread: a selectors loop, and a small state machine per connection.

The load generators (``nodes.app``'s client, ``nodes.multiconn``'s) open
their connections without blocking and move each one on as its socket
becomes ready. Each connection is an object whose methods are its steps,
the way ``socketserver`` calls a request handler's ``setup``, ``handle``
and ``finish``: a program's subclass of ``Conversation`` says what each
step does, and ``Load`` calls them.

  connect   socket(), setblocking(False), connect_ex(): the handshake goes
            on in the kernel while the loop serves the other connections
  ready     the socket can take bytes, or bytes (or end of file) arrived:
            the subclass sends and receives what goes without blocking
  done      the conversation is over, however it went: the subclass counts
            the outcome; the socket leaves the selector and is closed

``Load`` keeps the conversations in flight in the order they started,
which is the order their deadlines come in, starts new ones while fewer
than ``concurrency`` are in flight, and ends those whose time is up.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time

from nodes.cli import failure
from nodes.outcomes import Outcome

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class Conversation:
    """One client connection, from connect to done; a subclass gives ``ready`` and counts in ``done``."""

    sock: socket.socket  # from connect() on, for as long as the conversation is in flight

    def __init__(self, load: Load) -> None:
        self.load = load
        self.events = 0  # selector interest; 0 while not registered
        self.started = self.deadline = 0.0

    def connect(self) -> bool:
        """Start a non-blocking connect; False if it failed at once (``done`` was called)."""
        try:
            sock = socket.socket(self.load.family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors: a failure like any other
            self.raised(exc)
            return False
        self.sock = sock
        sock.setblocking(False)
        self.started = time.monotonic()
        self.deadline = self.started + self.load.timeout
        self.load.in_flight[self] = None
        code = sock.connect_ex(self.load.sockaddr)
        if code not in (0, errno.EINPROGRESS):
            self.raised(OSError(code, os.strerror(code)))
            return False
        return True

    def watch(self, events: int) -> None:
        """Be called (``ready``) when the socket is ready for ``events``."""
        if not self.events:
            self.load.selector.register(self.sock, events, self)
        elif self.events != events:
            self.load.selector.modify(self.sock, events, self)
        self.events = events

    def ready(self, mask: int) -> None:
        """The socket is ready for the ``mask`` events: send and receive what goes without blocking."""
        raise NotImplementedError

    def expired(self) -> None:
        """The time is up."""
        self.done(Outcome.TIMEOUT.value)

    def raised(self, exc: OSError) -> None:
        said = failure(exc)
        self.done(said["outcome"], said["detail"], said["errno"])

    def done(self, outcome: str, detail: str | None = None, errno_name: str | None = None) -> None:
        """The last step: leave the selector and close (a subclass counts ``outcome``, then calls this)."""
        if self in self.load.in_flight:  # it has a socket
            del self.load.in_flight[self]
            if self.events:
                self.load.selector.unregister(self.sock)
            self.sock.close()


class Load:
    """The loop: runs conversations, at most ``concurrency`` at a time, each for at most ``timeout`` seconds.

    Set ``conversation_class`` in a subclass; it is made with the load as
    its argument, as socketserver makes its handlers with the server.
    """

    conversation_class: type[Conversation] = Conversation

    def __init__(self, family: int, sockaddr: tuple, *, timeout: float, concurrency: int) -> None:
        self.family, self.sockaddr, self.timeout, self.concurrency = family, sockaddr, timeout, concurrency
        self.selector = selectors.DefaultSelector()
        self.in_flight: dict[Conversation, None] = {}  # started first, so expiring first

    def run(self, count: int) -> None:
        try:
            while count or self.in_flight:
                while count and len(self.in_flight) < self.concurrency:
                    count -= 1
                    self.conversation_class(self).connect()
                if not self.in_flight:
                    continue
                self.service_actions()
                wait = max(0.0, next(iter(self.in_flight)).deadline - time.monotonic())
                for key, mask in self.selector.select(self.wait(wait)):
                    key.data.ready(mask)
                now = time.monotonic()
                while self.in_flight and (oldest := next(iter(self.in_flight))).deadline <= now:
                    oldest.expired()
        finally:
            self.selector.close()

    def service_actions(self) -> None:
        """Called before each wait for readiness; nothing by default."""

    def wait(self, timeout: float) -> float:
        """How long to wait for readiness: until the first deadline, by default."""
        return timeout
