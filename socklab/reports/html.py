"""report.html: one self-contained page that a person reads after a run.

The page is a view of the same ``RunResult`` as report.json: the run's
verdict first, then each scenario with its topology drawn, what it teaches,
and every check with what was expected, what was observed and the client's
own evidence, and, when the run was captured, the packets its attempt put
on the wire as a ladder between the hosts (``socklab.ladder``). It carries
its CSS and SVG inline and needs no script, so it can be mailed, attached
to a CI run or opened offline years later.

The markup is in Jinja templates shipped with the package
(``socklab/reports/templates``: report.html, topology.svg, ladder.svg,
report.css). This module computes what the templates only show: the
topology's and the ladders' layout, and a small view model of the run
(counts, durations, anchors, the facts worth a glance). Autoescape is on and
no value is marked safe, so everything that came from a host, a file or a
check is escaped wherever a template puts it.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from socklab.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK
from socklab.results import (
    Addresses,
    CheckResult,
    Grade,
    HostAddresses,
    RunResult,
    RunSummary,
    ScenarioResult,
    ServiceResult,
    Status,
)

if TYPE_CHECKING:
    from socklab import ladder

Hosts = HostAddresses

EXIT_MEANINGS = {
    EXIT_OK: "every check held",
    EXIT_CHECK_FAILED: "a check failed, or a lab could not be readied",
    EXIT_BAD_INPUT: "bad input or a broken environment",
    EXIT_INTERRUPTED: "interrupted: every lab was torn down first",
}


def _number(value: float) -> str:
    """A coordinate as SVG wants it: ``140``, ``90.5``, never ``140.0``."""
    return f"{value:g}"


TEMPLATES = Environment(
    loader=PackageLoader("socklab.reports", "templates"),  # package data: works installed, not only from a checkout
    autoescape=True,  # every template, whatever its name: .html, .svg and .css alike
    undefined=StrictUndefined,  # a misspelt name fails the render instead of showing nothing
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters["num"] = _number


def render(run: RunResult) -> str:
    """The whole page, as text to write to report.html."""
    return TEMPLATES.get_template("report.html").render(page=page_view(run), run=run)


# -- the view model: what the templates read ------------------------------------


@dataclass(frozen=True)
class Count:
    """One number of a tally: ``3 passed``, coloured by ``tone`` ("" when it is zero)."""

    number: int
    word: str
    tone: str


@dataclass(frozen=True)
class Fact:
    """A label and its value, both shown as text: an evidence fact, a phase and its time."""

    label: str
    value: str


@dataclass(frozen=True)
class Segment:
    """A run of prose: plain text, or code (it was between backticks)."""

    text: str
    code: bool = False


Paragraph = tuple[Segment, ...]


@dataclass(frozen=True)
class Figure:
    """A topology as the template draws it: the layout, its size in whole pixels, and what it says to a reader."""

    drawing: Topology
    width: int
    height: int
    label: str


@dataclass(frozen=True)
class CheckView:
    result: CheckResult
    facts: tuple[Fact, ...]
    evidence: str  # the client's JSON, indented; "" without evidence
    wire: Wire | None = None  # the packets its attempt put on the wire; None when the run had no captures


@dataclass(frozen=True)
class ServiceView:
    result: ServiceResult
    log_lines: int
    log_href: str  # logs/SCENARIO/HOST.SERVICE.log, as reports.write() puts it


@dataclass(frozen=True)
class Capture:
    name: str  # HOST-INTERFACE
    href: str  # captures/SCENARIO/NAME.pcap, as reports.write() puts it


@dataclass(frozen=True)
class ScenarioView:
    result: ScenarioResult
    anchor: str  # unique in the page, URL-safe
    tone: str  # pass, fail or skip
    skipped: bool  # not run at all: the run was interrupted first
    took: str
    phases: tuple[Fact, ...]
    figure: Figure | None  # None when the lab never had hosts
    explains: tuple[Paragraph, ...]
    try_next: tuple[Paragraph, ...]
    checks: tuple[CheckView, ...]
    services: tuple[ServiceView, ...]
    captures: tuple[Capture, ...]


@dataclass(frozen=True)
class PageView:
    summary: RunSummary
    tone: str  # of the whole run: pass, fail, or skip when interrupted
    meaning: str  # of the exit status
    started: str  # as a person writes it
    took: str
    scenario_counts: tuple[Count, ...]
    check_counts: tuple[Count, ...]
    grades: list[Grade]
    scenarios: tuple[ScenarioView, ...]


def page_view(run: RunResult) -> PageView:
    """What the page shows of a run; the counts are the run's own summary, as in every other view."""
    summary = run.summary
    scenarios = run.scenarios
    return PageView(
        summary=summary,
        tone={EXIT_OK: "pass", EXIT_INTERRUPTED: "skip"}.get(run.exit_status, "fail"),
        meaning=EXIT_MEANINGS.get(run.exit_status, "see the console output"),
        started=_when(run.started),
        took=_duration(run.seconds),
        scenario_counts=tally([(summary.passed, "passed", "pass"), (summary.failed, "failed", "fail"),
                               (summary.skipped, "skipped", "skip")]),
        check_counts=tally([(summary.held, "held", "pass"), (summary.checks_failed, "failed", "fail")]),
        grades=run.grades(),
        scenarios=tuple(scenario_view(s, anchor) for s, anchor in zip(scenarios, _anchors(scenarios), strict=True)),
    )


