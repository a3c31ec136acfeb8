"""What a run observed: plain records that every report is written from.

Data flows one way: the lab observes (``Observation``), the verdicts judge
(``CheckResult``), the runner collects (``ScenarioResult``, ``RunResult``),
and the views (console, report.json, JUnit, HTML) only read these records.
Nothing here knows about Docker, TOML or how a page looks. ``report.json``
is these objects as JSON and is the source of truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from socklab.errors import EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK

TIMED_OUT = 124  # a command's exit status when coreutils timeout had to stop it
NOT_FOUND = 127  # a command's exit status when it is not on the host (sh and env say so)
NOT_RUN = "not-run"  # a check's observation when it could not be made at all (grading: its program was down)


class Status(StrEnum):
    PENDING = "pending"  # not concluded yet: the scenario is still running
    PASSED = "passed"  # every check observed what it expected
    FAILED = "failed"  # a check observed something else, or the lab could not be readied
    SKIPPED = "skipped"  # not run: the run was interrupted first


@dataclass(frozen=True)
class Addresses:
    """A host's addresses on one network, as the engine gave them."""

    ipv4: str | None = None
    ipv6: str | None = None
    subnet4: str | None = None
    subnet6: str | None = None

    def shown(self) -> tuple[str, ...]:
        """The addresses a person looks for, IPv4 first."""
        return tuple(a for a in (self.ipv4, self.ipv6) if a)


HostAddresses = dict[str, dict[str, Addresses]]
"""host -> network -> addresses, in the scenario's order."""


def evidence_facts(evidence: dict[str, Any]) -> list[str]:
    """The few facts of a client's result that a person reads first: errno, peer, elapsed time."""
    facts = [str(evidence["errno"])] if evidence.get("errno") else []
    if isinstance(evidence.get("exit_code"), int):
        facts.append(f"exit {evidence['exit_code']}")
    if evidence.get("peer"):
        facts.append(f"peer {evidence['peer']}")
    if isinstance(evidence.get("elapsed_ms"), int | float):
        facts.append(f"{evidence['elapsed_ms']:.1f} ms")
    return facts


@dataclass
class Observation:
    """What one client program reported: an outcome word and its evidence.

    Shown in an assertion message (``assert seen.outcome == "echoed", seen``)
    it says what happened in one line: outcome, errno, peer, time, and why.
    """

    outcome: str
    evidence: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    command: str = ""
    reported: bool = True
    """False if the program printed no result at all (crashed, overran, or was killed)."""
    exit_code: int | None = None
    stdout: str = field(default="", repr=False)  # the end of what it printed, for a command judged by its output
    stderr: str = field(default="", repr=False)
    via: str = "exec"
    """How the command reached its host: ``agent`` (the host's resident agent) or ``exec`` (an exec of its own)."""

    def __str__(self) -> str:
        facts = evidence_facts(self.evidence)
        why = self.detail or self.evidence.get("detail") or ""
        text = self.outcome + (f" ({', '.join(facts)})" if facts else "") + (f": {why}" if why else "")
        text += f" [{self.command}]" if self.command else ""
        if not self.reported:  # a command judged by what it printed: show the end of it
            text += "".join(f"\n{name}: {tail[-300:]!r}" for name, tail in (("stdout", self.stdout),
                                                                          ("stderr", self.stderr)) if tail)
        return text


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
    started_at: float = 0.0  # wall clock (seconds since the epoch) when the attempt's command was started; 0: not run
    ended_at: float = 0.0  # and when it returned: with the client's endpoints, what finds its packets in a capture
    via: str = ""  # how the attempt reached its host (``Observation.via``); "" if it was not made

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


@dataclass(frozen=True)
class ServiceState:
    """A started service, looked at again: does it still run, and what did it last say?"""

    alive: bool
    exit_status: int | None = None  # if it exited
    last_line: str = ""  # the last line of its log

    def __str__(self) -> str:
        said = f"; its last log line: {self.last_line}" if self.last_line else ""
        if self.alive:
            return f"it still runs{said}"
        return (f"it exited with status {self.exit_status}" if self.exit_status is not None else "it is gone") + said


