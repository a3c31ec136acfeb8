"""What people see in the terminal: live progress while labs work, tables after.

A view of events and results only (the core never prints). On a terminal
the progress redraws in place; piped into a file or a CI log, it prints one
line per finished scenario instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from socklab import agents, events, families
from socklab.backend import LabSummary
from socklab.benchmarks import Figure
from socklab.model import Probe, Scenario
from socklab.results import Addresses, ClassResult, RunningLab, RunResult, ScenarioResult, Status, evidence_facts

VERDICT = {Status.PENDING: "[dim]running[/]", Status.PASSED: "[green]passed[/]", Status.FAILED: "[red]failed[/]",
           Status.SKIPPED: "[yellow]skipped[/]"}


class LiveProgress:
    """A listener showing each scenario's phase and its checks as they are made."""

    def __init__(self, console: Console, scenarios: Sequence[Scenario]) -> None:
        self.console = console
        self.phase = {s.name: "waiting" for s in scenarios}
        self.tally = {s.name: [0, len(s.checks)] for s in scenarios}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __call__(self, event: events.Event) -> None:
        with self.lock:
            if isinstance(event, events.Note):
                self.console.print(f"[dim]{escape(event.text)}[/]")
            elif isinstance(event, events.PhaseStarted):
                self.phase[event.scenario] = event.phase
            elif isinstance(event, events.CheckFinished):
                self.tally[event.scenario][0] += 1
            elif isinstance(event, events.ScenarioFinished):
                result = event.result
                self.phase[result.name] = VERDICT[result.status]
                if self.live is None:
                    self.console.print(_finished_line(result))

    def __enter__(self) -> LiveProgress:
        if self.console.is_terminal:
            self.live = Live(console=self.console, get_renderable=self._render, refresh_per_second=8, transient=True)
            self.live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.live is not None:
            self.live.stop()

    def _render(self) -> Table:
        with self.lock:
            table = Table.grid(padding=(0, 2))
            for name, phase in self.phase.items():
                done, total = self.tally[name]
                table.add_row(Text(name, style="bold"), Text.from_markup(phase), f"{done}/{total} checks")
            return table


def _finished_line(result: ScenarioResult) -> str:
    return (f"{VERDICT[result.status]} {escape(result.name)}: {result.held}/{len(result.checks)} checks held "
            f"in {result.seconds:.1f} s" + (f" - {escape(result.error.splitlines()[0])}" if result.error else ""))


def print_run(console: Console, run: RunResult) -> None:
    table = Table(title="Checks", title_justify="left", show_lines=False)
    for column in ("scenario", "check", "from", "expected", "observed", "evidence"):
        table.add_column(column)
    for scenario in run.scenarios:
        if scenario.error:
            table.add_row(scenario.name, "[red]lab not ready[/]", "", "", "", escape(scenario.error.splitlines()[0]))
        for check in scenario.checks:
            style = "green" if check.passed else "bold red"
            table.add_row(scenario.name, escape(check.name), check.host, check.expected,
                          f"[{style}]{check.observed}[/]", escape(", ".join(evidence_facts(check.evidence))))
    console.print(table)
    for scenario in run.scenarios:
        marked = {mark.check for mark in scenario.marks}  # grading: print_grades says why, once
        for check in scenario.checks:
            if not check.passed and check.name not in marked:
                console.print(f"[red]✘ {escape(scenario.name)} / {escape(check.name)}[/]: {escape(check.detail)}\n"
                              f"  on {check.host}: [dim]{escape(check.action)}[/]", soft_wrap=True)
        if scenario.not_ready:
            console.print(f"[red]✘ {escape(scenario.name)}[/]: {escape(scenario.error)}", soft_wrap=True)
        for note in scenario.notes:
            if agents.FELL_BACK in note:  # how the lab made its checks changed midway: say so where it is seen
                console.print(f"[yellow]note[/] {escape(scenario.name)}: {escape(note)}", soft_wrap=True)
    summary = run.summary
    if summary.interrupted:
        headline = "[yellow]interrupted[/]: every lab was torn down"
    else:
        headline = f"[{'red' if run.exit_status else 'green'}]{escape(summary.headline)}[/]"
    console.print(f"{headline} in {summary.seconds:.1f} s. Results: {run.results_dir}", soft_wrap=True)


