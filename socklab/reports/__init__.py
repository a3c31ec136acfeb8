"""A run's results folder: report.json (the source of truth), junit.xml, report.html, service logs, captures."""

from __future__ import annotations

import datetime
import json
import secrets
from pathlib import Path

from socklab.reports import html, junit
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
    (folder / "report.json").write_text(json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n")
    (folder / "junit.xml").write_bytes(junit.render(run))
    (folder / "report.html").write_text(html.render(run), encoding="utf-8")
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