@dataclass
class ScenarioResult:
    name: str
    title: str
    topic: str
    explains: str
    try_next: str = ""
    lab_id: str = ""
    status: Status = Status.PENDING
    error: str = ""  # why the lab could not be readied, or why the scenario was not run
    hosts: HostAddresses = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the hosts said while being prepared
    implementations: dict[str, str] = field(default_factory=dict)  # role -> submission, when grading
    marks: list[Mark] = field(default_factory=list)  # when grading: the checks that count, and what each earned
    services: list[ServiceResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    captures: dict[str, bytes] = field(default_factory=dict, repr=False)  # HOST-INTERFACE -> pcap

    def conclude(self) -> None:
        """Passed only if the lab came up and every check held."""
        held = bool(self.checks) and all(c.passed for c in self.checks)
        self.status = Status.PASSED if held and not self.error else Status.FAILED

    @property
    def held(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def not_ready(self) -> bool:
        """The lab could not be readied (as opposed to: not run at all)."""
        return bool(self.error) and self.status == Status.FAILED


@dataclass
class Mark:
    """Grading: one check that counts in a submission's grade, the points it is worth, and what it earned.

    A check that could not run because the program did not start, or had
    died and could not be restarted, earns nothing, and ``detail`` says why.
    """

    role: str
    scenario: str
    check: str
    points: float
    earned: float
    expected: str = ""
    observed: str = ""
    detail: str = ""  # why it was not held, in a sentence
    program: str = ""  # what the graded program last said: its last log line, or how it exited
    restarted: bool = False  # the program died during this check, and was started again for the next

    @property
    def name(self) -> str:
        return f"{self.scenario} / {self.check}"

    @property
    def held(self) -> bool:
        return self.earned >= self.points

    @property
    def why(self) -> str:
        """What happened instead of what was expected, in one sentence."""
        if self.detail.startswith("expected") or self.observed == NOT_RUN:
            return self.detail
        return f"expected {self.expected}, observed {self.observed}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Grade:
    """How one submission (``role = source``) did: its marks, points held over points possible."""

    role: str
    source: str
    marks: list[Mark] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(m.earned for m in self.marks)

    @property
    def possible(self) -> float:
        return sum(m.points for m in self.marks)

    @property
    def caught(self) -> list[Mark]:
        return [m for m in self.marks if not m.held]

    @property
    def clean(self) -> bool:
        return not self.caught

    @property
    def score_line(self) -> str:
        """``3 of 5 points: 3 of 4 checks held``: the one sentence every view gives a grade."""
        held = len(self.marks) - len(self.caught)
        return f"{self.score:g} of {self.possible:g} points: {held} of {len(self.marks)} checks held"


@dataclass(frozen=True)
class RunSummary:
    """The counts a person reads first, computed once for every view."""

    scenarios: int
    passed: int  # scenarios
    failed: int
    skipped: int
    checks: int
    held: int
    not_ready: int  # labs that could not be readied
    interrupted: bool
    seconds: float

    @property
    def checks_failed(self) -> int:
        return self.checks - self.held

    @property
    def headline(self) -> str:
        """One sentence a person can read from across the room."""
        if self.interrupted:
            return "Interrupted before every scenario ran"
        if self.checks_failed or self.not_ready:
            parts = [f"{self.checks_failed} of {self.checks} checks failed"] if self.checks_failed else []
            if self.not_ready:
                parts.append(f"{self.not_ready} lab{'s' if self.not_ready != 1 else ''} could not be readied")
            return ", ".join(parts)
        return f"All {self.checks} checks of {self.scenarios} scenarios held"


@dataclass
class RunResult:
    scenarios: list[ScenarioResult]
    started: str  # ISO 8601
    seconds: float
    results_dir: str = ""
    interrupted: bool = False
    complete: bool = True  # False while the run goes on: what a killed run leaves (socklab.reports.journal)

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if all(s.status == Status.PASSED for s in self.scenarios) else EXIT_CHECK_FAILED

    @property
    def summary(self) -> RunSummary:
        statuses = [s.status for s in self.scenarios]
        checks = [c for s in self.scenarios for c in s.checks]
        return RunSummary(
            scenarios=len(self.scenarios), passed=statuses.count(Status.PASSED),
            failed=statuses.count(Status.FAILED), skipped=statuses.count(Status.SKIPPED),
            checks=len(checks), held=sum(c.passed for c in checks),
            not_ready=sum(s.not_ready for s in self.scenarios), interrupted=self.interrupted, seconds=self.seconds,
        )

    def grades(self) -> list[Grade]:
        """For each submission graded: its marks, from every scenario, in the run's order."""
        grades: dict[tuple[str, str], Grade] = {}
        for scenario in self.scenarios:
            for mark in scenario.marks:
                source = scenario.implementations.get(mark.role, "")
                grades.setdefault((mark.role, source), Grade(mark.role, source)).marks.append(mark)
        return list(grades.values())

    def to_dict(self, scenarios: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The JSON report: packet captures appear by file name, their bytes go to files of their own.

        ``scenarios``, if given, are the scenarios already as dicts
        (``scenario_dict``): the journal keeps those of finished ones.
        """
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["scenarios"] = [scenario_dict(s) for s in self.scenarios] if scenarios is None else scenarios
        data["grades"] = [{**asdict(g), "score": g.score, "possible": g.possible} for g in self.grades()]
        data["exit_status"] = self.exit_status
        return data


def scenario_dict(result: ScenarioResult) -> dict[str, Any]:
    """One scenario as report.json holds it: captures by file name, each check with whether it held."""
    data = asdict(replace(result, captures={}))
    data["captures"] = [f"captures/{result.name}/{name}.pcap" for name in result.captures]
    for check, check_result in zip(data["checks"], result.checks, strict=True):
        check["passed"] = check_result.passed
    return data


@dataclass
class StudentResult:
    """A class's grading: one student's run (a folder of the class's submissions)."""

    student: str  # the name of the student's folder
    run: RunResult
    grade: Grade  # of the role graded (all its marks, possibly none held)
    results_dir: str = ""  # this student's own results folder


@dataclass
class ClassResult:
    """A whole class graded against the same checks: a row per student, a column per check."""

    role: str
    students: list[StudentResult]
    started: str  # ISO 8601
    seconds: float
    results_dir: str = ""
    interrupted: bool = False

    @property
    def checks(self) -> list[str]:
        """Every check that counted for anyone ("scenario / check"), in the order they were made."""
        names: dict[str, None] = {}
        for student in self.students:
            names.update((mark.name, None) for mark in student.grade.marks)
        return list(names)

    def commonest_failures(self) -> list[tuple[str, int]]:
        """Each check that caught somebody, with how many it caught, the commonest first."""
        caught: dict[str, int] = {}
        for student in self.students:
            for mark in student.grade.caught:
                caught[mark.name] = caught.get(mark.name, 0) + 1
        return sorted(caught.items(), key=lambda item: (-item[1], self.checks.index(item[0])))

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if all(s.grade.clean for s in self.students) else EXIT_CHECK_FAILED


@dataclass
class RunningLab:
    """What ``invoke up`` leaves behind: enough to find the lab again and use it."""

    lab_id: str
    scenario: str
    hosts: HostAddresses
    services: list[ServiceResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
