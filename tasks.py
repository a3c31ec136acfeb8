"""socklab's command line: `invoke --list` shows the tasks, `invoke --help TASK` their options.

Tasks only parse arguments and call socklab's Python API (socklab.api);
everything they do is callable from Python too. Exit status: 0 every check
held, 1 a check failed, 2 bad input or environment, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Context, Exit, Task, task
from invoke.parser import ParserContext
from rich.console import Console
from rich.markup import escape

from socklab import api, benchmarks, catalogue, console, events, grading, reports, schema
from socklab import setup as machine
from socklab.errors import ScenarioError, SocklabError, UsageError
from socklab.reports import cohort as class_reports
from socklab.runner import DEFAULT_JOBS

# Piped into a file or a CI log, tables get room to breathe instead of 80 columns.
# No emoji codes: an IPv6 address such as fd50:c1ab:0:100::2 holds ":100:", which rich would draw as an emoji.
out = Console(width=None if sys.stdout.isatty() else 120, emoji=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120, emoji=False)
ALL = "--all"  # invoke has no optional positionals; an unregistered --all arrives as the NAME
BACKEND_HELP = ("where labs run: docker (one engine, the default) or swarm (across a Docker Swarm's nodes); "
                "default: $SOCKLAB_BACKEND, else docker")

def _friendly(body: Callable[..., Any]) -> Callable[..., Any]:
    """Turn socklab's errors into a message and their exit status, not a traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except ScenarioError as exc:
            count = len(exc.problems)
            err.print(f"[red]error:[/] {count} problem{'s' * (count > 1)} in scenario files; nothing was created:")
            err.print(escape(str(exc)), highlight=False, soft_wrap=True)
            raise Exit(code=exc.exit_status) from None
        except UsageError as exc:
            task_name = body.__name__.rstrip("_")
            err.print(f"[red]usage:[/] {escape(str(exc))}\n(`invoke --help {task_name}` shows every option)",
                      highlight=False, soft_wrap=True)
            raise Exit(code=exc.exit_status) from None
        except SocklabError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise Exit(code=exc.exit_status) from None

    return wrapper


def _names(text: str) -> list[str]:
    return [name for name in re.split(r"[,\s]+", text) if name]


@task(help={"quiet": "print only the image's name", "backend": BACKEND_HELP})
@_friendly
def build(c: Context, quiet: bool = False, backend: str = "") -> None:
    """Build the node image if its recipe (docker/) changed; a no-op otherwise."""
    listener = events.ignore if quiet else console.LiveProgress(err, [])
    out.print(api.build(api.default_backend(backend), listener=listener))


@task(name="setup", help={"no-build": "only install what is missing; leave building the node image to the first run"})
@_friendly
def setup_(c: Context, no_build: bool = False) -> None:
    """Install what this machine lacks (a bootstrap tool, with apt-get), then build the node image."""
    built = machine.prepare(lambda text: out.print(escape(text), highlight=False, soft_wrap=True),
                            build=not no_build, listener=console.LiveProgress(err, []))
    out.print(f"ready: {built}" if built else "ready (--no-build: the first run builds the node image if it must)")


SCENARIOS_HELP = "a folder of scenario files to use as the catalogue (default: $SOCKLAB_SCENARIOS, else socklab's)"
LAB_HELP = "which lab (default: the one of your own that has the host; see `labs`)"


@task(name="list", help={"scenarios": SCENARIOS_HELP})
@_friendly
def list_(c: Context, scenarios: str = "") -> None:
    """Show the scenario catalogue, grouped by topic."""
    console.print_catalogue(out, catalogue.by_topic(catalogue.load((), catalogue.folder(scenarios))))


