"""Grading mode's plumbing: specs, role matching, readiness, what gets copied."""

from __future__ import annotations

from pathlib import Path

import pytest

from socklab import catalogue, commands, grading
from socklab.errors import EXIT_BAD_INPUT, UsageError

STUDENT = Path(__file__).parents[1] / "integration" / "students" / "echo_reads_once.py"


def test_a_spec_reads_the_file_at_once() -> None:
    impl = grading.parse(f"echo={STUDENT}")
    assert (impl.role, impl.source, impl.filename) == ("echo", str(STUDENT), "impl/echo.py")
    assert impl.code == STUDENT.read_bytes()


@pytest.mark.parametrize(("spec", "says"), [("echo", "is not ROLE=PATH"), ("=x.py", "is not ROLE=PATH"),
                                            ("echo=/no/such/file.py", "cannot read /no/such/file.py")])
def test_bad_specs_are_input_errors(spec: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        grading.parse(spec)
    assert refused.value.exit_status == EXIT_BAD_INPUT


def test_the_role_is_played_in_every_service_that_runs_it() -> None:
    scenarios = grading.select(catalogue.load(), [grading.parse(f"echo={STUDENT}")])
    assert scenarios and all(any(s.impl for s in scenario.services) for scenario in scenarios)
    (service,) = next(s for s in scenarios if s.name == "loopback-only").services
    assert service.ready == "tcp://*:65432", "readiness no longer says where to bind"
    argv = commands.service_argv(service, str)[2]
    assert "python3 /opt/socklab/impl/echo.py serve --bind 127.0.0.1 --port 65432" in argv
    assert grading.files(next(s for s in scenarios if s.name == "loopback-only")) == {
        "impl/echo.py": STUDENT.read_bytes()}


def test_a_role_no_scenario_plays_is_refused_with_the_roles_there_are() -> None:
    with pytest.raises(UsageError, match="no selected scenario runs a program or service named 'ehco'") as refused:
        grading.select(catalogue.load(["tcp-echo"]), [grading.parse(f"ehco={STUDENT}")])
    assert "use one of: echo, server-echo" in str(refused.value)


def test_readiness_is_loosened_to_any_address() -> None:
    assert grading.loosened("tcp://[::1]:80") == "tcp://*:80"
    assert grading.loosened("udp://198.18.0.2:53") == "udp://*:53"
    assert grading.loosened("unix:///tmp/s") == "unix:///tmp/s"
