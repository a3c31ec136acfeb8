"""The runner and the lab, on a fake backend: verdicts, failures, teardown on every path, reports."""

from __future__ import annotations

import json
import os
import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from socklab import events, reports, runner
from socklab.backend import ExecResult
from socklab.errors import EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK, EnvironmentProblem, Interrupted
from socklab.interrupts import Interruptions
from socklab.model import Scenario
from socklab.results import Status
from socklab.scenario import load
from tests.helpers import ROOT
from tests.unit.fakes import RAN, FakeBackend, ok, outcome

LOOPBACK_ONLY = ROOT / "scenarios" / "loopback-only.toml"


def scenario() -> Scenario:
    return load(LOOPBACK_ONLY)


def kernel_like(host: str, argv: list[str], user: str) -> ExecResult:
    """Answer as the real lab would for loopback-only: own host echoed, the other refused."""
    if "nodes.probe" in argv:
        target = argv[argv.index("--to") + 1]
        if target.startswith("127.0.0.1"):
            return outcome("echoed", peer=target)
        return outcome("refused", errno="ECONNREFUSED", peer=target)
    return ok()


def test_a_scenario_whose_checks_hold_passes_and_tears_down() -> None:
    backend = FakeBackend(kernel_like)
    run = runner.run([scenario()], backend)
    (result,) = run.scenarios
    assert result.status == Status.PASSED and run.exit_status == EXIT_OK
    assert [(c.expected, c.observed) for c in result.checks] == [("echoed", "echoed"), ("refused", "refused")]
    kinds = [call[0] for call in backend.calls]
    assert kinds[:2] == ["ensure_image", "create_lab"] and kinds[-1] == "destroy_lab"
    assert backend.alive == set()


def test_hosts_are_prepared_as_root_and_programs_run_as_the_lab_user() -> None:
    backend = FakeBackend(kernel_like)
    runner.run([scenario()], backend)
    execs = [call for call in backend.calls if call[0] in RAN]
    prepare = [c for c in execs if c[2][:2] == ["sh", "-c"] and "ip route del default" in c[2][2]]
    assert {c[1] for c in prepare} == {"server", "client"} and {c[3] for c in prepare} == {"root"}
    programs = [c for c in execs if c not in prepare]
    assert programs and {c[3] for c in programs} == {"lab"}


def test_references_are_resolved_before_the_probe_runs() -> None:
    backend = FakeBackend(kernel_like)
    runner.run([scenario()], backend)
    probes = [call[2] for call in backend.calls if call[0] in RAN and "nodes.probe" in call[2]]
    targets = [argv[argv.index("--to") + 1] for argv in probes]
    assert targets == ["127.0.0.1:65432", "198.18.0.2:65432"]
    assert all("{" not in " ".join(argv) for argv in probes)


def test_a_wrong_expectation_fails_the_run_and_says_what_was_seen() -> None:
    backend = FakeBackend(lambda host, argv, user: outcome("echoed") if "nodes.probe" in argv else ok())
    run = runner.run([scenario()], backend)
    (result,) = run.scenarios
    assert result.status == Status.FAILED and run.exit_status == EXIT_CHECK_FAILED
    failed = [c for c in result.checks if not c.passed]
    assert [c.detail for c in failed] == ["expected refused, observed echoed"]
    assert backend.alive == set()


def test_a_program_that_reports_nothing_is_an_error_not_a_guess() -> None:
    def overrun(host: str, argv: list[str], user: str) -> ExecResult:
        return ExecResult(124, "", "") if "nodes.probe" in argv else ok()

    (result,) = runner.run([scenario()], FakeBackend(overrun)).scenarios
    assert {c.observed for c in result.checks} == {"error"}
    assert "time limit" in result.checks[0].detail


