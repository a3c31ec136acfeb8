"""The lesson programs (whoami, boundaries, peerclose, timewait, backlog) keep every node convention."""

from __future__ import annotations

import argparse
import importlib
import signal

import pytest
from nodetest import REPO, Lab, call_client

PROGRAMS = ["whoami", "boundaries", "peerclose", "timewait", "backlog"]
NOT_HERE = "198.51.100.7"  # TEST-NET-2: never an address of this host


@pytest.mark.parametrize("program", PROGRAMS)
def test_each_is_a_stdlib_module_that_documents_its_result(program: str) -> None:
    source = (REPO / "nodes" / f"{program}.py").read_text()
    assert 'if __name__ == "__main__":' in source and "socklab" not in source
    docstring = importlib.import_module(f"nodes.{program}").__doc__
    assert f"python -m nodes.{program} serve" in docstring and f"python -m nodes.{program} client" in docstring
    assert "JSON" in docstring and "outcome" in docstring


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_explains_every_option(lab: Lab, program: str) -> None:
    done = lab.run(program, "--help")
    assert done.returncode == 0, done.stderr
    parser = importlib.import_module(f"nodes.{program}").parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"serve", "client"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"{program} {name} {action.option_strings} has no help"
        assert sub.format_help()


@pytest.mark.parametrize("program", PROGRAMS)
def test_bad_arguments_exit_2(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"nodes.{program}").main
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "70000"])
    assert stopped.value.code == 2 and "port 70000 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["client", "--to", "127.0.0.1"])
    assert stopped.value.code == 2 and "HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("program", PROGRAMS)
def test_an_address_not_on_this_host_exits_2(lab: Lab, program: str) -> None:
    done = lab.run(program, "serve", "--bind", NOT_HERE, "--port", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot bind {NOT_HERE}:0: that address is not on this host"


@pytest.mark.parametrize("program", PROGRAMS)
def test_clients_report_refused_as_a_result(program: str, free_port: int) -> None:
    result = call_client(program, "--to", f"127.0.0.1:{free_port}")
    assert result["outcome"] == "refused" and result["errno"] == "ECONNREFUSED"


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_servers_stop_cleanly_on_signals(lab: Lab, program: str, signum: int) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0")
    assert server.stop(signum) == 0, server.log()
    log = server.log()
    assert log.rstrip().endswith("stopped") and "Traceback" not in log, log
