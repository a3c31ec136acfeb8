"""A run's results folder: report.json (the source of truth), junit.xml, report.html, service logs, captures.

Each report, log and capture is written whole or not at all (``files.atomic_write``; a failure is
``files.NotWritten``, naming the file), and
``results/latest`` moves to a folder only once its reports are written.
"""

from __future__ import annotations

import datetime
import json
import secrets
from pathlib import Path

from socklab.reports import html, junit
from socklab.reports.files import NotWritten, atomic_write
from socklab.results import RunResult

DEFAULT_ROOT = Path("results")


def new_folder(root: Path = DEFAULT_ROOT) -> Path:
    """``results/<UTC time>-<random>``: sortable, and unique across concurrent runs."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    folder = root / f"{stamp}-{secrets.token_hex(2)}"
    folder.mkdir(parents=True)
    return folder


def write(run: RunResult, folder: Path, *, latest: bool = True) -> Path:
    """Write a run's results into ``folder`` (made if need be); ``latest`` points ``results/latest`` at it."""
    _folder(folder)
    run.results_dir = str(folder)
    for scenario in run.scenarios:
        for name, pcap in scenario.captures.items():
            path = folder / "captures" / scenario.name / f"{name}.pcap"
            atomic_write(_folder(path.parent) / path.name, pcap)
        for service in scenario.services:
            if service.log:
                log = folder / "logs" / scenario.name / f"{service.host}.{service.name}.log"
                atomic_write(_folder(log.parent) / log.name, service.log.encode())
    atomic_write(folder / "report.json", (json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n").encode())
    atomic_write(folder / "junit.xml", junit.render(run))
    atomic_write(folder / "report.html", html.render(run).encode())
    if latest:
        point_latest(folder)
    return folder


def _folder(path: Path) -> Path:
    """Make ``path`` if need be; a failure (no space for it, say) is ``NotWritten``, naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotWritten(path, exc) from exc
    return path


def point_latest(folder: Path) -> None:
    """``results/latest`` names the newest folder, for people and for CI artefacts."""
    latest = folder.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(folder.name)
    except OSError:
        pass  # a concurrent run got there first; either folder is fine