def test_a_probe_killed_by_a_host_removal_is_the_environments_fault_even_if_the_engine_lags() -> None:
    """``invoke clean`` elsewhere kills the probe (137) while the engine still lists its host for a moment."""
    def killed_on_client(host: str, argv: list[str], user: str) -> ExecResult:
        return ExecResult(137, "", "") if "nodes.probe" in argv and host == "client" else kernel_like(host, argv, user)

    backend = FakeBackend(killed_on_client)
    backend.removal_seen_after["client"] = 3
    with pytest.raises(EnvironmentProblem, match="'client' .* was removed while the run used it"):
        runner.run([scenario()], backend)
    assert backend.alive == set()


def test_a_program_that_fails_on_a_running_host_is_judged_at_once() -> None:
    def crashes(host: str, argv: list[str], user: str) -> ExecResult:
        return ExecResult(1, "", "Traceback ...") if "nodes.probe" in argv else ok()

    backend = FakeBackend(crashes)
    started = time.monotonic()
    (result,) = runner.run([scenario()], backend).scenarios
    assert {c.observed for c in result.checks} == {"error"}
    assert time.monotonic() - started < 1, "only a command cut short waits for the engine to show a removal"
    assert [call[1] for call in backend.calls if call[0] == "find_host"] == ["server", "client"]


def test_a_service_that_never_gets_ready_fails_the_scenario_and_still_tears_down() -> None:
    def stuck(host: str, argv: list[str], user: str) -> ExecResult:
        if "nodes.ready" in " ".join(argv):
            return ExecResult(1, "", "nothing ready at tcp://127.0.0.1:65432 after 15 s")
        return ok()

    backend = FakeBackend(stuck)
    run = runner.run([scenario()], backend)
    (result,) = run.scenarios
    assert result.status == Status.FAILED and not result.checks
    assert "did not become ready" in result.error and "nothing ready" in result.error
    assert run.exit_status == EXIT_CHECK_FAILED and backend.alive == set()


def test_an_engine_failure_mid_run_propagates_after_teardown() -> None:
    def engine_dies(host: str, argv: list[str], user: str) -> ExecResult:
        if "nodes.probe" in argv:
            raise EnvironmentProblem("The Docker engine stopped answering")
        return ok()

    backend = FakeBackend(engine_dies)
    with pytest.raises(EnvironmentProblem):
        runner.run([scenario()], backend)
    assert backend.alive == set() and backend.calls[-1][0] == "destroy_lab"


def test_progress_events_follow_the_phases() -> None:
    seen: list[events.Event] = []
    runner.run([scenario()], FakeBackend(kernel_like), listener=seen.append)
    phases = [e.phase for e in seen if isinstance(e, events.PhaseStarted)]
    assert phases == ["hosts", "setup", "services", "checks", "teardown"]
    assert sum(isinstance(e, events.CheckFinished) for e in seen) == 2
    assert isinstance(seen[-1], events.ScenarioFinished)


def test_sigint_during_checks_stops_the_run_and_tears_the_lab_down() -> None:
    guard = Interruptions()

    def interrupt_at_first_probe(host: str, argv: list[str], user: str) -> ExecResult:
        if "nodes.probe" in argv:
            os.kill(os.getpid(), signal.SIGINT)
            assert guard.cancelled.wait(10), "the main thread handles the signal while the probe is in flight"
        return kernel_like(host, argv, user)

    backend = FakeBackend(interrupt_at_first_probe)
    run = runner.run([scenario()], backend, interruptions=guard)
    assert run.interrupted and run.exit_status == EXIT_INTERRUPTED
    assert backend.alive == set()
    probes = [c for c in backend.calls if c[0] in RAN and "nodes.probe" in c[2]]
    assert len(probes) == 1, "no check starts after the signal"


def test_scenarios_run_side_by_side_in_labs_of_their_own() -> None:
    backend = FakeBackend(kernel_like)
    run = runner.run([scenario(), load(ROOT / "scenarios" / "tcp-echo.toml")], backend, jobs=2)
    labs = [call[1] for call in backend.calls if call[0] == "create_lab"]
    assert len(set(labs)) == 2 and {r.lab_id for r in run.scenarios} == set(labs)