def tally(parts: list[tuple[int, str, str]]) -> tuple[Count, ...]:
    """``3 passed · 1 failed``, leaving out zeros (except the first) so the eye lands on what matters."""
    return tuple(Count(number, word, tone if number else "")
                 for index, (number, word, tone) in enumerate(parts) if number or index == 0)


def _when(started: str) -> str:
    """The ISO start time, as a person writes it; the raw string if it is not ISO."""
    try:
        moment = datetime.datetime.fromisoformat(started)
    except ValueError:
        return started
    if moment.utcoffset() == datetime.timedelta(0):
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.isoformat(sep=" ")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _anchors(scenarios: list[ScenarioResult]) -> list[str]:
    """A unique, URL-safe id per scenario; the same scenario run twice gets two."""
    seen: set[str] = set()
    anchors = []
    for scenario in scenarios:
        base = "scenario-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", scenario.name).strip("-") or "unnamed")
        anchor, number = base, 2
        while anchor in seen:
            anchor, number = f"{base}-{number}", number + 1
        seen.add(anchor)
        anchors.append(anchor)
    return anchors


def _tone(status: Status) -> str:
    return {Status.PASSED: "pass", Status.FAILED: "fail"}.get(status, "skip")


# -- one scenario -------------------------------------------------------------


def scenario_view(scenario: ScenarioResult, anchor: str) -> ScenarioView:
    """One scenario's section: verdict, topology, lesson, checks, services, notes."""
    wires = wire_views(scenario)
    return ScenarioView(
        result=scenario,
        anchor=anchor,
        tone=_tone(scenario.status),
        skipped=scenario.status == Status.SKIPPED,
        took=_duration(scenario.seconds),
        phases=tuple(Fact(phase, f"{seconds:.1f} s") for phase, seconds in scenario.phase_seconds.items()),
        figure=figure(scenario.hosts, scenario.name) if scenario.hosts else None,
        explains=paragraphs(scenario.explains),
        try_next=paragraphs(scenario.try_next),
        checks=tuple(CheckView(check, facts(check.evidence), _evidence(check.evidence), wire)
                     for check, wire in zip(scenario.checks, wires, strict=True)),
        services=tuple(_service(scenario.name, service) for service in scenario.services),
        captures=tuple(Capture(name, quote(f"captures/{scenario.name}/{name}.pcap")) for name in scenario.captures),
    )


def paragraphs(text: str) -> tuple[Paragraph, ...]:
    """Scenario prose is hard-wrapped TOML text: blank lines part paragraphs, `backticks` mark code.

    Each paragraph is split into plain and code segments here, and the template
    wraps the code ones in ``<code>`` and escapes every segment's text: the
    markup comes from the template, never from the prose.
    """
    blocks = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", text.strip())]
    return tuple(_segments(block) for block in blocks if block)


def _segments(block: str) -> Paragraph:
    parts = re.split(r"`([^`]+)`", block)  # plain, code, plain, code, ..., plain
    return tuple(Segment(part, code=index % 2 == 1) for index, part in enumerate(parts) if part)


# -- checks -------------------------------------------------------------------

FACTS = (  # evidence keys worth a glance, in reading order, with how to show them
    ("errno", "errno", "{}"),
    ("elapsed_ms", "elapsed", "{:g} ms"),
    ("local", "local", "{}"),
    ("peer", "peer", "{}"),
    ("sent", "sent", "{} bytes"),
    ("received", "received", "{} bytes"),
)


