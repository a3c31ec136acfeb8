"""How actions become command lines on hosts: probes, services, link conditions."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from nodes import probe as probe_program
from socklab import commands, impairments, keys
from socklab.model import Argv, Command, LinkConditions, Probe, Service, ShellLine

PROBE_KEYS = keys.declared(Probe)


def sample(declared: keys.Declared) -> tuple[list[str], Any]:
    """A value for a probe key other than its default: its words on the command line, and the parsed value."""
    spec = declared.key
    if declared.kind == "boolean":
        return [], True
    if declared.choices:
        choice = next(c for c in declared.choices if c != declared.default)
        return [choice], choice
    if declared.kind == "integer":
        return ["7"], 7
    if declared.kind == "number":
        return [f"{(spec.low or 0) + 0.25:g}"], (spec.low or 0) + 0.25
    return ["198.18.0.2:7"], "198.18.0.2:7"


def parsed(argv: list[str]) -> dict[str, Any]:
    return vars(probe_program.parser().parse_args(argv))


@pytest.mark.parametrize("declared", [d for d in PROBE_KEYS if d.key.flag], ids=lambda d: d.name)
def test_every_probe_key_is_an_option_of_the_probe_program_with_the_same_default(declared: keys.Declared) -> None:
    """The key's flag sets the program's option of the same name, whose default is the model's."""
    flag = declared.key.flag
    target = [] if flag in ("--to", "--bind") else ["--to", "198.18.0.2:7"]
    other = ["--bind", "0.0.0.0:7"] if flag == "--to" else ["--to", "198.18.0.2:7"]
    assert parsed(other)[declared.field] == declared.default, f"{flag}: the program's default differs"
    words, value = sample(declared)
    assert parsed([*target, flag, *words])[declared.field] == value
    if declared.key.flag_off:
        assert parsed([*target, declared.key.flag_off])[declared.field] is False


def test_every_option_of_the_probe_program_is_a_declared_key() -> None:
    usage = probe_program.parser().format_help()
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", usage)) - {"--help"}
    declared = {d.key.flag for d in PROBE_KEYS} | {d.key.flag_off for d in PROBE_KEYS}
    assert options <= declared, f"options of nodes.probe that no probe key declares: {options - declared}"


def test_a_probe_command_line_reads_back_as_the_probe() -> None:
    probe = Probe(proto="udp", to="198.18.0.2:53", send="hi there", source="198.18.0.3", family="ipv4",
                  connected=True, bufsize=8, timeout=0.5, v6only=False)
    options = parsed(commands.probe_argv(probe, str)[7:])
    assert {d.field: options[d.field] for d in PROBE_KEYS} == vars(probe) | {"v6only": False}
    assert commands.probe_argv(replace(probe, timeout=2.0), str)[3] == "13"  # four tries and a grace period


def test_a_probe_table_maps_one_to_one_onto_the_probe_program() -> None:
    probe = Probe(proto="udp", to="{s.lan.ipv4}:53", send="hi", source="{c.lan.ipv4}", family="ipv4",
                  connected=True, bufsize=8, timeout=0.5, v6only=False)
    argv = commands.probe_argv(probe, lambda text: text.replace("{s.lan.ipv4}", "198.18.0.2")
                               .replace("{c.lan.ipv4}", "198.18.0.3"))
    assert argv[:4] == ["timeout", "-k", "1", "7"]  # four tries of 0.5 s, and a grace period
    assert argv[4:7] == ["python3", "-m", "nodes.probe"]
    options = argv[7:]
    for pair in (["--proto", "udp"], ["--to", "198.18.0.2:53"], ["--send", "hi"], ["--from", "198.18.0.3"],
                 ["--family", "ipv4"], ["--bufsize", "8"], ["--timeout", "0.5"]):
        assert options[options.index(pair[0]):options.index(pair[0]) + 2] == pair
    assert "--connected" in options and "--dual-stack" in options and "--reuse-addr" not in options


def test_keys_left_at_their_default_are_left_off_the_command_line() -> None:
    argv = commands.probe_argv(Probe(to="198.18.0.2:7"), str)
    assert argv[7:] == ["--to", "198.18.0.2:7"]


def test_a_service_starts_in_the_background_and_its_host_waits_until_ready() -> None:
    service = Service("web", "server", Command.parse("echo serve --bind '' --port 80"), ready="tcp://0.0.0.0:80")
    sh, flag, script = commands.service_argv(service, str)
    assert (sh, flag) == ("sh", "-c")
    start, wait = script.splitlines()
    # what a run before it left goes first: a dead run's pid would tell the wait that this one had exited
    assert start.startswith("rm -f /lab/run/web.pid /lab/run/web.exit /lab/run/web.pid.guard; ( ")
    assert "python3 -m nodes.echo serve --bind '' --port 80 >>/lab/log/web.log" in start
    # the pid and the exit status are written whole or not at all: the wait and service_state poll them
    assert start.endswith("&")
    assert "echo $! >/lab/run/web.pid.new && mv -f /lab/run/web.pid.new /lab/run/web.pid" in start
    assert "echo $? >/lab/run/web.exit.new && mv -f /lab/run/web.exit.new /lab/run/web.exit" in start
    assert wait.startswith("exec python3 -m nodes.ready tcp://0.0.0.0:80") and "--pidfile /lab/run/web.pid" in wait


