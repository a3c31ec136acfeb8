"""The command line's own help: every task listed and explained, every option too, completion working."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, invoke

TASKS = ("bench", "build", "capture", "clean", "docs", "down", "exec", "explain", "labs", "list", "run", "shell",
         "test", "up")


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
