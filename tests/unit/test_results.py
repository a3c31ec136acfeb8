"""The results layer: records every view reads, and what they say on their own."""

from __future__ import annotations

from socklab.results import CheckResult, Mark, Observation, RunResult, ScenarioResult, Status


def check(name: str, passed: bool) -> CheckResult:
    return CheckResult(name, "client", "probe", "echoed", "echoed" if passed else "refused")


def test_an_observation_in_an_assertion_message_says_what_happened() -> None:
    seen = Observation("refused", {"errno": "ECONNREFUSED", "peer": "198.18.0.2:7", "elapsed_ms": 0.4321,
                                   "detail": "Connection refused"}, command="python3 -m nodes.probe --to x:7")
    assert str(seen) == ("refused (ECONNREFUSED, peer 198.18.0.2:7, 0.4 ms): Connection refused "
                         "[python3 -m nodes.probe --to x:7]")
    silent = Observation("error", {"exit_code": 1}, "the program reported no result", reported=False)
    assert str(silent) == "error (exit 1): the program reported no result"


def test_a_new_scenario_result_is_pending_until_concluded() -> None:
    assert ScenarioResult("tcp-echo", "t", "Binding and interfaces", "e").status == Status.PENDING
    held = ScenarioResult("tcp-echo", "t", "Binding and interfaces", "e", checks=[check("a", True)])
    held.conclude()
    assert held.status == Status.PASSED
    broken = ScenarioResult("tcp-echo", "t", "Binding and interfaces", "e", checks=[check("a", True)],
                            error="service did not start")
    broken.conclude()
    assert broken.status == Status.FAILED and broken.not_ready


def test_the_summary_counts_once_for_every_view() -> None:
    held = ScenarioResult("a", "t", "x", "e", checks=[check("1", True), check("2", False)], status=Status.FAILED)
    broken = ScenarioResult("b", "t", "x", "e", error="no lab", status=Status.FAILED)
    skipped = ScenarioResult("c", "t", "x", "e", error="interrupted", status=Status.SKIPPED)
    summary = RunResult([held, broken, skipped], "2026-12-01T00:00:00+00:00", 3.0).summary
    assert (summary.passed, summary.failed, summary.skipped) == (0, 2, 1)
    assert (summary.checks, summary.held, summary.checks_failed, summary.not_ready) == (2, 1, 1, 1)
    assert summary.headline == "1 of 2 checks failed, 1 lab could not be readied"


def test_a_grade_is_points_held_over_points_possible_from_every_scenario() -> None:
    echo = ScenarioResult("tcp-echo", "t", "x", "e", implementations={"echo": "s.py"}, status=Status.FAILED,
                          marks=[Mark("echo", "tcp-echo", "echoed", 1.0, 1.0), Mark("echo", "tcp-echo", "big", 2.0, 0.0,
                                                                                   "echoed", "reset")])
    down = ScenarioResult("lan", "t", "x", "e", implementations={"echo": "s.py"}, error="not ready\nlog",
                          status=Status.FAILED, marks=[Mark("echo", "lan", "another host", 1.0, 0.0, observed="not-run",
                                                            detail="not run: the lab could not be readied")])
    (grade,) = RunResult([echo, down], "now", 1.0).grades()
    assert (grade.role, grade.source, grade.score, grade.possible) == ("echo", "s.py", 1.0, 4.0)
    assert [m.name for m in grade.caught] == ["tcp-echo / big", "lan / another host"]
    assert grade.caught[0].why == "expected echoed, observed reset"
    assert grade.caught[1].why == "not run: the lab could not be readied"
    (shown,) = RunResult([echo, down], "now", 1.0).to_dict()["grades"]
    assert (shown["score"], shown["possible"], len(shown["marks"])) == (1.0, 4.0, 3)