def facts(evidence: dict[str, Any]) -> tuple[Fact, ...]:
    """The few evidence values a reader looks for first; the rest stay in the JSON."""
    found = []
    for key, label, form in FACTS:
        value = evidence.get(key)
        if value is None or value == "":
            continue
        try:
            shown = form.format(value)
        except (ValueError, TypeError):
            shown = str(value)
        if key == "errno" and evidence.get("detail"):
            shown += f" ({evidence['detail']})"
        found.append(Fact(label, shown))
    if evidence.get("detail") and not evidence.get("errno"):  # a reason without an errno: a timeout, a mismatch
        found.insert(0, Fact("detail", str(evidence["detail"])))
    return tuple(found)


def _evidence(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, indent=2, ensure_ascii=False, default=str) if evidence else ""


# -- services -----------------------------------------------------------------


def _service(scenario: str, service: ServiceResult) -> ServiceView:
    return ServiceView(service, len(service.log.splitlines()),
                       quote(f"logs/{scenario}/{service.host}.{service.name}.log"))


# -- topology -----------------------------------------------------------------
#
# Hosts are boxes in a column on the left, one row each; every network is a
# vertical bus to their right, its name and subnets on top. A host reaches
# each of its networks by a horizontal line of its own (a multi-homed host is
# taller, one line per network), labelled just before the bus with the
# host's addresses there. A line that passes another bus on its way is drawn
# with a gap, so it reads as crossing over, not joining. Everything is
# computed here from text lengths, so the same hosts always draw the same.

MARGIN = 16
HEADER = 66  # room above the buses for the network name and its two subnets
ROW_GAP = 14
LINK_PITCH = 40  # between the lines of one multi-homed host: an address above each line, one below
BOX_MIN_WIDTH = 124
BOX_HEIGHT = 48
COLUMN_MIN_WIDTH = 180
NAME_CHAR = 8.6  # DejaVu Sans Mono is 0.6 em wide; 14 px bold host names, with a little slack
LABEL_CHAR = 7.4  # 12 px addresses
SUBNET_CHAR = 6.8  # 11 px subnets
NET_CHAR = 8.2  # 13 px bold network names
PALETTE = ("#0969da", "#8250df", "#1a7f72", "#bc4c00", "#bf3989")


@dataclass(frozen=True)
class Box:
    """A host."""

    name: str
    x: float
    y: float
    width: float
    height: float
    loopback_only: bool


@dataclass(frozen=True)
class Bus:
    """A network: a vertical bar at ``x`` with its name and subnets above it."""

    name: str
    x: float
    top: float
    bottom: float
    subnets: tuple[str, ...]
    colour: str


@dataclass(frozen=True)
class Link:
    """A host's interface on a network: a line from its box to the bus, labelled with its addresses."""

    host: str
    network: str
    x1: float
    x2: float
    y: float
    addresses: tuple[str, ...]
    colour: str


@dataclass(frozen=True)
class Topology:
    width: float
    height: float
    boxes: tuple[Box, ...]
    buses: tuple[Bus, ...]
    links: tuple[Link, ...]


def networks_of(hosts: Hosts) -> list[str]:
    """Every network, in the order hosts first name them: the scenario file's order, usually."""
    return list(dict.fromkeys(network for interfaces in hosts.values() for network in interfaces))


def _subnets(hosts: Hosts, network: str) -> tuple[str, ...]:
    for interfaces in hosts.values():
        found = interfaces.get(network) or Addresses()
        subnets = tuple(s for s in (found.subnet4, found.subnet6) if s)
        if subnets:
            return subnets
    return ()


def _addresses(interface: Addresses) -> tuple[str, ...]:
    return interface.shown()


def layout(hosts: Hosts) -> Topology:
    """Where every box, bus and line goes, sized from the longest name and address to be drawn."""
    networks = networks_of(hosts)
    longest_name = max((len(name) for name in hosts), default=0)
    box_width = max(BOX_MIN_WIDTH, longest_name * NAME_CHAR + 28)
    labels = [a for interfaces in hosts.values() for i in interfaces.values() for a in _addresses(i)]
    subnets = [s for network in networks for s in _subnets(hosts, network)]
    header_width = max([len(text) * SUBNET_CHAR for text in subnets] + [len(n) * NET_CHAR for n in networks], default=0)
    column = max(COLUMN_MIN_WIDTH, max((len(a) for a in labels), default=0) * LABEL_CHAR + 44, header_width + 24)
    top = HEADER if networks else MARGIN
    box_x = MARGIN
    bus_x = {network: box_x + box_width + column * (index + 1) for index, network in enumerate(networks)}
    colour = {network: PALETTE[index % len(PALETTE)] for index, network in enumerate(networks)}

    boxes: list[Box] = []
    links: list[Link] = []
    y = top
    for name, interfaces in hosts.items():
        attached = [network for network in networks if network in interfaces]
        height = BOX_HEIGHT + LINK_PITCH * max(len(attached) - 1, 0)
        boxes.append(Box(name, box_x, y, box_width, height, loopback_only=not attached))
        for index, network in enumerate(attached):
            line_y = y + BOX_HEIGHT / 2 + LINK_PITCH * index
            links.append(Link(name, network, box_x + box_width, bus_x[network], line_y,
                              _addresses(interfaces[network]), colour[network]))
        y += height + ROW_GAP
    bottom = y - ROW_GAP
    buses = tuple(Bus(network, bus_x[network], top - 8, bottom + 8, _subnets(hosts, network), colour[network])
                  for network in networks)
    right = max((bus.x for bus in buses), default=box_x + box_width) + (header_width / 2 + 8 if buses else 0)
    return Topology(right + MARGIN, bottom + MARGIN + (8 if buses else 0), tuple(boxes), buses, tuple(links))