def test_impairments_use_netem_and_fall_back_to_the_firewall_and_tbf() -> None:
    lines = "\n".join(impairments.commands("198.18.0.2", "lan", LinkConditions(loss=0.2, rate="5mbit")))
    netem, fallback = lines.split("\nelse\n")
    assert "netem loss 20%" in netem and "parent 1: handle 2: tbf rate 5mbit" in netem
    assert "iptables -A INPUT" in fallback and "--probability 0.2 -j DROP" in fallback
    assert "ip6tables" in fallback and "root tbf rate 5mbit" in fallback
    assert "with iptables statistic and tbf" in fallback


def test_an_impaired_interface_sends_wire_sized_frames() -> None:
    """Loss counts packets: 64 KiB GSO segments would make a 1 MB transfer a score of packets, often none lost."""
    lines = impairments.commands("198.18.0.2", "lan", LinkConditions(loss=0.05))
    gso = next(i for i, line in enumerate(lines) if "gso_max_size" in line)
    assert lines[gso] == 'ip link set dev "$dev" gso_max_size "$(cat /sys/class/net/$dev/mtu)"'
    assert gso < next(i for i, line in enumerate(lines) if line.startswith("if tc qdisc"))


def test_the_note_names_only_the_tools_used() -> None:
    """Loss alone is the firewall's work; the note must not claim a tbf that was never added."""
    fallback = "\n".join(impairments.commands("198.18.0.2", "lan", LinkConditions(loss=0.05))).split("\nelse\n")[1]
    assert "with iptables statistic (no sch_netem here)" in fallback and "tbf" not in fallback


def test_delay_without_netem_fails_loudly() -> None:
    lines = "\n".join(impairments.commands("198.18.0.2", "lan", LinkConditions(delay_ms=50)))
    fallback = lines.split("\nelse\n")[1]
    assert "no sch_netem" in fallback and f"exit {impairments.NO_DELAY}" in fallback


def test_no_conditions_no_commands() -> None:
    assert impairments.commands("198.18.0.2", "lan", LinkConditions()) == []


def render(text: str) -> str:
    return text.replace("{s.lan.ipv4}", "198.18.0.2")


def test_any_program_runs_as_its_argv_with_references_rendered_per_word() -> None:
    argv = commands.program_argv(Argv(("python3", "server.py", "{s.lan.ipv4}", "a b")), render, 30)
    assert argv == ["timeout", "-k", "1", "30", "python3", "server.py", "198.18.0.2", "a b"]


def test_a_shell_line_runs_under_sh_in_its_folder_with_its_environment() -> None:
    argv = commands.program_argv(ShellLine("echo hi | nc {s.lan.ipv4} 7"), render, 30, cwd="/lab/app",
                                 env={"WHO": "{s.lan.ipv4}"})
    assert argv[4:] == ["env", "-C", "/lab/app", "WHO=198.18.0.2", "sh", "-c", "echo hi | nc 198.18.0.2 7"]


def test_a_service_of_ones_own_keeps_its_log_and_waits_for_a_log_line() -> None:
    service = Service("app", "server", Argv(("python3", "server.py", "{s.lan.ipv4}")), ready="log:Listening",
                      cwd="/lab/app")
    start, wait = commands.service_argv(service, render)[2].splitlines()
    assert start.split("; ", 1)[1].startswith("( env -C /lab/app python3 server.py 198.18.0.2 >>/lab/log/app.log 2>&1")
    assert wait == ("exec python3 -m nodes.ready log:Listening --timeout 15 --pidfile /lab/run/app.pid "
                    "--log /lab/log/app.log")


def test_a_graded_service_is_started_by_root_and_runs_confined_as_the_graded_user_beside_its_guard() -> None:
    service = Service("echo", "server", Argv(("python3", "echo.py", "{s.lan.ipv4}")), ready="tcp://*:7",
                      user="student", cwd="/submission/server")
    assert commands.exec_user(service) == "root" and commands.exec_user(replace(service, user="lab")) == "lab"
    start, wait = commands.service_argv(service, render)[2].splitlines()
    guard, rest = start.split("; ( ", 1)[1].split(" & ", 1)
    waiting, program = rest.split(" done; ", 1)
    assert guard == (f"python3 -m nodes.guard --user student --max {commands.GRADED_TASKS} "
                     f"--max-processes {commands.GRADED_PROCESSES} --ready /lab/run/echo.pid.guard "
                     ">>/lab/log/echo.log 2>&1 </dev/null")
    assert waiting == "for i in $(seq 100); do [ -e /lab/run/echo.pid.guard ] && break; sleep 0.02;"
    assert program.startswith("choom -n 1000 -- nice -n 10 prlimit --fsize=16777216 --nofile=4096 --core=0 -- setpriv "
                              "--reuid=student --regid=student --init-groups --inh-caps=-all --no-new-privs -- env -C "
                              "/submission HOME=/submission USER=student LOGNAME=student env -C /submission/server "
                              "python3 echo.py 198.18.0.2 >>/lab/log/echo.log")
    assert "mv -f /lab/run/echo.pid.new /lab/run/echo.pid; wait $!; echo $? >/lab/run/echo.exit.new" in program
    assert wait.startswith("exec setpriv --reuid=lab --regid=lab --init-groups -- python3 -m nodes.ready 'tcp://*:7'")


def test_a_command_as_the_graded_user_is_roots_exec_with_the_clock_outside_the_confinement() -> None:
    argv = commands.program_argv(Argv(("python3", "client.py")), render, 30)
    assert commands.as_user(argv, "lab") == (argv, "lab")
    confined, user = commands.as_user(argv, "student")
    assert user == "root" and confined[:4] == ["timeout", "-k", "1", "30"]
    assert confined[4:] == commands.confined(["python3", "client.py"])
    assert "--reuid=student" in confined and confined[-2:] == ["python3", "client.py"]