@task(help={"scenarios": SCENARIOS_HELP + "; its README.md gets the catalogue table between the markers"})
@_friendly
def docs(c: Context, scenarios: str = "") -> None:
    """Regenerate what the docs derive from the code: README's catalogue and key list, the scenario schema."""
    directory = catalogue.folder(scenarios)
    readme = Path("README.md") if directory == catalogue.CATALOGUE_DIR else directory / "README.md"
    changed = api.refresh_docs(readme, directory)
    out.print("updated " + ", ".join(changed) if changed else f"{readme} is already current")


@task(help={"files": "scenario files to check, as many as you like (a shell glob will do)"})
@_friendly
def validate(c: Context, files: str) -> None:
    """Check scenario files without an engine: exit 0, or 2 with every problem (file:line, key, fix)."""
    loaded = api.validate([line for line in files.splitlines() if line])
    out.print(f"{len(loaded)} scenario file{'s' * (len(loaded) != 1)} valid")


@task(name="schema", help={"output": "write the schema to this file instead of printing it"})
@_friendly
def schema_(c: Context, output: str = "") -> None:
    """Print the scenario files' JSON Schema (what editors use to complete and check keys)."""
    if output:
        Path(output).write_text(schema.schema_text())
        out.print(f"wrote {output}")
    else:
        print(schema.schema_text(), end="")


@task(help={"name": "a scenario of the catalogue (see `invoke list`), or a scenario file", "scenarios": SCENARIOS_HELP})
@_friendly
def explain(c: Context, name: str, scenarios: str = "") -> None:
    """Print a scenario's teaching text, its hosts and networks, and each check with its expected outcome."""
    console.print_explanation(out, catalogue.load([name], catalogue.folder(scenarios))[0])


@task(
    help={
        "names": "scenarios to run, by name or path, separated by commas (tcp-echo,loopback-only); "
        "--all for the whole catalogue",
        "jobs": f"how many scenarios run side by side, each in its own lab (default: {DEFAULT_JOBS})",
        "results": "folder under which each run writes its results folder (default: results)",
        "quiet": "no progress and no table: print only the results folder",
        "capture": "record a pcap of every interface of every host into the results folder",
        "json": "print report.json on stdout instead of the table",
        "impl": "grade a submission: ROLE=FILE runs python3 FILE wherever a scenario runs the program (or service) "
        "ROLE, with socklab's arguments; ROLE=FOLDER/:COMMAND runs COMMAND in a copy of FOLDER, with "
        "placeholders {host} {port} {address} (as in 'app=sub/:python3 app-server.py {host} {port}'); "
        "ROLE may be PROGRAM-client (app-client) for a client; repeatable",
        "rubric": "a grading.toml: commands by role, scenarios, points by check, the time limit",
        "scenarios": SCENARIOS_HELP,
        "backend": BACKEND_HELP,
    },
    iterable=["impl"],
)
@_friendly
def run(c: Context, names: str, jobs: int = DEFAULT_JOBS, results: str = str(reports.DEFAULT_ROOT),
        quiet: bool = False, json_: bool = False, capture: bool = False, impl: list[str] | None = None,
        rubric: str = "", scenarios: str = "", backend: str = "") -> None:
    """Run scenarios across containers (NAME[,NAME...], files, or --all); exit 1 if a check failed."""
    everything = names == ALL
    selected = api.select([] if everything else _names(names), everything=everything,
                          directory=catalogue.folder(scenarios))
    plans: list[grading.Plan | None] = []
    budgets: list[grading.Budget | None] = []
    if impl or rubric:
        if not impl:
            raise UsageError("--rubric", "grades nothing without a submission", "add --impl ROLE=FILE")
        chosen = grading.rubric.load(Path(rubric)) if rubric else grading.Rubric()
        selected, by_name = grading.prepare(selected, impl, chosen)
        plans, budgets = [by_name[s.name] for s in selected], [grading.Budget(chosen.seconds)] * len(selected)
    silent = quiet or json_
    progress = console.LiveProgress(err, selected)
    with contextlib.nullcontext() if silent else progress:
        result = api.run(selected, backend=api.default_backend(backend), jobs=jobs, results_root=Path(results),
                         capture=capture, listener=events.ignore if silent else progress, plans=plans,
                         budgets=budgets)
    if json_:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    elif quiet:
        print(result.results_dir)
    else:
        console.print_run(out, result)
        console.print_grades(out, result)
    if result.exit_status:
        raise Exit(code=result.exit_status)