def print_grades(console: Console, run: RunResult) -> None:
    """Grading: per submission, points held over points possible, and for each check that caught it, why."""
    for grade in run.grades():
        colour = "green" if grade.clean else "red"
        console.print(f"[bold]{escape(grade.role)}[/] = {escape(grade.source)}: "
                      f"[{colour}]{escape(grade.score_line)}[/]", soft_wrap=True)
        for mark in grade.caught:
            console.print(f"  [red]✗[/] {escape(mark.name)}", soft_wrap=True)
            console.print(f"      {escape(mark.why)}", soft_wrap=True, highlight=False)
            if mark.program:
                console.print(f"      the program: {escape(mark.program)}"
                              + (" (started again for the next check)" if mark.restarted else ""),
                              soft_wrap=True, highlight=False)


def print_class(console: Console, result: ClassResult, commonest: Sequence[str]) -> None:
    """A class graded: a line per student (its score and what caught it), the commonest failures, the folder."""
    table = Table(title=f"Graded as {result.role}", title_justify="left")
    for column in ("student", "points", "checks held", "caught by"):
        table.add_column(column)
    for student in result.students:
        grade = student.grade
        colour = "green" if grade.clean else "red"
        table.add_row(escape(student.student), f"[{colour}]{points(grade.score)} / {points(grade.possible)}[/]",
                      f"{len(grade.marks) - len(grade.caught)} of {len(grade.marks)}",
                      escape("; ".join(mark.name for mark in grade.caught)))
    console.print(table)
    for line in commonest:
        console.print(f"  {escape(line)}", highlight=False)
    said = "interrupted: every lab was torn down" if result.interrupted else f"{len(result.students)} students graded"
    console.print(f"{said} in {result.seconds:.1f} s. Results: {result.results_dir}", soft_wrap=True)


