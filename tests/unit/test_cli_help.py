"""The command line's own help: every task listed and explained, every option too, completion working."""

from __future__ import annotations

import json
import re

import pytest

from socklab import schema
from socklab.errors import EXIT_BAD_INPUT
from tests.helpers import ROOT, invoke

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # reaching for an engine would fail differently
BAD = sorted((ROOT / "tests" / "unit" / "bad_scenarios").glob("*.toml"))

TASKS = ("bench", "build", "capture", "clean", "cp", "docs", "down", "exec", "explain", "grade", "labs", "list", "run",
         "schema", "setup", "shell", "test", "up", "validate")


def test_every_task_is_listed_with_a_help_line() -> None:
    listed = invoke("--list")
    assert listed.returncode == 0
    for name in TASKS:
        assert re.search(rf"^\s+{name}\s+\S", listed.stdout, re.MULTILINE), f"{name} has no help line"


@pytest.mark.parametrize("name", TASKS)
def test_every_parameter_has_help(name: str) -> None:
    shown = invoke("--help", name)
    assert shown.returncode == 0
    options = shown.stdout.split("Options:")[1] if "Options:" in shown.stdout else ""
    for line in options.strip().splitlines():
        if line.strip().startswith("-"):
            assert re.search(r"\S\s{2,}\S", line.strip()), f"{name}: option without help: {line.strip()}"


def test_list_shows_the_catalogue_by_topic() -> None:
    listed = invoke("list")
    assert listed.returncode == 0
    assert "Binding and interfaces" in listed.stdout
    for path in (ROOT / "scenarios").glob("*.toml"):
        assert path.stem in listed.stdout


def test_shell_completion_offers_tasks_and_options() -> None:
    tasks = invoke("--complete", "--", "ca")
    assert {"capture", "clean"} <= set(tasks.stdout.split())
    options = invoke("--complete", "--", "run", "-")
    assert {"--capture", "--impl", "--jobs", "--json", "--quiet", "--results"} <= set(options.stdout.split())
    script = invoke("--print-completion-script", "bash")
    assert script.returncode == 0 and "complete" in script.stdout


def test_validate_takes_files_as_a_shell_glob_gives_them_and_needs_no_engine() -> None:
    catalogue = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").glob("*.toml"))
    result = invoke("validate", *catalogue, env=NO_ENGINE)
    assert result.returncode == 0, result.stderr
    assert f"{len(catalogue)} scenario files valid" in result.stdout


def test_validate_refuses_every_bad_file_at_once_naming_each_key() -> None:
    result = invoke("validate", *map(str, BAD), env=NO_ENGINE)
    assert result.returncode == EXIT_BAD_INPUT
    assert "Docker" not in result.stderr
    for path in BAD:
        key, says = (line.split(": ", 1)[1] if ": " in line else "" for line in path.read_text().splitlines()[:2])
        assert any(line.startswith(str(path)) and (not key or f": {key}: " in line) and says in line
                   for line in result.stderr.splitlines()), f"{path.name}: {key} / {says}"


def test_schema_prints_the_committed_schema() -> None:
    result = invoke("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(schema.SCHEMA_FILE.read_text())


@pytest.mark.parametrize(("args", "says"), [
    (("run",), "NAME: no scenario named"),
    (("validate",), "FILE: no file named"),
    (("run", "tcp-ecko"), "did you mean 'tcp-echo'"),
    (("run", "tcp-echo", "--impl", "echo"), "--impl echo: is not ROLE=FILE or ROLE=FOLDER/:COMMAND"),
    (("run", "tcp-echo", "--impl", "nobody=tasks.py"), "no selected scenario has a check of a program named"),
    (("run", "tcp-echo", "--rubric", "grading.toml"), "--rubric: grades nothing without a submission"),
    (("grade", "no-such-folder", "--role", "echo"), "SUBMISSIONS no-such-folder: is not a folder"),
    (("grade", "tests/integration/submissions", "--role", "app"), "holds 2 Python files: which one runs, and how?"),
    (("bench", "--only", "nope"), "--only: no benchmark named nope"),
])
def test_command_line_mistakes_exit_2_with_usage_advice(args: tuple[str, ...], says: str) -> None:
    result = invoke(*args, env=NO_ENGINE)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr.startswith("usage: ") and says in result.stderr
    assert f"invoke --help {args[0]}" in result.stderr and "scenario files" not in result.stderr


def test_names_may_be_given_as_separate_words_or_with_commas() -> None:
    """Both spellings reach the same selection: a bad one among them is named the same way."""
    for args in (("run", "tcp-echo", "nope"), ("run", "tcp-echo,nope")):
        result = invoke(*args, env=NO_ENGINE)
        assert result.returncode == EXIT_BAD_INPUT and "nope: is not a scenario of the catalogue" in result.stderr


def test_an_ipv6_address_is_printed_as_written() -> None:
    """rich reads ":100:" as an emoji code; socklab's consoles must not, or fd50:c1ab:0:100::2 becomes a picture."""
    import tasks

    for console in (tasks.out, tasks.err):
        with console.capture() as captured:
            console.print("fd50:c1ab:0:100::2")
        assert "fd50:c1ab:0:100::2" in captured.get()