@task(
    help={
        "submissions": "the class: a folder holding a folder per student",
        "role": "what the submissions are: a program of the catalogue (echo, app), a service's name, or "
        "PROGRAM-client (app-client) for clients",
        "rubric": "a grading.toml: the command that starts a submission, scenarios, points per check, time per "
        "student (without one, each student's folder must hold one Python file)",
        "jobs": f"how many labs run side by side, any student's (default: {DEFAULT_JOBS})",
        "results": "folder under which the class's results folder is made (default: results)",
        "scenarios": SCENARIOS_HELP,
        "backend": BACKEND_HELP,
    },
)
@_friendly
def grade(c: Context, submissions: str, role: str, rubric: str = "", jobs: int = DEFAULT_JOBS,
          results: str = str(reports.DEFAULT_ROOT), scenarios: str = "", backend: str = "") -> None:
    """Grade a class: every student's folder against the same checks; a report each, and the class's CSV and page."""
    progress = console.ClassProgress(err)
    with progress:
        result = api.grade_class(Path(submissions), role, rubric=Path(rubric) if rubric else None,
                                 directory=catalogue.folder(scenarios), jobs=jobs, results_root=Path(results),
                                 backend=api.default_backend(backend), listener=progress)
    console.print_class(out, result, class_reports.commonest_lines(result))
    if result.exit_status:
        raise Exit(code=result.exit_status)


@task(help={"name": "the scenario whose lab to bring up (a name of the catalogue, or a file)",
            "scenarios": SCENARIOS_HELP, "backend": BACKEND_HELP})
@_friendly
def up(c: Context, name: str, scenarios: str = "", backend: str = "") -> None:
    """Bring a scenario's lab up with its services running, and leave it up (see `down`)."""
    scenario = catalogue.load([name], catalogue.folder(scenarios))[0]
    with console.LiveProgress(err, [scenario]) as progress:
        running = api.up(scenario, backend=api.default_backend(backend), listener=progress)
    console.print_lab(out, running)


@task(help={"lab": "the lab to tear down, whoever made it (default: every lab of your own, never another "
                   "owner's; you are $SOCKLAB_OWNER, or user@machine)", "backend": BACKEND_HELP})
@_friendly
def down(c: Context, lab: str = "", backend: str = "") -> None:
    """Tear down labs left running by `up`: the one named, or all of your own (see `labs`)."""
    removed = api.down(lab or None, api.default_backend(backend))
    out.print(f"removed {removed} containers and networks")


@task(help={"backend": BACKEND_HELP})
@_friendly
def labs(c: Context, backend: str = "") -> None:
    """List the labs on the engine (or every node of a swarm), with the owner of each (who made it)."""
    console.print_labs(out, api.labs(api.default_backend(backend)))


@task(help={"host": "a host of the running lab", "lab": LAB_HELP,
            "root": "be root on the host (for tcpdump, iptables, tc) instead of the lab user", "backend": BACKEND_HELP})
@_friendly
def shell(c: Context, host: str, lab: str = "", root: bool = False, backend: str = "") -> None:
    """Open an interactive shell on a host of a running lab."""
    raise Exit(code=api.shell(host, lab_id=lab or None, user="root" if root else "lab",
                              backend=api.default_backend(backend)))


@task(name="exec", help={"host": "a host of the running lab", "lab": LAB_HELP,
                         "root": "run as root instead of the lab user", "backend": BACKEND_HELP})
