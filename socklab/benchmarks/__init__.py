"""Benchmarks: timings and rates, measured a few times and compared side by side, never pass/fail.

The machine is shared and noisy, so every figure is a median over repeats
with its spread, and every comparison is a ratio of two things measured in
the same run, alternately. ``invoke bench`` prints them and writes them,
with the targets they are held against, as JSON into the results folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socklab import reports
from socklab.errors import UsageError


@dataclass
class Figure:
    """One measured quantity: its samples, and the target it is held against, if any."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: str = ""  # e.g. "<= 1.0", ">= 2"
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.samples), max(self.samples)) if self.samples else (float("nan"), float("nan"))

    @property
    def meets_target(self) -> bool | None:
        if not self.target or not self.samples:
            return None
        operator, _, bound = self.target.partition(" ")
        return self.median <= float(bound) if operator == "<=" else self.median >= float(bound)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.spread
        return {"name": self.name, "unit": self.unit, "median": round(self.median, 4), "min": low, "max": high,
                "samples": self.samples, "target": self.target, "meets_target": self.meets_target, "note": self.note}


@contextlib.contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """``$name`` set to ``value`` for the while (labs, and subprocesses started meanwhile, see it); then as it was."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def ratio(name: str, numerator: Figure, denominator: Figure, target: str = "") -> Figure:
    """A comparison of two figures measured side by side: the ratio of their samples, pairwise."""
    pairs = zip(numerator.samples, denominator.samples, strict=False)
    return Figure(name, "ratio", [round(a / b, 4) for a, b in pairs if b], target=target,
                  note=f"{numerator.name} / {denominator.name}")


Benchmark = Callable[[int, Callable[[str], None]], list[Figure]]
NAMES = ("checks", "lifecycle", "catalogue", "run-tcp-echo", "bulk", "appserver", "concurrency", "grading", "load",
         "swarm")
QUICK = ("checks", "run-tcp-echo", "catalogue", "bulk", "appserver")
"""``invoke bench --quick``: once each, the catalogue only side by side: under two minutes, for development."""


def registry(quick: bool = False) -> dict[str, Benchmark]:
    """The benchmarks by name; imported only when one is run (they need the Docker SDK)."""
    from socklab.benchmarks import appserver, checks, concurrency, grading, lifecycle, load, runs, swarm, transfer

    found: dict[str, Benchmark] = {"checks": checks.run, "lifecycle": lifecycle.run,
                                   "catalogue": runs.catalogue_side_by_side if quick else runs.catalogue,
                                   "run-tcp-echo": runs.tcp_echo, "bulk": transfer.run, "appserver": appserver.run,
                                   "concurrency": concurrency.run, "grading": grading.run,
                                   "load": load.run, "swarm": swarm.run}
    assert tuple(found) == NAMES
    return found


def run(names: list[str], repeats: int, results_root: Path = reports.DEFAULT_ROOT,
        progress: Callable[[str], None] = lambda text: None, quick: bool = False) -> tuple[list[Figure], Path]:
    """Run the benchmarks named (all, or with ``quick`` the QUICK set once each); write bench.json."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise UsageError("--only", f"no benchmark named {', '.join(unknown)}", f"use some of: {', '.join(NAMES)}")
    benchmarks = registry(quick)
    if quick:
        names, repeats = names or list(QUICK), 1
    figures: list[Figure] = []
    for name in names or list(NAMES):
        progress(f"benchmark {name} ({repeats} repeats)")
        figures += benchmarks[name](repeats, progress)
    folder = reports.new_folder(results_root)
    (folder / "bench.json").write_text(json.dumps([f.to_dict() for f in figures], indent=2) + "\n")
    return figures, folder