def figure(hosts: Hosts, caption: str = "") -> Figure:
    """The topology as the template draws it, with a text equivalent for screen readers."""
    drawing = layout(hosts)
    label = f"Topology of {caption}: " if caption else "Topology: "
    label += "; ".join(f"{host} on {', '.join(nets) or 'loopback only'}" for host, nets in hosts.items())
    return Figure(drawing, round(drawing.width), round(drawing.height), label)


def topology_svg(hosts: Hosts, caption: str = "") -> str:
    """The topology as an inline SVG element, styled by the page's CSS."""
    return TEMPLATES.get_template("topology.svg").render(figure=figure(hosts, caption))


# -- packets on the wire: a ladder per check ------------------------------------
#
# With captures, each check shows the packets its attempt put on the wire
# (socklab.attribution finds them): a vertical line per host, an arrow per packet
# from its sender to its receiver, top to bottom in time, the time since the
# first packet on the left. Each arrow has its label above it (flags and
# length, the ICMP message) and a detail line below (ports and relative
# sequence numbers, what an ICMP error quotes, a retransmission's delay).
# As for the topology, every position is computed here from text lengths.

LADDER_TIME = 78  # the time column, left of the first lane
LADDER_HEAD = 46  # lane names and addresses above the first arrow
LADDER_ROW = 44  # an arrow with a line of text above and one below
LADDER_MIN_GAP = 170  # between two lanes
LADDER_LOOP = 26  # how far a packet a host sends to itself loops out to the right
LADDER_CHAR = 7.3  # 12 px monospace label
DETAIL_CHAR = 6.7  # 11 px monospace detail
LANE_CHAR = 8.0  # 13 px bold lane name
KINDS = ("tcp", "rst", "udp", "icmp", "arp")


@dataclass(frozen=True)
class LaneSpot:
    lane: ladder.Lane
    x: float


@dataclass(frozen=True)
class Row:
    """An arrow as drawn: from ``x1`` to ``x2`` at ``y`` (a loop to the right when they are equal)."""

    arrow: ladder.Arrow
    y: float
    x1: float
    x2: float
    head: str  # the arrowhead's polygon points
    text_x: float  # where its label and detail are anchored
    anchor: str  # "middle" between two lanes, "start" beside a loop
    detail: str  # the detail line: detail and note

    @property
    def loop(self) -> bool:
        return self.x1 == self.x2

    @property
    def path(self) -> str:
        """A loop out to the right and back, for a packet a host sends to itself."""
        top, bottom = self.y - 7, self.y + 7
        return f"M{_number(self.x1)} {_number(top)} h{LADDER_LOOP} v{_number(bottom - top)} h-{LADDER_LOOP - 2}"


@dataclass(frozen=True)
class LadderFigure:
    drawing: ladder.Ladder
    lanes: tuple[LaneSpot, ...]
    rows: tuple[Row, ...]
    width: int
    height: int
    bottom: float  # where the lanes end
    more_y: float  # the "… and N more" line, when packets were left out
    more_text: str  # that line: how many more, and what is special among them
    label: str  # the figure in words, for screen readers


@dataclass(frozen=True)
class Wire:
    """What report.html says of a check's packets: a ladder, or why there is none."""

    figure: LadderFigure | None
    summary: str  # the details' summary line
    message: str = ""  # when there is no figure: why


