"""Grading's plumbing, with no engine: submissions, what a grade counts, rubrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from socklab import catalogue, commands, grading
from socklab.constants import GRADED_USER
from socklab.errors import EXIT_BAD_INPUT, UsageError
from socklab.grading import plan, rubric, submission
from socklab.model import Argv, Command, CommandEnd, ShellLine

SUBMISSIONS = Path(__file__).parents[1] / "integration" / "submissions"
STUDENT = Path(__file__).parents[1] / "integration" / "students" / "echo_reads_once.py"
TUTORIAL_APP = f"app={SUBMISSIONS / 'app_tutorial'}/:python3 app-server.py {{host}} {{port}}"


def test_a_single_file_runs_with_the_arguments_socklab_would_pass() -> None:
    scenarios, plans = grading.prepare(catalogue.load(["loopback-only"]), [f"echo={STUDENT}"])
    (service,) = scenarios[0].services
    assert service.command == Argv(("python3", "/submission/echo/echo_reads_once.py", "serve", "--bind", "127.0.0.1",
                                    "--port", "65432"))
    assert (service.user, service.cwd, service.ready) == (GRADED_USER, "/submission/echo", "tcp://*:65432")
    assert plans["loopback-only"].services == {service.name: "echo"}
    (copy,) = [c for c in scenarios[0].files if c.user == GRADED_USER]
    assert (copy.target, copy.source) == ("/submission/echo/echo_reads_once.py", STUDENT)


def test_a_folder_runs_its_command_template_with_the_values_filled_in_and_quoted() -> None:
    scenarios, _ = grading.prepare(catalogue.load(["app-protocol", "all-interfaces"]),
                                   [TUTORIAL_APP, f"echo={SUBMISSIONS / 'app_tutorial'}/:python3 x.py {{host}} "
                                                  "{port} {address}"])
    app = next(s for s in scenarios if s.name == "app-protocol").services[0]
    assert app.command == Argv(("python3", "app-server.py", "0.0.0.0", "65432")), "no shell between"
    echo = next(s for s in scenarios if s.name == "all-interfaces").services[0]
    assert echo.command == Argv(("python3", "x.py", "", "65432", "{server.lan.ipv4}")), "an empty bind stays one"
    assert "env -C /submission/app python3 app-server.py 0.0.0.0 65432" in commands.service_argv(app, str)[2]


def test_a_template_that_needs_a_shell_gets_one_with_every_value_quoted() -> None:
    scenarios, _ = grading.prepare(catalogue.load(["all-interfaces"]),
                                   [f"echo={SUBMISSIONS / 'app_tutorial'}/:cd . && python3 x.py {{host}} {{port}}"])
    assert scenarios[0].services[0].command == ShellLine("cd . && python3 x.py '' 65432")


def test_only_the_checks_that_talk_to_the_graded_program_count() -> None:
    _, plans = grading.prepare(catalogue.load(["lan-interface", "addr-in-use"]), [f"echo={STUDENT}"])
    counted = [c.check for c in plans["lan-interface"].counted]
    assert counted == ["another host gets the echo", "its own host, at the LAN address, gets the echo",
                       "its own host, at 127.0.0.1, is refused"]
    # a bind that the kernel refuses says nothing about the graded program
    assert all("bind" not in name for name in counted)


def test_a_client_submission_takes_the_checks_it_can_make_and_is_judged_by_its_exit_and_output() -> None:
    spec = f"app-client={SUBMISSIONS / 'app_client_tutorial'}/:python3 app-client.py {{host}} {{port}} " \
           "{action=search} {value}"
    scenarios, plans = grading.prepare(catalogue.load(["app-protocol"]), [spec])
    counted = {c.check: c for c in plans["app-protocol"].counted}
    assert "search morpheus" in counted and counted["search morpheus"].server == "server-app"
    assert not any("binary" in name or "200 requests" in name for name in counted), "more than the client can say"
    check = next(c for c in scenarios[0].checks if c.name == "search morpheus")
    assert check.run == Argv(("python3", "app-client.py", "{server.lan.ipv4}", "65432", "search", "morpheus"))
    assert isinstance(check.expect, CommandEnd) and check.expect.exit == 0
    assert check.expect.stdout is not None and "white\\ rabbit" in check.expect.stdout
    assert (check.user, check.cwd) == (GRADED_USER, "/submission/app-client")


def test_a_scenario_may_say_which_programs_a_check_grades_and_for_how_much(tmp_path: Path) -> None:
    path = tmp_path / "tcp-echo.toml"
    path.write_text((Path(catalogue.CATALOGUE_DIR) / "tcp-echo.toml").read_text()
                    .replace('name = "the client host', 'points = 3\nname = "the client host')
                    .replace('name = "a 1 MiB message', 'grades = ["nobody"]\nname = "a 1 MiB message'))
    _, plans = grading.prepare(catalogue.load([str(path)]), [f"echo={STUDENT}"])
    counted = {c.check: c.points for c in plans["tcp-echo"].counted}
    assert counted["the client host gets its message echoed"] == 3
    assert "a 1 MiB message comes back whole, however the stream splits it" not in counted


@pytest.mark.parametrize(("spec", "says"), [
    ("echo", "is not ROLE=FILE or ROLE=FOLDER/:COMMAND"), ("=x.py", "is not ROLE=FILE"),
    ("echo=/no/such/file.py", "/no/such/file.py: no such file or folder"),
    (f"app={SUBMISSIONS / 'app_tutorial'}", "is a folder: which program in it runs, and how?"),
])
def test_bad_submissions_are_input_errors(spec: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        submission.parse(spec)
    assert refused.value.exit_status == EXIT_BAD_INPUT


def test_a_placeholder_the_program_does_not_give_is_refused_with_those_it_does() -> None:
    with pytest.raises(UsageError, match=r"\{level\} is not a placeholder here") as refused:
        grading.prepare(catalogue.load(["app-protocol"]), [f"app={SUBMISSIONS / 'app_tutorial'}/:python3 a {{level}}"])
    assert "{host}" in str(refused.value) and "{port}" in str(refused.value)


def test_a_role_no_scenario_plays_is_refused_with_the_roles_there_are() -> None:
    with pytest.raises(UsageError, match="no selected scenario has a check of a program named 'ehco'") as refused:
        grading.prepare(catalogue.load(["tcp-echo"]), [f"ehco={STUDENT}"])
    assert "use one of: echo, server-echo" in str(refused.value)


def test_readiness_is_loosened_to_any_address() -> None:
    assert plan.loosened("tcp://[::1]:80") == "tcp://*:80"
    assert plan.loosened("udp://198.18.0.2:53") == "udp://*:53"
    assert plan.loosened("unix:///tmp/s") == "unix:///tmp/s"


def test_a_rubric_gives_commands_scenarios_points_and_time(tmp_path: Path) -> None:
    path = tmp_path / "grading.toml"
    path.write_text('scenarios = ["app-protocol"]\n[roles.app]\nrun = "python3 app-server.py {host} {port}"\n'
                    '[points]\n"app-protocol / search morpheus" = 2.5\n[limits]\nseconds = 60\n')
    chosen = rubric.load(path)
    scenarios, plans = grading.prepare(catalogue.load(), [f"app={SUBMISSIONS / 'app_tutorial'}"], chosen)
    assert [s.name for s in scenarios] == ["app-protocol"] and chosen.seconds == 60
    assert plans["app-protocol"].counts("search morpheus").points == 2.5  # type: ignore[union-attr]
    assert scenarios[0].services[0].command == Argv(("python3", "app-server.py", "0.0.0.0", "65432"))


@pytest.mark.parametrize(("text", "says"), [
    ("scenario = []", "scenario: is not a rubric key"),
    ("[roles.app]\ncommand = 'x'", "roles.app: must hold one key, run"),
    ("[points]\n'x / y' = -1", "is not a number of points"),
    ("[limits]\nseconds = 0", "limits: holds one key, seconds, more than 0"),
    ("[points]\n'app-protocol / nope' = 2", "names no check of the scenarios graded"),
    ("scenarios = [", "is not TOML"),
])
def test_a_bad_rubric_names_the_file_and_the_key(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "grading.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=says) as refused:
        grading.prepare(catalogue.load(["app-protocol"]), [TUTORIAL_APP], rubric.load(path))
    assert str(path) in str(refused.value) and refused.value.exit_status == EXIT_BAD_INPUT


def test_a_command_is_kept_for_its_own_sake() -> None:
    assert submission.placeholders(Command.parse("app client --to [::1]:7 --value x"), "") == {
        "to": "[::1]:7", "value": "x", "host": "::1", "port": "7", "address": "[::1]:7"}


def test_a_service_without_readiness_is_found_by_its_port_option() -> None:
    (echo,) = catalogue.load(["tcp-echo"])
    quiet = dataclasses.replace(echo, services=tuple(dataclasses.replace(s, ready=None) for s in echo.services))
    _, plans = grading.prepare([quiet], [f"echo={STUDENT}"])
    assert "the client host gets its message echoed" in [c.check for c in plans["tcp-echo"].counted]
