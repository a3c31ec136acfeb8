"""Run scenarios: bring each lab up, start its services, make its checks, record it all.

Scenarios run side by side on a few threads, each in a lab of its own (own
id, own subnets), so they cannot see each other. A signal stops new work at
the next step of every scenario; each tears its lab down on its way out.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from socklab import events, slots, verdicts
from socklab.backend import Backend
from socklab.concurrency import executor, parallel_map
from socklab.errors import Interrupted, LabError
from socklab.grading import marking
from socklab.grading.plan import Plan
from socklab.interrupts import Interruptions
from socklab.lab import Lab
from socklab.model import Check, Probe, Scenario
from socklab.results import CheckResult, RunResult, ScenarioResult, Status

DEFAULT_JOBS = 4
MAX_JOBS = 64  # labs side by side: beyond that, the engine's connection pool and the machine give out
WAKE_SECONDS = 0.2  # how long the main thread sleeps at a time while scenarios run


def make_check(lab: Lab, check: Check) -> list[CheckResult]:
    """Make the check's attempt from each of its hosts, side by side, and judge each."""

    def attempt(host: str) -> CheckResult:
        started = time.time()  # the wall clock, as the hosts' captures stamp their packets (socklab.attribution)
        if isinstance(check.action, Probe):
            seen = lab.probe(host, check.action, user=check.user)
        else:
            seen = lab.run(host, check.action, user=check.user, limit=check.limit, cwd=check.cwd, env=check.env)
        ended = time.time()
        judged = verdicts.judge(check, host, seen, lambda text: lab.render(text, host))
        judged.started_at, judged.ended_at, judged.via = started, ended, seen.via
        return judged

    return parallel_map(attempt, check.hosts)


def make_checks(lab: Lab, scenario: Scenario, guard: Interruptions) -> Iterator[CheckResult]:
    """Every check in order, or side by side when the scenario says its checks are independent."""
    if scenario.parallel_checks:
        guard.checkpoint()
        yield from (made for results in parallel_map(lambda c: make_check(lab, c), scenario.checks)
                    for made in results)
        return
    for check in scenario.checks:
        guard.checkpoint()
        yield from make_check(lab, check)


def run_scenario(
    scenario: Scenario, backend: Backend, *, listener: events.Listener = events.ignore,
    interruptions: Interruptions | None = None, capture: bool = False, plan: Plan | None = None,
    budget: marking.Budget | None = None,
) -> ScenarioResult:
    """Run one scenario in a lab of its own; a lab that cannot be readied fails the scenario.

    With ``capture``, every interface of every host is recorded from before
    the first service starts until the last check is done. With a grading
    ``plan``, a graded program that does not start fails the checks that
    count on it rather than the lab, and the checks are made as
    ``socklab.grading.marking`` says, within the submission's ``budget``
    of time if it has one. The lab waits first for one of the machine's
    slots (``socklab.slots``), shared with every other run.
    """
    guard = interruptions or Interruptions()
    with slots.held(guard):  # the machine's share of labs: a run beyond it waits here, its clock not started
        result = ScenarioResult(scenario.name, scenario.title, scenario.topic, scenario.explains, scenario.try_next)
        clock = _PhaseClock(listener, result)
        try:
            result.implementations = {s.role: s.source for s in plan.submissions} if plan else {}
            with Lab.open(backend, scenario.name, scenario.networks, scenario.hosts, interruptions=guard,
                          listener=clock, files=scenario.files) as lab:
                # the lab's own list of notes: it may note more as checks run (a host's agent that stopped)
                result.lab_id, result.hosts, result.notes = lab.id, lab.addresses(), lab.notes
                if capture:
                    lab.start_capture()
                clock(events.PhaseStarted(scenario.name, "services"))
                try:
                    for service in scenario.services:
                        guard.checkpoint()
                        started = lab.start_service(service)
                        result.services.append(started)
                        if not started.ready and not (plan and service.name in plan.services):
                            raise LabError(started.detail)
                    clock(events.PhaseStarted(scenario.name, "checks"))
                    checks = (marking.make_checks(lab, scenario, plan, result, guard, lambda c: make_check(lab, c),
                                                  budget) if plan else make_checks(lab, scenario, guard))
                    for made in checks:
                        result.checks.append(made)
                        listener(events.CheckFinished(scenario.name, made))
                finally:
                    if capture and not guard.cancelled.is_set():
                        result.captures = lab.stop_capture()
                    if scenario.services and not guard.cancelled.is_set():
                        logs = lab.service_logs(scenario.services)
                        for started in result.services:
                            started.log = logs.get(started.name, started.log)
        except LabError as exc:
            result.error = str(exc)
            if plan:
                marking.mark_unmade(scenario, plan, result)
        finally:
            clock.stop()
        result.conclude()
        listener(events.ScenarioFinished(result))
        return result