def wire_views(scenario: ScenarioResult) -> list[Wire | None]:
    """Every check's packets, when the run had captures; a capture that cannot be read says so on each check."""
    if not scenario.captures:
        return [None] * len(scenario.checks)
    from socklab import ladder, packets  # only a run with captures draws packets: dpkt and the drawing load then

    try:
        captured = packets.read_all(scenario.captures)
    except packets.CaptureError as exc:
        return [Wire(None, "Packets on the wire: unreadable", f"The captures could not be read: {exc}")
                for _ in scenario.checks]
    drawn = ladder.ladders(scenario.checks, scenario.hosts, captured)
    return [wire_view(check, found) for check, found in zip(scenario.checks, drawn, strict=True)]


def wire_view(check: CheckResult, drawn: ladder.Ladder | None) -> Wire:
    if drawn is None:
        return Wire(None, "Packets on the wire: not known",
                    "This check was not timed (it was not run), so its packets cannot be told from the others'.")
    if not drawn.arrows:
        return Wire(None, "Packets on the wire: none",
                    "No packet of this attempt was captured on any interface: nothing was sent, "
                    "or nothing left the host.")
    count = f"{drawn.total} packet{'s' if drawn.total != 1 else ''}"
    return Wire(ladder_figure(drawn, check.name), f"Packets on the wire ({count}): {drawn.summary}")


def ladder_figure(drawn: ladder.Ladder, caption: str = "") -> LadderFigure:
    """Where every lane, arrow and text goes, spaced so that the longest label fits between its lanes."""
    lanes = drawn.lanes
    widths = [max(len(lane.name) * LANE_CHAR, len(lane.note) * DETAIL_CHAR) for lane in lanes]
    gap = float(LADDER_MIN_GAP)
    for left, right in zip(widths, widths[1:], strict=False):
        gap = max(gap, (left + right) / 2 + 24)
    right_margin = widths[-1] / 2 + 16 if widths else 0.0
    for arrow in drawn.arrows:
        text = max(len(arrow.label) * LADDER_CHAR, len(_detail(arrow)) * DETAIL_CHAR)
        span = abs(arrow.sender - arrow.receiver)
        if span:
            gap = max(gap, (text + 28) / span)
        elif arrow.sender < len(lanes) - 1:
            gap = max(gap, LADDER_LOOP + 10 + text + 12)
        else:
            right_margin = max(right_margin, LADDER_LOOP + 10 + text + 12)
    first = LADDER_TIME + max(widths[0] / 2 if widths else 0.0, 40.0)
    spots = tuple(LaneSpot(lane, first + gap * index) for index, lane in enumerate(lanes))
    rows = []
    for index, arrow in enumerate(drawn.arrows):
        y = LADDER_HEAD + LADDER_ROW * index + LADDER_ROW / 2 + 4
        x1, x2 = spots[arrow.sender].x, spots[arrow.receiver].x
        if x1 == x2:
            head = _arrowhead(x1 + 2, y + 7, -1)
            rows.append(Row(arrow, y, x1, x2, head, x1 + LADDER_LOOP + 10, "start", _detail(arrow)))
        else:
            direction = 1 if x2 > x1 else -1
            rows.append(Row(arrow, y, x1, x2, _arrowhead(x2, y, direction), (x1 + x2) / 2, "middle", _detail(arrow)))
    bottom = LADDER_HEAD + LADDER_ROW * len(rows) + 8
    more_y = bottom + 18
    height = more_y + (8 if drawn.more else -10) + 8
    more = ""
    if drawn.more:
        more = f"… and {drawn.more} more packet{'' if drawn.more == 1 else 's'}"
        more += f", among them {', '.join(drawn.among)}" if drawn.among else ""
        more += " (in the captures)"
    width = max((spots[-1].x if spots else first) + right_margin, first + len(more) * DETAIL_CHAR) + 8
    label = f"Packets of {caption}: " if caption else "Packets: "
    label += "; ".join(f"{lanes[a.sender].name} to {lanes[a.receiver].name}: {a.text}" for a in drawn.arrows)
    if drawn.more:
        label += f"; {more}"
    return LadderFigure(drawn, spots, tuple(rows), round(width), round(height), bottom, more_y, more, label)


def _detail(arrow: ladder.Arrow) -> str:
    return " · ".join(part for part in (arrow.detail, arrow.note) if part)


def _arrowhead(x: float, y: float, direction: int) -> str:
    """A small triangle pointing along ``direction`` (1: right, -1: left), its tip at (x, y)."""
    back = x - 9 * direction
    return f"{_number(x)},{_number(y)} {_number(back)},{_number(y - 4.5)} {_number(back)},{_number(y + 4.5)}"


def ladder_svg(drawn: ladder.Ladder, caption: str = "") -> str:
    """A ladder as an inline SVG element, styled by the page's CSS."""
    return TEMPLATES.get_template("ladder.svg").render(figure=ladder_figure(drawn, caption))
