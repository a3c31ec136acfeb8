"""A few threads for work that waits on the engine (creating, preparing, removing hosts).

Every thread started here blocks SIGINT and SIGTERM first thing: the kernel
may hand a process's signal to any thread that accepts it, and Python runs
handlers only on the main thread, when it next runs code, so a signal taken
by a worker while the main thread waits on a lock would go unnoticed until
the wait ended. Blocked in workers, the signals always reach the main thread.

Callers that must not be cut short by a signal while threads are being
started or waited for (creating or removing a lab) hold signals around the
call (``Interruptions.holding``): an exception raised into the middle of a
thread pool's bookkeeping could leave a thread unwaited for.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
MAX_THREADS = 8
SIGNALS = {signal.SIGINT, signal.SIGTERM}


def refuse_signals() -> None:
    """The initializer of every helper thread: leave SIGINT and SIGTERM to the main thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def executor(workers: int, name: str = "socklab") -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=refuse_signals)


def parallel_map(function: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """``[function(i) for i in items]``, side by side; re-raise the first failure.

    Leaving the executor waits for every task, so nothing is still in flight
    when a caller's cleanup sweeps up after a failure.
    """
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with executor(min(MAX_THREADS, len(items))) as pool:
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]
