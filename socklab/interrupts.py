"""SIGINT and SIGTERM end a run early, but never before its labs are torn down.

Python turns SIGINT into KeyboardInterrupt wherever the main thread happens
to be, and lets SIGTERM kill the process outright, skipping every
``finally``. This module makes both signals behave alike: the first one
raises ``Interrupted`` in the main thread and sets a flag that worker
threads check between steps; teardown code runs shielded, so a second
signal cannot cut it short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from socklab.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _handling(handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` while inside; the previous handlers come back after."""
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


@contextlib.contextmanager
def calling_on_signals(callback: Callable[[], object]) -> Iterator[None]:
    """While inside, SIGINT or SIGTERM calls ``callback`` once, on a thread of its own.

    For work that should wind down rather than be cut: a live capture asks
    tcpdump to stop, then keeps reading until the last packet has arrived.
    """
    fired = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if not fired.is_set():
            fired.set()
            threading.Thread(target=callback, daemon=True).start()

    with _handling(handle):
        yield


class Interruptions:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._shield_depth = 0  # the main thread's; signals are only delivered there
        self._raised = False
        self._installed = False

    def checkpoint(self) -> None:
        """Called between steps: stop here if a signal arrived."""
        if self.cancelled.is_set():
            raise Interrupted("interrupted")

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Let no signal interrupt what runs inside (teardown)."""
        main = threading.current_thread() is threading.main_thread()
        if main:
            self._shield_depth += 1
        try:
            yield
        finally:
            if main:
                self._shield_depth -= 1

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Make what runs inside atomic with respect to SIGINT and SIGTERM (creating or removing a lab).

        With this guard installed, that is ``shielded``. Without it (a lab
        opened from a script or a pytest fixture), a signal arriving inside is
        held and delivered on the way out, to whatever handles it there
        (pytest's handler, Python's KeyboardInterrupt), once the work inside
        is whole. Outside the main thread no signal is ever raised: a no-op.
        """
        if self._installed:
            with self.shielded():
                yield
            return
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        held: list[int] = []

        def hold(signum: int, frame: FrameType | None) -> None:
            self.cancelled.set()
            held.append(signum)

        try:
            with _handling(hold):
                yield
        finally:
            if held:  # delivered to the handler that is back in place, even if the work inside failed
                signal.raise_signal(held[0])

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interruptions]:
        """Handle SIGINT/SIGTERM while inside; a no-op outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._installed = True
        try:
            with _handling(self._handle):
                yield self
        finally:
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.cancelled.set()
        if self._shield_depth == 0 and not self._raised:
            self._raised = True
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}; every lab was torn down")