def run(
    scenarios: Sequence[Scenario], backend: Backend, *, jobs: int = DEFAULT_JOBS,
    listener: events.Listener = events.ignore, capture: bool = False, interruptions: Interruptions | None = None,
    plans: Sequence[Plan | None] = (), budgets: Sequence[marking.Budget | None] = (),
) -> RunResult:
    """Run every scenario (``jobs`` at a time) and return what was observed.

    SIGINT or SIGTERM ends the run early: scenarios not finished are marked
    skipped, every lab is torn down, and the result says it was interrupted.

    While scenarios run, the main thread only waits, shielded: each worker
    stops itself at its next step once a signal has arrived, and a signal
    raised into the main thread could land inside the executor's own
    bookkeeping (between starting a thread and recording it, say) and leave
    a worker unwaited for. It waits in short slices: a signal taken by some
    thread not of socklab's making (an embedding program's) is handled only
    when the main thread next runs.

    When grading, ``plans`` say how each scenario grades its submissions,
    and ``budgets`` how much time their checks have (both in the order of
    ``scenarios``; scenarios of one submission share its budget).
    """
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    guard = interruptions or Interruptions()
    finished: dict[int, ScenarioResult] = {}  # by place in ``scenarios``: a class's students share names
    with guard.installed():
        try:
            backend.ensure_image(lambda text: listener(events.Note(text)))
        except Interrupted:
            return RunResult([_skipped(s) for s in scenarios], started.isoformat(timespec="seconds"),
                             round(time.monotonic() - clock, 3), interrupted=True)
        listener(events.RunStarted(len(scenarios)))
        workers = max(1, min(jobs, len(scenarios)))
        with guard.shielded(), executor(workers, "scenario") as pool:
            futures: dict[Future[ScenarioResult], int] = {
                pool.submit(run_scenario, s, backend, listener=listener, interruptions=guard, capture=capture,
                            plan=plans[i] if plans else None, budget=budgets[i] if budgets else None): i
                for i, s in enumerate(scenarios)
            }
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
                    for future in done:
                        with contextlib.suppress(Interrupted):
                            finished[futures[future]] = future.result()
            except BaseException:
                guard.cancelled.set()  # the other scenarios stop at their next step
                for future in futures:
                    future.cancel()
                raise
    results = [finished.get(i) or _skipped(s) for i, s in enumerate(scenarios)]
    return RunResult(results, started.isoformat(timespec="seconds"), round(time.monotonic() - clock, 3),
                     interrupted=guard.cancelled.is_set())


def _skipped(scenario: Scenario) -> ScenarioResult:
    return ScenarioResult(scenario.name, scenario.title, scenario.topic, scenario.explains, scenario.try_next,
                          status=Status.SKIPPED,
                          error="not finished: the run was interrupted")


class _PhaseClock:
    """Passes phase events on, and times each phase into the scenario's result."""

    def __init__(self, listener: events.Listener, result: ScenarioResult) -> None:
        self.listener, self.result = listener, result
        self.phase, self.since, self.began = "", time.monotonic(), time.monotonic()

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.PhaseStarted):
            self._close()
            self.phase = event.phase
        self.listener(event)

    def _close(self) -> None:
        now = time.monotonic()
        if self.phase:
            self.result.phase_seconds[self.phase] = round(now - self.since, 3)
        self.since = now

    def stop(self) -> None:
        self._close()
        self.result.seconds = round(time.monotonic() - self.began, 3)
