"""The machine's lab slots: however many runs start at once, only so many labs run side by side.

Each ``invoke run`` runs ``--jobs`` labs at a time, but it cannot see the
others: eight runs of the whole catalogue at once on two cores ask for 32
labs together, and then every lab's programs starve and miss their time
limits (measured: 0 of 8 such runs passed). So every scenario's lab first
takes one of the machine's slots, ``SLOTS_PER_CPU`` per core (or
``$SOCKLAB_SLOTS``), and waits while none is free: runs beyond what the
machine can hold take turns instead of failing together. The time a check
may take starts only once its lab has a slot.

A slot is an exclusive ``flock`` on one of a few files in a folder that
every user of the machine shares (``$SOCKLAB_SLOTS_DIR``, else the
system's temporary folder): the kernel releases it when its holder exits,
however it exits, so a killed run never keeps a slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from socklab.interrupts import Interruptions

SLOTS_PER_CPU = 2  # measured on two cores: 4 labs side by side keep every check in time; 8 not always, 32 never
SLOTS_ENV = "SOCKLAB_SLOTS"
SLOTS_DIR_ENV = "SOCKLAB_SLOTS_DIR"
WAIT_SECONDS = 0.05  # between looks for a free slot


def count() -> int:
    """How many labs this machine runs side by side, all runs together."""
    chosen = os.environ.get(SLOTS_ENV, "").strip()
    return int(chosen) if chosen.isdigit() and int(chosen) > 0 else SLOTS_PER_CPU * (os.cpu_count() or 1)


def folder() -> Path:
    """The folder of slot files, shared by every user: made open to all, sticky as /tmp is."""
    where = Path(os.environ.get(SLOTS_DIR_ENV) or tempfile.gettempdir()) / "socklab-slots"
    if not where.is_dir():
        with contextlib.suppress(FileExistsError):
            where.mkdir(mode=0o1777)
        with contextlib.suppress(PermissionError):  # another user's: already open to all
            where.chmod(0o1777)  # mkdir's mode is cut by the umask
    return where


@contextlib.contextmanager
def held(guard: Interruptions | None = None) -> Iterator[int]:
    """Wait for a free slot and hold it (its number) until the block ends; a signal ends the wait."""
    guard = guard or Interruptions()
    where, slots = folder(), count()
    while True:
        for number in range(slots):
            fd = _open(where / f"slot-{number}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield number
            finally:
                os.close(fd)  # closing the file releases its lock
            return
        guard.checkpoint()
        time.sleep(WAIT_SECONDS)


def _open(path: Path) -> int:
    """A slot file, made readable and writable by every user, so that anyone may lock it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):  # another user's file, already open to all
        os.fchmod(fd, 0o666)
    return fd
