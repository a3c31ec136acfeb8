"""The resident agent runs commands as an exec would, answers each by its id, and goes when its input ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodetest import REPO, Lab, Server, alive, wait_until

from nodes import agent as agent_module

ANSWER_WAIT = 30.0


class Agent:
    """``python -m nodes.agent`` as a subprocess: write request lines, read answer lines."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen([sys.executable, "-m", "nodes.agent"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
        assert self.read() == {"agent": "ready", "pid": self.process.pid}

    def ask(self, request_id: Any, *argv: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"id": request_id, "argv": list(argv)}) + "\n").encode())
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the agent ended: {self.process.stderr.read().decode() if self.process.stderr else ''}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, *argv: str) -> dict[str, Any]:
        self.ask("one", *argv)
        answer = self.read()
        assert answer["id"] == "one"
        return answer

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(ANSWER_WAIT)


@pytest.fixture
def agent() -> Iterator[Agent]:
    started = Agent()
    try:
        yield started
    finally:
        started.process.kill()
        started.process.wait()


@pytest.fixture(scope="module")
def echo(module_lab: Lab) -> Server:
    return module_lab.start("echo", "--bind", "127.0.0.1", "--port", "0")


def test_a_node_program_answers_as_the_same_command_run_on_its_own(agent: Agent, echo: Server) -> None:
    argv = ["python3", "-m", "nodes.probe", "--to", echo.endpoint(), "--send", "Hello, world"]
    answer = agent.run("timeout", "-k", "1", "20", *argv)
    alone = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    seen, expected = json.loads(answer["stdout"]), json.loads(alone.stdout)
    assert answer["exit"] == 0 and answer["stderr"] == ""
    assert (seen["outcome"], seen["reply"], seen["peer"]) == (expected["outcome"], expected["reply"],
                                                              expected["peer"]) == ("echoed", "Hello, world",
                                                                                    echo.endpoint())
    assert set(seen) == set(expected)


def test_a_node_programs_usage_error_and_exit_status_are_its_own(agent: Agent) -> None:
    answer = agent.run("python3", "-m", "nodes.probe", "--proto", "sctp")
    assert answer["exit"] == 2 and "invalid choice: 'sctp'" in answer["stderr"] and answer["stdout"] == ""


def test_other_commands_run_as_they_are_in_the_folder_and_with_the_environment_given(agent: Agent,
                                                                                     tmp_path: Path) -> None:
    answer = agent.run("env", "-C", str(tmp_path), "GREETING=hi there", "sh", "-c", 'pwd; echo "$GREETING"; exit 3')
    assert (answer["exit"], answer["stdout"], answer["stderr"]) == (3, f"{tmp_path}\nhi there\n", "")


def test_a_command_that_is_not_there_exits_127(agent: Agent) -> None:
    answer = agent.run("no-such-command-here", "--flag")
    assert answer["exit"] == agent_module.NOT_FOUND and "no-such-command-here" in answer["stderr"]


def test_a_command_killed_by_a_signal_reports_it_as_a_shell_does(agent: Agent) -> None:
    assert agent.run("sh", "-c", "kill -9 $$")["exit"] == 128 + 9


def test_a_command_over_its_limit_is_stopped_with_status_124(agent: Agent) -> None:
    answer = agent.run("timeout", "-k", "1", "0.3", "sh", "-c", "echo started; sleep 30")
    assert (answer["exit"], answer["stdout"]) == (agent_module.TIMED_OUT, "started\n")


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(agent: Agent) -> None:
    answer = agent.run("timeout", "-k", "0.3", "0.3", "sh", "-c", "trap '' TERM; sleep 30")
    assert answer["exit"] == agent_module.KILLED


def test_the_limit_stops_what_the_command_started_too(agent: Agent, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    agent.run("timeout", "-k", "1", "0.3", "sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait")
    child = int(pid_file.read_text())
    wait_until(lambda: not alive(child), ANSWER_WAIT, what="the sleep its shell started to be stopped")


def test_requests_run_side_by_side_and_each_answer_carries_its_id(agent: Agent) -> None:
    agent.ask("slow", "sh", "-c", "sleep 0.5; echo slow")
    agent.ask(7, "sh", "-c", "echo quick")
    first, second = agent.read(), agent.read()
    assert (first["id"], first["stdout"]) == (7, "quick\n")
    assert (second["id"], second["stdout"]) == ("slow", "slow\n")


def test_a_request_it_cannot_read_is_answered_and_the_agent_goes_on(agent: Agent) -> None:
    assert agent.process.stdin is not None
    agent.process.stdin.write(b'{"id": 3, "argv": []}\nnot json\n')
    agent.process.stdin.flush()
    empty, garbled = agent.read(), agent.read()
    assert (empty["id"], empty["exit"]) == (3, agent_module.CANNOT_RUN) and "empty command" in empty["stderr"]
    assert garbled["id"] is None and garbled["exit"] == agent_module.CANNOT_RUN
    assert agent.run("echo", "still here")["stdout"] == "still here\n"


def test_when_its_input_ends_it_stops_what_it_runs_and_exits(agent: Agent, tmp_path: Path) -> None:
    pid_file = tmp_path / "long.pid"
    agent.ask("long", "sh", "-c", f"echo $$ > {pid_file}; sleep 30")
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), ANSWER_WAIT, what="the long command")
    assert agent.close() == 0
    shell = int(pid_file.read_text())
    wait_until(lambda: not alive(shell), ANSWER_WAIT, what="the long command to be stopped")


def test_parse_takes_the_bounds_and_setting_off_the_front() -> None:
    command = agent_module.parse(["timeout", "-k", "1", "25", "env", "-C", "/lab", "A=1", "B=x=y",
                                  "python3", "-m", "nodes.probe", "--to", "h:1"])
    assert (command.limit, command.kill_after, command.cwd, command.env) == (25.0, 1.0, "/lab", {"A": "1", "B": "x=y"})
    assert command.argv == ["python3", "-m", "nodes.probe", "--to", "h:1"] and command.module == "nodes.probe"
    assert agent_module.parse(["python3", "/lab/server.py"]).module is None
    with pytest.raises(ValueError, match="empty"):
        agent_module.parse(["timeout", "-k", "1", "5"])
