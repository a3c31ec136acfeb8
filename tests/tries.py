"""The catalogue's `try` texts, run as a student would type them.

A scenario's `try` text suggests commands (in backticks, each a whole
``invoke ...`` line). Every one of them must do what the text says, so every
one is run by a test, word for word:

- the test names the scenario and the commands it runs with the ``tries``
  marker: ``@pytest.mark.tries("backlog", "invoke up backlog", ...)``;
- it runs them through the ``try_text`` fixture (a ``TrySession``), which
  refuses a command that the scenario's text does not suggest, runs it with
  ``python3 -m invoke`` from a folder of the test's own (results land
  there) under the test's own lab owner (so ``invoke exec client`` finds
  this test's lab, and ``invoke down`` takes only it), and at the end fails
  the test if a command it named was never run;
- the test asserts what the text promises of each command's output.

tests/unit/test_try_texts.py holds the catalogue to it: every command any
`try` text suggests is named by a test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socklab import catalogue
from tests.helpers import ROOT

SUGGESTED = re.compile(r"`(invoke\s[^`]+)`")
TRY_MODULES = "test_try_*.py"  # where the tests of `try` texts live, under tests/integration


def normal(command: str) -> str:
    """A command as one line with single spaces: a text wraps its commands across lines."""
    return " ".join(command.split())


def suggested(text: str) -> list[str]:
    """The commands a `try` text suggests, in order."""
    return [normal(found) for found in SUGGESTED.findall(text)]


@dataclass(frozen=True)
class Said:
    """What a command ended with."""

    command: str
    exit: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The JSON a node client printed (its last line of output)."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"`{self.command}` printed nothing; stderr: {self.stderr[-2000:]}"
        return json.loads(lines[-1])

    def __str__(self) -> str:
        return f"`{self.command}` exited {self.exit}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"


@dataclass
class Running:
    """A command left running while others are made (``TrySession.start``)."""

    command: str
    process: subprocess.Popen[str]

    def wait(self, timeout: float = 120) -> Said:
        stdout, stderr = self.process.communicate(timeout=timeout)
        return Said(self.command, self.process.returncode, stdout, stderr)


@dataclass
class TrySession:
    """One scenario's `try` text, its commands run from ``cwd`` as the current lab owner."""

    scenario: str
    named: tuple[str, ...]  # the commands the test's marker names
    cwd: Path
    run_so_far: set[str] = field(default_factory=set)
    left_running: list[Running] = field(default_factory=list)

    def __post_init__(self) -> None:
        (found,) = catalogue.load([self.scenario])
        self.text = found.try_next
        self.named = tuple(normal(command) for command in self.named)
        unsuggested = [command for command in self.named if command not in suggested(self.text)]
        assert not unsuggested, (f"{self.scenario}'s try text does not suggest {unsuggested}; "
                                 f"it suggests {suggested(self.text)}")

    def _argv(self, command: str) -> list[str]:
        line = normal(command)
        assert line in self.named, f"the test's tries marker does not name `{line}`"
        self.run_so_far.add(line)
        words = shlex.split(line)
        return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *words[1:]]

    def __call__(self, command: str, timeout: float = 180) -> Said:
        """Run a suggested command to its end."""
        done = subprocess.run(self._argv(command), cwd=self.cwd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ))
        return Said(normal(command), done.returncode, done.stdout, done.stderr)

    def start(self, command: str) -> Running:
        """Start a suggested command and return at once (to look at the lab while it runs)."""
        process = subprocess.Popen(self._argv(command), cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=dict(os.environ))
        running = Running(normal(command), process)
        self.left_running.append(running)
        return running

    def close(self) -> list[str]:
        """Stop what still runs, take this owner's labs down; return the named commands never run."""
        for running in self.left_running:
            if running.process.poll() is None:
                running.process.kill()
                running.process.communicate()
        subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "down"], cwd=self.cwd,
                       capture_output=True, timeout=120, env=dict(os.environ))
        return [command for command in self.named if command not in self.run_so_far]
