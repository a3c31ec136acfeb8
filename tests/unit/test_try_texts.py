"""Every command a `try` text of the catalogue suggests is run, word for word, by a test (tests/tries.py)."""

from __future__ import annotations

import importlib
import re

import pytest

from socklab import catalogue
from socklab.model import Scenario
from tests.helpers import TESTS
from tests.tries import TRY_MODULES, normal, suggested

SCENARIOS = catalogue.load()
# A command a student would type on a lab host, written bare: the text must give the whole `invoke exec` line.
BARE_COMMAND = re.compile(r"`((?:ss|ip|nstat|getent|ps|tcpdump|sysctl|iptables|python3) [^`]*)`")


def tried() -> dict[str, set[str]]:
    """Scenario -> the commands of its `try` text that some test names in its ``tries`` marker."""
    found: dict[str, set[str]] = {}
    for path in sorted((TESTS / "integration").glob(TRY_MODULES)):
        module = importlib.import_module(f"tests.integration.{path.stem}")
        for test in vars(module).values():
            for mark in getattr(test, "pytestmark", []):
                if mark.name == "tries":
                    found.setdefault(mark.args[0], set()).update(normal(command) for command in mark.args[1:])
    return found


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_suggested_command_is_run_by_a_test(scenario: Scenario) -> None:
    missing = [command for command in suggested(scenario.try_next) if command not in tried().get(scenario.name, set())]
    assert not missing, (f"scenarios/{scenario.name}.toml suggests commands no test runs: {missing}; "
                         f"name them in a @pytest.mark.tries({scenario.name!r}, ...) test under tests/integration")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_try_text_gives_whole_commands(scenario: Scenario) -> None:
    bare = BARE_COMMAND.findall(scenario.try_next)
    assert not bare, (f"scenarios/{scenario.name}.toml's try text gives {bare} without the host it runs on: "
                      "write the whole line, `invoke exec HOST -- COMMAND`, so that a test can run it as written")


def test_a_suggested_command_is_read_across_line_breaks() -> None:
    text = "Run it (`invoke exec client -- python3 -m nodes.app\nclient --to server:65432`), then `invoke down`."
    assert suggested(text) == ["invoke exec client -- python3 -m nodes.app client --to server:65432", "invoke down"]
