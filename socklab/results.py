"""What a run observed: plain data that every report is written from.

``report.json`` is these objects as JSON and is the source of truth; JUnit,
HTML and the console table are views of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from socklab.errors import EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK


class Status(StrEnum):
    PASSED = "passed"  # every check observed what it expected
    FAILED = "failed"  # a check observed something else, or the lab could not be readied
    SKIPPED = "skipped"  # not run: the run was interrupted first


@dataclass
class CheckResult:
    name: str
    host: str
    action: str  # the command that made the attempt, as run on the host
    expected: str
    observed: str  # an outcome word; "error" if no result could be read
    evidence: dict[str, Any] = field(default_factory=dict)  # the client's own JSON result
    detail: str = ""  # why the check failed, in a sentence, when it did
    unmet: list[str] = field(default_factory=list)  # claims about the evidence that did not hold

    @property
    def passed(self) -> bool:
        return self.observed == self.expected and not self.unmet


@dataclass
class ServiceResult:
    name: str
    host: str
    command: str
    ready: bool
    detail: str = ""
    log: str = ""


@dataclass
class ScenarioResult:
    name: str
    title: str
    topic: str
    explains: str
    try_next: str = ""
    lab_id: str = ""
    status: Status = Status.SKIPPED
    error: str = ""  # why the lab could not be readied, if it could not
    hosts: dict[str, dict[str, dict[str, str | None]]] = field(default_factory=dict)  # host -> network -> addresses
    notes: list[str] = field(default_factory=list)  # what the hosts said while being prepared
    implementations: dict[str, str] = field(default_factory=dict)  # role -> file, when grading
    services: list[ServiceResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    captures: dict[str, bytes] = field(default_factory=dict, repr=False)  # HOST-INTERFACE -> pcap

    def conclude(self) -> None:
        """Passed only if the lab came up and every check held."""
        held = bool(self.checks) and all(c.passed for c in self.checks)
        self.status = Status.PASSED if held and not self.error else Status.FAILED


@dataclass
class RunResult:
    scenarios: list[ScenarioResult]
    started: str  # ISO 8601
    seconds: float
    results_dir: str = ""
    interrupted: bool = False

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if all(s.status == Status.PASSED for s in self.scenarios) else EXIT_CHECK_FAILED

    def grades(self) -> dict[str, dict[str, Any]]:
        """For each implementation graded (``role=file``): which checks it passed and which caught it."""
        grades: dict[str, dict[str, Any]] = {}
        for scenario in self.scenarios:
            for role, source in scenario.implementations.items():
                grade = grades.setdefault(f"{role}={source}", {"role": role, "file": source, "passed": [],
                                                               "failed": [], "labs_not_ready": []})
                if scenario.error:
                    grade["labs_not_ready"].append(f"{scenario.name}: {scenario.error.splitlines()[0]}")
                for check in scenario.checks:
                    grade["passed" if check.passed else "failed"].append(f"{scenario.name} / {check.name}")
        return grades

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: packet captures appear by file name, their bytes go to files of their own."""
        data = asdict(self)
        data["grades"] = self.grades()
        for scenario, result in zip(data["scenarios"], self.scenarios, strict=True):
            scenario["captures"] = [f"captures/{result.name}/{name}.pcap" for name in result.captures]
            for check, check_result in zip(scenario["checks"], result.checks, strict=True):
                check["passed"] = check_result.passed
        data["exit_status"] = self.exit_status
        return data