class ClassProgress:
    """A listener for a class's grading: one bar over every lab, with the time it has taken and the time left."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TextColumn("labs"),
                            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
                            transient=True, disable=not console.is_terminal)
        self.task = self.bar.add_task("labs", total=None)  # until the run says how many
        self.done = 0
        self.lock = threading.Lock()

    def __call__(self, event: events.Event) -> None:
        with self.lock:
            if isinstance(event, events.Note):
                self.console.print(f"[dim]{escape(event.text)}[/]")
            elif isinstance(event, events.RunStarted):
                self.bar.update(self.task, total=event.scenarios)
            elif isinstance(event, events.ScenarioFinished):
                self.bar.advance(self.task)
                self.done += 1
                if not self.console.is_terminal and self.done % 10 == 0:
                    self.console.print(f"[dim]{self.done} labs graded[/]")

    def __enter__(self) -> ClassProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def points(value: float) -> str:
    """2.0 -> "2", 1.5 -> "1.5"."""
    return f"{value:g}"


def print_catalogue(console: Console, grouped: dict[str, list[Scenario]]) -> None:
    for topic, scenarios in grouped.items():
        table = Table(title=topic, title_justify="left", show_header=False, box=None, padding=(0, 2))
        for scenario in scenarios:
            table.add_row(f"[bold]{scenario.name}[/]", escape(scenario.title))
        console.print(table)
        console.print()


def print_explanation(console: Console, scenario: Scenario) -> None:
    console.print(f"[bold]{escape(scenario.name)}[/] - {escape(scenario.title)}  [dim]({scenario.topic})[/]\n")
    console.print(escape(scenario.explains) + "\n")
    topology = Table(title="Hosts", title_justify="left", box=None, padding=(0, 2))
    topology.add_column("host")
    topology.add_column("networks")
    for host in scenario.hosts.values():
        topology.add_row(host.name, ", ".join(host.networks) or "[dim]none (loopback only)[/]")
    console.print(topology)
    if scenario.networks:
        networks = Table(title="Networks", title_justify="left", box=None, padding=(0, 2))
        for column in ("network", "addresses", "why IPv6"):
            networks.add_column(column)
        needed = families.needs(scenario)
        for net in scenario.networks.values():
            why = needed.get(net.name, "ipv6 = true") if net.ipv6 else ""
            networks.add_row(net.name, "IPv4 and IPv6" if net.ipv6 else "IPv4 only", escape(why))
        console.print(networks)
    for service in scenario.services:
        console.print(f"service on [bold]{service.host}[/]: {escape(str(service.command))}")
    checks = Table(title="Checks", title_justify="left", box=None, padding=(0, 2))
    for column in ("check", "from", "attempt", "expect"):
        checks.add_column(column)
    for check in scenario.checks:
        action = check.action
        attempt = (f"{action.proto} {'bind ' + action.bind if action.bind else 'to ' + (action.to or '')}"
                   if isinstance(action, Probe) else str(action))
        claims = "".join(f", {claim}" for claim in check.evidence)
        checks.add_row(escape(check.name), ", ".join(check.hosts), escape(attempt), f"[bold]{check.expect}[/]{claims}")
    console.print(checks)
    if scenario.try_next:
        console.print("\n[bold]Try next[/]\n" + escape(scenario.try_next))


def print_lab(console: Console, lab: RunningLab) -> None:
    title = f"Lab {lab.lab_id} ({lab.scenario}) is up"
    table = Table(title=title, title_justify="left", min_width=len(title))  # an IPv4-only lab's table is narrow
    for column in ("host", "network", "IPv4", "IPv6"):
        table.add_column(column)
    for host, networks in lab.hosts.items():
        for network, address in networks.items() or {"-": Addresses()}.items():
            table.add_row(host, network, address.ipv4 or "", address.ipv6 or "")
    console.print(table)
    for service in lab.services:
        console.print(f"service {service.name} on {service.host}: {escape(service.command)} [green]ready[/]")
    for note in lab.notes:
        console.print(f"[dim]{escape(note)}[/]")
    first = next(iter(lab.hosts))
    console.print(f"Next: `invoke shell {first}`, `invoke exec {first} -- ip address`, "
                  f"and `invoke down --lab {lab.lab_id}` when done.")


def print_labs(console: Console, labs: Sequence[LabSummary]) -> None:
    if not labs:
        console.print("No lab is running.")
        return
    table = Table(title="Running labs", title_justify="left")
    for column in ("lab", "scenario", "owner", "hosts", "networks"):
        table.add_column(column)
    for lab in labs:
        hosts = ([f"{host} ({node})" for host, node in zip(lab.hosts, lab.nodes, strict=True)] if lab.nodes
                 else lab.hosts)  # on a swarm, where each host runs
        table.add_row(lab.lab_id, lab.scenario, lab.owner or "?", ", ".join(hosts), ", ".join(lab.networks))
    console.print(table)



def print_figures(console: Console, figures: Sequence[Figure]) -> None:
    """Each figure's median and spread, beside the target it is held against and whether it met it."""
    table = Table(title="Benchmarks", title_justify="left")
    for column in ("measure", "median", "min", "max", "runs", "target", "met"):
        table.add_column(column, justify="left" if column in ("measure", "met") else "right")
    for figure in figures:
        low, high = figure.spread
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[figure.meets_target]
        table.add_row(figure.name, f"{figure.median:.3f} {figure.unit}", f"{low:.3f}", f"{high:.3f}",
                      str(len(figure.samples)), figure.target, met)
    console.print(table)
