"""Making a graded scenario's checks: one at a time, in order, watching the graded programs.

Under grading, every check runs alone, in the scenario's order, so a
submission gets the same marks on every run: no check can take the blame
for another that ran beside it. After each check that counts, the graded
program is looked at: if it died during that check, the check is blamed
(its mark says so, with the exit status and the last log line), and the
program is started again for the next one, so one crash costs one check.
A check that cannot run because its program did not start, could not be
started again, or ran out of the submission's time, earns nothing, and
its mark says why.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from socklab.grading.plan import Plan
from socklab.interrupts import Interruptions
from socklab.lab import Lab
from socklab.model import Check, Scenario, Service
from socklab.results import NOT_RUN, CheckResult, Mark, ScenarioResult, ServiceResult


class Budget:
    """The time one submission's checks may take, all its scenarios together (a rubric's ``limits.seconds``).

    Spent by the checks that count, as they run (a program that hangs
    spends the time each check waits for it), so a submission that hangs
    or crawls is stopped whatever else the machine is doing, and a slow
    machine never spends one student's time on another's checks.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds, self.spent = seconds, 0.0
        self._lock = threading.Lock()

    def spend(self, seconds: float) -> None:
        with self._lock:
            self.spent += seconds

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.seconds


def make_checks(lab: Lab, scenario: Scenario, plan: Plan, result: ScenarioResult, guard: Interruptions,
                make: Callable[[Check], list[CheckResult]], budget: Budget | None = None) -> Iterator[CheckResult]:
    """Every check in order; the marks of those that count go into ``result.marks``."""
    services = {s.name: s for s in scenario.services}
    down = {started.name: _why_down("did not start", started)
            for started in result.services if not started.ready and started.name in plan.services}
    for check in scenario.checks:
        guard.checkpoint()
        counted = plan.counts(check.name)
        if counted is None:
            yield from make(check)
            continue
        graded = [services[name] for name, role in plan.services.items() if role in counted.roles]
        blocked = next((down[s.name] for s in graded if s.name in down), "")
        if budget is not None and budget.exhausted:
            blocked = f"the submission's time ({budget.seconds:g} s for all its checks) ran out"
        server = services.get(counted.server)
        before = lab.service_logs([server])[server.name] if server and not blocked else ""
        began = time.monotonic()
        made = _not_run(check, blocked) if blocked else make(check)
        if budget is not None:
            budget.spend(time.monotonic() - began)
        yield from made
        failed = next((m for m in made if not m.passed), None)
        mark = Mark("", scenario.name, check.name, counted.points, 0.0 if failed else counted.points,
                    expected=made[0].expected, observed=(failed or made[0]).observed,
                    detail=failed.detail if failed else "")
        if server and not blocked and not failed:
            seen = lab.service_logs([server])[server.name][len(before):].strip()
            if not seen:
                mark.earned, mark.detail = 0.0, f"the server ({server.name}) saw nothing of it: no line in its log"
        if not blocked:
            _watch(lab, graded, mark, down)
        for role in counted.roles:
            result.marks.append(dataclasses.replace(mark, role=role))


def _watch(lab: Lab, graded: list[Service], mark: Mark, down: dict[str, str]) -> None:
    """Look at each graded program after a check: blame the check for a death, and start the program again."""
    for service in graded:
        state = lab.service_state(service)
        if state.alive:
            if not mark.held:
                mark.program = state.last_line and f"its last log line: {state.last_line}"
            continue
        mark.earned, mark.program, mark.restarted = 0.0, f"it died during this check: {state}", True
        mark.detail = mark.detail or "the program died during this check"
        started = lab.restart_service(service)
        if not started.ready:
            down[service.name] = _why_down("could not be started again", started)


def _why_down(what: str, started: ServiceResult) -> str:
    """Why the checks of a program that is not running cannot be made: what the lab saw, what it last said."""
    line = _last_line(started.log)
    return f"the program {what} ({_first_line(started.detail)})" + (f"; its last log line: {line}" if line else "")


def _not_run(check: Check, why: str) -> list[CheckResult]:
    return [CheckResult(check.name, host, "(not run)", str(check.expect), NOT_RUN, detail=f"not run: {why}")
            for host in check.hosts]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _last_line(text: str) -> str:
    """The program's own last line (``Lab.service_logs`` ends a log with how the program exited)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("[exited with status")]
    return lines[-1].strip() if lines else ""


def mark_unmade(scenario: Scenario, plan: Plan, result: ScenarioResult) -> None:
    """A lab that could not be readied: every check that counts and was not made earns nothing, and says why."""
    made = {mark.check for mark in result.marks}
    why = f"not run: the lab could not be readied ({_first_line(result.error)})"
    expected = {check.name: str(check.expect) for check in scenario.checks}
    for counted in plan.counted:
        if counted.check not in made:
            result.marks.extend(Mark(role, scenario.name, counted.check, counted.points, 0.0, expected[counted.check],
                                     NOT_RUN, why) for role in counted.roles)
