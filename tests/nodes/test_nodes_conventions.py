"""What every node program promises before it runs: a documented, standard-library module and a clear command line.

The programs are the modules of nodes/ with a ``__main__`` guard, found as
the orchestrator finds them: a new program is held to every convention
here without being added to any list. What a program's command line takes
(``serve --bind ADDR --port N``, ``client --to HOST:PORT``, ``--proto``)
is read from its own parser. The conventions of servers and clients at
work are in ``test_nodes_lesson_conventions``.
"""

from __future__ import annotations

import ast
import importlib
import socket
import sys

import pytest
from nodetest import REPO, Lab, inet_clients, inet_servers, programs, subcommands, variants

PROGRAMS = programs()
SERVERS = inet_servers()
CLIENTS = inet_clients()
NOT_HERE = "198.51.100.7"  # TEST-NET-2: never an address of this host
REQUIRED = {"app": ("--value", "x")}  # what a client needs besides --to


def test_the_programs_are_found() -> None:
    assert {"echo", "app", "probe", "ready", "unixecho"} <= set(PROGRAMS)
    assert {"cli", "listen", "endpoints", "tally", "conversations"}.isdisjoint(PROGRAMS)  # helpers, not programs
    assert set(SERVERS) == {p for p in PROGRAMS if subcommands(p)} - {"unixecho"}


@pytest.mark.parametrize("module", sorted(path.stem for path in (REPO / "nodes").glob("*.py")))
def test_every_module_needs_only_the_standard_library(module: str) -> None:
    """nodes/ is copied into bare containers: it imports the standard library and itself, nothing else."""
    tree = ast.parse((REPO / "nodes" / f"{module}.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    foreign = {name for name in imported
               if name.split(".")[0] not in sys.stdlib_module_names | {"nodes", "__future__"}}
    assert not foreign


@pytest.mark.parametrize("program", PROGRAMS)
def test_each_program_is_a_runnable_module_that_says_what_it_prints(program: str) -> None:
    docstring = importlib.import_module(f"nodes.{program}").__doc__ or ""
    assert f"python -m nodes.{program}" in docstring
    if program in ("ready", "guard"):  # the lab's readiness check and its guard: the exit status is the answer
        assert "Exit status" in docstring
        return
    assert "JSON" in docstring
    others = [f"nodes.{other}" for other in PROGRAMS if other != program]
    assert "outcome" in docstring or any(other in docstring for other in others)  # its keys, or whose they are
    if subcommands(program):
        assert f"python -m nodes.{program} serve" in docstring and f"python -m nodes.{program} client" in docstring


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_runs_and_explains_every_option(lab: Lab, program: str) -> None:
    done = lab.run(program, "--help")
    assert done.returncode == 0, done.stderr
    parser = importlib.import_module(f"nodes.{program}").parser()
    commands = subcommands(program)
    if commands:
        assert set(commands) == {"serve", "client"}
        assert "serve" in done.stdout and "client" in done.stdout
    for name, sub in commands.items() or [("", parser)]:
        for action in sub._actions:
            assert action.help, f"{program} {name} {action.option_strings} has no help"
        assert sub.format_help()  # renders (no bad % in a help string)


@pytest.mark.parametrize("program", SERVERS)
def test_bad_port_exits_2_with_a_clear_message(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"nodes.{program}").main
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "70000"])
    assert stopped.value.code == 2
    assert "port 70000 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize("program", CLIENTS)
def test_client_needs_a_port(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"nodes.{program}").main
    with pytest.raises(SystemExit) as stopped:
        main(["client", "--to", "127.0.0.1", *REQUIRED.get(program, ())])
    assert stopped.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("program, extra", [(p, extra) for p in SERVERS for extra in variants(p)])
def test_address_not_on_this_host_exits_2(lab: Lab, program: str, extra: tuple[str, ...]) -> None:
    done = lab.run(program, "serve", "--bind", NOT_HERE, "--port", "0", *extra)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot bind {NOT_HERE}:0: that address is not on this host"


def test_unknown_host_name_exits_2(lab: Lab) -> None:
    done = lab.run("echo", "serve", "--bind", "no-such-host.invalid", "--port", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot bind no-such-host.invalid:0:")


def test_port_in_use_exits_2(lab: Lab) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = lab.run("multiconn", "serve", "--bind", "127.0.0.1", "--port", str(port))
    assert done.returncode == 2
    assert "already uses that address and port" in done.stderr


@pytest.mark.parametrize("program", [p for p in CLIENTS if "--send" in subcommands(p)["client"].format_help()])
def test_an_empty_send_is_a_usage_error(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"nodes.{program}").main
    with pytest.raises(SystemExit) as stopped:
        main(["client", "--to", "127.0.0.1:9", "--send", ""])
    assert stopped.value.code == 2
    assert "--send: needs at least one character" in capsys.readouterr().err