@_friendly
def exec_(c: Context, host: str, lab: str = "", root: bool = False, backend: str = "") -> None:
    """Run the command after `--` on a host of a running lab of yours: invoke exec client -- ip address

    Several words after `--` are the program and its arguments, exactly as
    typed (quotes kept); a single word is a command line for the host's shell
    (`invoke exec client -- 'ip address | head'`). Standard input, unless it
    is a terminal, is passed on (`cat f | invoke exec h -- sh -c 'cat > f'`).
    The exit status is the command's.
    """
    words = _after_dashes(c)
    if not words:
        raise UsageError("--", "no command given", "put it after --, as in: invoke exec client -- ip address")
    argv = ["sh", "-c", words[0]] if len(words) == 1 else words
    stdin = None if sys.stdin.isatty() else sys.stdin.buffer
    result = api.execute(host, argv, lab_id=lab or None, user="root" if root else "lab", stdin=stdin,
                         backend=api.default_backend(backend))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise Exit(code=result.exit_code)


def _after_dashes(c: Context) -> list[str]:
    """The words after ``--`` as the shell passed them: invoke itself joins them into one string, losing quotes."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    return shlex.split(c.remainder or "")


@task(help={"source": "what to copy: a local path, or HOST:PATH on a host of the running lab",
            "target": "where to: HOST:PATH, or a local path (an existing folder: into it)",
            "lab": LAB_HELP, "backend": BACKEND_HELP})
@_friendly
def cp(c: Context, source: str, target: str, lab: str = "", backend: str = "") -> None:
    """Copy a file or folder to or from a host of a running lab: invoke cp app server:/lab/app"""
    out.print(escape(api.copy(source, target, lab_id=lab or None, backend=api.default_backend(backend))),
              highlight=False)


@task(name="capture", help={"host": "a host of the running lab", "lab": LAB_HELP,
                            "interface": "interface to record: any (default), lo, eth0 ...",
                            "output": "pcap file to write (default: results/capture-HOST-TIME.pcap)",
                            "backend": BACKEND_HELP})
@_friendly
def capture_(c: Context, host: str, lab: str = "", interface: str = "any", output: str = "",
             backend: str = "") -> None:
    """Record packets on a host of a running lab into a pcap file, until Ctrl-C."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(output or reports.DEFAULT_ROOT / f"capture-{host}-{stamp}.pcap")
    err.print(f"capturing on {host} ({interface}) into {path}; Ctrl-C to stop")
    written = api.capture(host, path, lab_id=lab or None, interface=interface, backend=api.default_backend(backend))
    out.print(f"wrote {written} bytes to {path}: open it in Wireshark, or `tcpdump -nr {path}`")


@task(help={"everyone": "remove every lab on the engine, whoever made it (asks first on a terminal)",
            "yes": "with --everyone: do not ask (what a script or CI must say)", "backend": BACKEND_HELP})
@_friendly
def clean(c: Context, everyone: bool = False, yes: bool = False, backend: str = "") -> None:
    """Remove everything of your own labs (you are $SOCKLAB_OWNER, or user@machine); --everyone: anybody's."""
    chosen = api.default_backend(backend)
    if everyone and not yes and not _confirmed_everyone(chosen):
        out.print("nothing removed")
        return
    out.print(f"removed {api.clean(everyone=everyone, backend=chosen)} containers, networks and volumes")