def test_the_results_folder_holds_the_report_and_junit(tmp_path: Path) -> None:
    run = runner.run([scenario()], FakeBackend(lambda h, a, u: outcome("echoed") if "nodes.probe" in a else ok()))
    folder = reports.write(run, reports.new_folder(tmp_path))
    report = json.loads((folder / "report.json").read_text())
    assert report["exit_status"] == EXIT_CHECK_FAILED
    check = report["scenarios"][0]["checks"][1]
    assert (check["expected"], check["observed"], check["passed"]) == ("refused", "echoed", False)
    assert check["evidence"]["outcome"] == "echoed" and "nodes.probe" in check["action"]
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert (tmp_path / "latest").resolve() == folder.resolve()


def claims_scenario(tmp_path: Path, evidence: str, hosts: str = 'host = "client"') -> Scenario:
    path = tmp_path / "claims.toml"
    path.write_text(LOOPBACK_ONLY.read_text().replace('name = "loopback-only"', 'name = "claims"')
                    .split("[[checks]]")[0] + f"""
[[checks]]
name = "numbered datagrams"
{hosts}
run = "udpecho client --to {{server.lan.ipv4}}:65432 --count 100"
expect = "ok"
evidence = {evidence}
""")
    return load(path)


def udp_report(host: str, argv: list[str], user: str) -> ExecResult:
    return outcome("ok", lost=12, loss_ratio=0.12, seen_as=f"::ffff:198.18.0.{3 if host == 'client' else 4}")


def test_claims_about_the_evidence_must_hold_too(tmp_path: Path) -> None:
    holds = claims_scenario(tmp_path, '{ loss_ratio = [0.05, 0.3], seen_as = "::ffff:{client.lan.ipv4}" }')
    (result,) = runner.run([holds], FakeBackend(udp_report)).scenarios
    assert result.status == Status.PASSED and not result.checks[0].unmet

    fails = claims_scenario(tmp_path, "{ loss_ratio = [0.0, 0.1], duplicated = 0 }")
    (result,) = runner.run([fails], FakeBackend(udp_report)).scenarios
    (check,) = result.checks
    assert result.status == Status.FAILED and check.observed == check.expected == "ok"
    assert check.unmet == ["loss_ratio = 0.12, not within [0, 0.1]", "the result has no 'duplicated'"]
    assert check.detail.startswith("ok as expected, but loss_ratio = 0.12")


def test_a_check_from_several_hosts_is_made_from_each(tmp_path: Path) -> None:
    path = tmp_path / "crowd.toml"
    path.write_text(LOOPBACK_ONLY.read_text().replace('name = "loopback-only"', 'name = "crowd"')
                    .replace('[hosts.client]\nnetworks = ["lan"]', '[hosts.client]\nnetworks = ["lan"]\n\n'
                             '[hosts.other]\nnetworks = ["lan"]')
                    .replace('host = "client"', 'hosts = ["client", "other"]'))
    backend = FakeBackend(kernel_like)
    (result,) = runner.run([load(path)], backend).scenarios
    names = [c.name for c in result.checks][1:]
    assert names == ["another host is refused [client]", "another host is refused [other]"]
    assert {c.host for c in result.checks[1:]} == {"client", "other"} and result.status == Status.PASSED


def test_network_references_and_setup_lines_are_rendered(tmp_path: Path) -> None:
    path = tmp_path / "refs.toml"
    path.write_text(LOOPBACK_ONLY.read_text().replace('name = "loopback-only"', 'name = "refs"')
                    .replace('[hosts.server]\nnetworks = ["lan"]', '[hosts.server]\nnetworks = ["lan"]\n'
                             'setup = ["iptables -A INPUT -s {client.lan.ipv4} -j DROP"]')
                    .replace('to = "{server.lan.ipv4}:65432"', 'to = "{lan.unused_ipv4}:65432"'))
    backend = FakeBackend(kernel_like)
    runner.run([load(path)], backend)
    scripts = [c[2][2] for c in backend.calls if c[0] in RAN and c[1] == "server" and c[2][:2] == ["sh", "-c"]]
    assert any("iptables -A INPUT -s 198.18.0.3 -j DROP" in script for script in scripts)
    targets = [argv[argv.index("--to") + 1] for _, _, argv, _ in (c for c in backend.calls if c[0] in RAN)
               if "nodes.probe" in argv]
    assert "198.18.0.250:65432" in targets


