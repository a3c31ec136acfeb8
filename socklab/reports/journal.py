"""A run's results as it goes: report.json rewritten after every check, so that a killed run leaves its record.

A run that is killed (SIGKILL, the machine going down) never writes its
final reports. The journal keeps, from the run's start, a report.json that
holds every check made so far, each scenario still running with the checks
it has made (``status: pending``), and ``"complete": false``, next to a file
``INCOMPLETE`` that says so in words. Every write replaces the file whole
(``reports.atomic_write``), so no reader ever sees half of one. The final
reports replace the journal's; a run that ended, even interrupted, removes
the marker. A journal that cannot write (a disk gone full mid-run) stops
writing but never stops the run: its last report.json stays, whole.

A run of the catalogue makes some 300 writes, so each must stay cheap
whatever the run's size: a finished scenario is turned into its dict once
(it never changes again), and the journal's JSON is compact, which Python
encodes in C (the final report.json, written once, is indented).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from socklab import events
from socklab.model import Scenario
from socklab.reports.files import atomic_write
from socklab.results import RunResult, ScenarioResult, scenario_dict

MARKER = "INCOMPLETE"
MARKER_TEXT = ("This run did not finish writing its results (it was killed, or is still running): report.json "
               "holds every check made until then, and says \"complete\": false.\n")


class Journal:
    """A listener that keeps ``folder/report.json`` current while scenarios run."""

    def __init__(self, folder: Path, scenarios: Sequence[Scenario], started: str) -> None:
        self.folder, self.started, self.began = folder, started, time.monotonic()
        self.results = {s.name: ScenarioResult(s.name, s.title, s.topic, s.explains, s.try_next) for s in scenarios}
        self.finished: dict[str, dict[str, Any]] = {}  # by name: the dicts of scenarios that will not change again
        self.lock = threading.Lock()
        self.failed: OSError | None = None
        """Why the journal stopped writing mid-run (the final reports try again, and say so if they fail too)."""
        atomic_write(folder / MARKER, MARKER_TEXT.encode())
        self._write()

    def __call__(self, event: events.Event) -> None:
        with self.lock:
            if isinstance(event, events.CheckFinished) and event.scenario in self.results:
                self.results[event.scenario].checks.append(event.result)
            elif isinstance(event, events.ScenarioFinished) and event.result.name in self.results:
                self.results[event.result.name] = event.result
                self.finished[event.result.name] = scenario_dict(event.result)
            else:
                return
            if self.failed is None:
                try:
                    self._write()
                except OSError as exc:  # a full disk: the run goes on; the last report.json written stays, whole
                    self.failed = exc

    def _write(self) -> None:
        so_far = RunResult(list(self.results.values()), self.started, round(time.monotonic() - self.began, 3),
                           str(self.folder), complete=False)
        scenarios = [self.finished.get(name) or scenario_dict(result) for name, result in self.results.items()]
        atomic_write(self.folder / "report.json", (json.dumps(so_far.to_dict(scenarios), ensure_ascii=False)
                                                   + "\n").encode())

    def close(self, run: RunResult) -> None:
        """The run has written its final reports: the marker goes, unless it was interrupted."""
        if not run.interrupted:
            (self.folder / MARKER).unlink(missing_ok=True)