def _confirmed_everyone(backend: api.Backend) -> bool:
    """Ask, on a terminal, before taking other people's labs; elsewhere, refuse: only --yes says it there."""
    if not sys.stdin.isatty():
        raise UsageError("--everyone", "removes other people's labs too, and there is nobody here to ask",
                         "add --yes to mean it, or leave --everyone out to remove only your own labs")
    labs = api.labs(backend)
    owners = sorted({lab.owner or "nobody" for lab in labs})
    answer = input(f"Remove all {len(labs)} labs on this engine, of {len(owners)} owners "
                   f"({', '.join(owners)})? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


@task(help={"only": "benchmarks to run, separated by commas (default: all): " + ", ".join(benchmarks.NAMES),
            "repeats": "how many times each is measured (default: 5)",
            "quick": "once each, under two minutes, for development: " + ", ".join(benchmarks.QUICK)})
@_friendly
def bench(c: Context, only: str = "", repeats: int = 5, quick: bool = False) -> None:
    """Measure wall times and rates (median and spread of repeats, each beside its target); writes bench.json."""
    figures, folder = benchmarks.run(_names(only), repeats, progress=lambda text: err.print(f"[dim]{text}[/]"),
                                     quick=quick)
    console.print_figures(out, figures)
    out.print(f"Results: {folder / 'bench.json'}")


@task(help={"unit": "only the tests that need no Docker", "pytest-args": "more arguments for pytest, quoted"})
def test(c: Context, unit: bool = False, pytest_args: str = "") -> None:
    """Run the test suite with pytest (the full matrix, with lint, is `tox`)."""
    import pytest

    args = ["-m", "not docker"] if unit else []
    raise Exit(code=int(pytest.main([*args, *pytest_args.split()])))


# -- tasks that take a list of words ---------------------------------------------


def _gather_words(unparsed: list[str], gathering: dict[str, Task], core_flags: Any) -> list[str]:
    """Join the words after ``run`` or ``validate`` into their one positional argument.

    invoke has no variadic positional arguments (pyinvoke/invoke#760): in
    ``invoke validate a.toml b.toml`` it would take b.toml for a task, and
    ``invoke run`` with no name fails in invoke's parser (exit 1) before the
    task could say what is missing. So, before invoke parses the tasks, the
    words after such a task that are neither its options nor their values
    become one argument, one word per line ("" if there are none, for the
    task to refuse with exit 2 and advice).
    """
    if not unparsed or unparsed[0] not in gathering:
        return unparsed
    flags = ParserContext(args=gathering[unparsed[0]].get_arguments()).flags
    words: list[str] = []
    options: list[str] = []
    tokens = iter(unparsed[1:])
    for token in tokens:
        if token in flags or token in core_flags or token.split("=", 1)[0] in flags:
            options.append(token)
            if token in flags and flags[token].takes_value:
                options.append(next(tokens, ""))
        else:
            words.append(token)
    return [unparsed[0], "\n".join(words), *options]


def _not_a_number(unparsed: list[str], tasks: dict[str, Task]) -> UsageError | None:
    """A whole-number option (``--jobs abc``) given something else: invoke's parser would end in a traceback."""
    if not unparsed or unparsed[0] not in tasks:
        return None
    flags = ParserContext(args=tasks[unparsed[0]].get_arguments()).flags
    for index, token in enumerate(unparsed[1:], 1):
        name, equals, value = token.partition("=")
        if name not in flags or flags[name].kind is not int:
            continue
        value = value if equals else (unparsed[index + 1] if index + 1 < len(unparsed) else "")
        try:
            int(value)
        except ValueError:
            return UsageError(name, f"{value!r} is not a whole number", f"give one, as in `{name} 4`")
    return None


def _adjust_invocation() -> None:
    """Applies ``_gather_words`` to this invocation, when invoke's own program is the one loading this file."""
    from invoke.main import program

    core = getattr(program, "core", None)
    if core is not None and core.unparsed:
        problem = _not_a_number(core.unparsed, {"run": run, "grade": grade, "bench": bench})
        if problem:
            err.print(f"[red]usage:[/] {escape(str(problem))}\n(`invoke --help {core.unparsed[0]}` shows every "
                      "option)", highlight=False, soft_wrap=True)
            raise SystemExit(problem.exit_status)
        core.unparsed[:] = _gather_words(core.unparsed, {"run": run, "validate": validate},
                                         program.initial_context.flags)


_adjust_invocation()
