"""A run's results folder: report.json (the source of truth), junit.xml, report.html, service logs, captures.

Each report is written whole or not at all (``files.atomic_write``), and
``results/latest`` moves to a folder only once its reports are written.
"""

from __future__ import annotations

import datetime
import json
import secrets
from pathlib import Path

from socklab.reports import html, junit
from socklab.reports.files import atomic_write
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
    folder.mkdir(parents=True, exist_ok=True)
    run.results_dir = str(folder)
    for scenario in run.scenarios:
        for name, pcap in scenario.captures.items():
            path = folder / "captures" / scenario.name / f"{name}.pcap"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pcap)
        for service in scenario.services:
            if service.log:
                log = folder / "logs" / scenario.name / f"{service.host}.{service.name}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(service.log)
    atomic_write(folder / "report.json", (json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n").encode())
    atomic_write(folder / "junit.xml", junit.render(run))
    atomic_write(folder / "report.html", html.render(run).encode())
    if latest:
        point_latest(folder)
    return folder


def point_latest(folder: Path) -> None:
    """``results/latest`` names the newest folder, for people and for CI artefacts."""
    latest = folder.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(folder.name)
    except OSError:
        pass  # a concurrent run got there first; either folder is fine
