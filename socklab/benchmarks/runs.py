"""Whole runs from a user's shell: `invoke run tcp-echo`, and the catalogue serially and side by side."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from socklab.benchmarks import Figure, ratio
from socklab.constants import PROJECT_ROOT
from socklab.runner import DEFAULT_JOBS


def invoke_seconds(*args: str) -> float:
    """Wall time of one `invoke` command, the image already built; a failed run is an error, not a figure."""
    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "invoke", *args, "--quiet", "--results", results],
                              cwd=PROJECT_ROOT, capture_output=True, text=True)
        elapsed = round(time.perf_counter() - started, 3)
    if done.returncode != 0:
        raise RuntimeError(f"invoke {' '.join(args)} failed ({done.returncode}): {done.stderr[-1000:]}")
    return elapsed


def warm() -> None:
    subprocess.run([sys.executable, "-m", "invoke", "build", "--quiet"], cwd=PROJECT_ROOT, check=True,
                   capture_output=True)


def tcp_echo(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    warm()
    figure = Figure("invoke run tcp-echo (warm image)", "s", target="<= 1.2")
    for _ in range(repeats):
        figure.samples.append(invoke_seconds("run", "tcp-echo"))
    return [figure]


def side_by_side() -> Figure:
    return Figure(f"invoke run --all (-j {DEFAULT_JOBS}, the default)", "s", target="<= 20")


def catalogue(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    """The whole catalogue one scenario at a time, and side by side (the default), taking turns."""
    warm()
    serial = Figure("invoke run --all -j 1", "s")
    default = side_by_side()
    for turn in range(max(1, repeats // 2)):
        progress(f"  catalogue, turn {turn + 1}")
        serial.samples.append(invoke_seconds("run", "--all", "--jobs", "1"))
        default.samples.append(invoke_seconds("run", "--all"))
    return [serial, default, ratio("catalogue: side by side / one at a time", default, serial)]


def catalogue_side_by_side(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    """The whole catalogue side by side only (``invoke bench --quick``)."""
    warm()
    default = side_by_side()
    for turn in range(repeats):
        progress(f"  catalogue, turn {turn + 1}")
        default.samples.append(invoke_seconds("run", "--all"))
    return [default]