def test_independent_checks_are_made_side_by_side_and_reported_in_order(tmp_path: Path) -> None:
    path = tmp_path / "parallel.toml"
    path.write_text(LOOPBACK_ONLY.read_text().replace('name = "loopback-only"', 'name = "parallel"')
                    .replace('explains = """', 'parallel_checks = true\nexplains = """'))
    at_once: list[int] = []
    running = 0

    def slow(host: str, argv: list[str], user: str) -> ExecResult:
        nonlocal running
        if "nodes.probe" in argv:
            running += 1
            at_once.append(running)
            time.sleep(0.2)
            running -= 1
        return kernel_like(host, argv, user)

    (result,) = runner.run([load(path)], FakeBackend(slow)).scenarios
    assert max(at_once) == 2, "both probes were in flight together"
    assert [c.name for c in result.checks] == ["its own host gets the echo", "another host is refused"]
    assert result.status == Status.PASSED


def test_a_signal_while_a_lab_is_created_waits_until_it_can_be_torn_down_whole() -> None:
    """Outside any socklab run (a script, a pytest fixture): Ctrl-C while hosts are being created."""
    from socklab.lab import Lab

    started: list[str] = []

    class SlowBackend(FakeBackend):
        def create_lab(self, lab_id, scenario, networks, hosts, on_started=None):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the hosts are still being made
            time.sleep(0.3)
            started.append(lab_id)
            return super().create_lab(lab_id, scenario, networks, hosts, on_started)

    backend = SlowBackend(kernel_like)
    loaded = scenario()
    # The held signal goes back to the handler in place (Python's: KeyboardInterrupt). Should that handler not
    # take it at once (seen once, on a machine at load 16), the lab's own next checkpoint stops it: Interrupted.
    with pytest.raises((KeyboardInterrupt, Interrupted)), Lab.open(backend, loaded.name, loaded.networks,
                                                                   loaded.hosts):
        pytest.fail("the body must not run once a signal arrived during creation")
    assert started and backend.alive == set(), "the creation finished, then the lab was torn down"


def test_a_command_of_ones_own_is_judged_by_its_exit_status_and_output(tmp_path: Path) -> None:
    own = load(ROOT / "tests" / "unit" / "own" / "own.toml")

    def answer(host: str, argv: list[str], user: str) -> ExecResult:
        if argv[-1].startswith("echo hi | nc -N"):
            return ExecResult(0, "hello client\n", "")
        return ok()

    run = runner.run([own], FakeBackend(answer))
    greeting, json_result = run.scenarios[0].checks
    assert greeting.passed and greeting.observed == greeting.expected == "exit 0, stdout ~ /hello/"
    assert not json_result.passed and json_result.observed == "error"  # no JSON result: never a guess
    assert "the program reported no result" in json_result.detail


def test_a_command_that_fails_its_claims_says_which(tmp_path: Path) -> None:
    own = load(ROOT / "tests" / "unit" / "own" / "own.toml")

    def answer(host: str, argv: list[str], user: str) -> ExecResult:
        return ExecResult(127, "", "sh: nc: not found") if argv[-1].startswith("echo hi | nc") else ok()

    greeting = runner.run([own], FakeBackend(answer)).scenarios[0].checks[0]
    assert not greeting.passed and greeting.observed == "exit 127"
    assert greeting.unmet == ["exit status 127, not 0", "stdout has no match for /hello/"]
    assert "the command is not on the host" in greeting.detail
