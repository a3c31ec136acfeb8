"""report.html: one self-contained page that a person reads after a run.

The page is a view of the same ``RunResult`` as report.json: the run's
verdict first, then each scenario with its topology drawn, what it teaches,
and every check with what was expected, what was observed and the client's
own evidence. It carries its CSS and SVG inline and needs no script, so it
can be mailed, attached to a CI run or opened offline years later.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from socklab.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK
from socklab.results import Addresses, CheckResult, HostAddresses, RunResult, ScenarioResult, ServiceResult, Status

Hosts = HostAddresses

EXIT_MEANINGS = {
    EXIT_OK: "every check held",
    EXIT_CHECK_FAILED: "a check failed, or a lab could not be readied",
    EXIT_BAD_INPUT: "bad input or a broken environment",
    EXIT_INTERRUPTED: "interrupted: every lab was torn down first",
}

SEPARATOR = " <span class=\"sep\">|</span> "
BADGE_TEXT = {Status.PASSED: "\u2713 passed", Status.FAILED: "\u2717 failed", Status.SKIPPED: "\u2013 skipped"}


def render(run: RunResult) -> str:
    """The whole page, as text to write to report.html."""
    anchors = _anchors(run.scenarios)
    body = [_summary(run), *_grades(run), _contents(run.scenarios, anchors)]
    body += [_scenario(scenario, anchor) for scenario, anchor in zip(run.scenarios, anchors, strict=True)]
    body.append(_footer())
    title = f"socklab: {_verdict_line(run)}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def _e(value: object) -> str:
    """Escape for text and attribute values alike: everything shown comes from hosts and files."""
    return escape(str(value), quote=True)


# -- the run ------------------------------------------------------------------


def _summary(run: RunResult) -> str:
    """The header: whether the run held, the exit status and what it means, when and how long, the counts."""
    status = run.exit_status
    tone = {EXIT_OK: "pass", EXIT_INTERRUPTED: "skip"}.get(status, "fail")
    meaning = EXIT_MEANINGS.get(status, "see the console output")
    summary = run.summary
    tiles = [
        ("Started", f"<time datetime=\"{_e(run.started)}\">{_e(_when(run.started))}</time>"),
        ("Took", _e(_duration(run.seconds))),
        ("Scenarios", _tally([(summary.passed, "passed", "pass"), (summary.failed, "failed", "fail"),
                              (summary.skipped, "skipped", "skip")])),
        ("Checks", _tally([(summary.held, "held", "pass"), (summary.checks_failed, "failed", "fail")])),
    ]
    tile_html = "".join(f"<div class=\"tile\"><div class=\"label\">{label}</div>"
                        f"<div class=\"value\">{value}</div></div>" for label, value in tiles)
    folder = f"<p class=\"folder\">Results folder <code>{_e(run.results_dir)}</code></p>" if run.results_dir else ""
    return (
        f"<header class=\"run {tone}\">\n<div class=\"banner\"><h1>{_e(_verdict_line(run))}</h1>"
        f"<p class=\"exit\"><span class=\"code\">exit {status}</span> {_e(meaning)}</p></div>\n"
        f"<div class=\"tiles\">{tile_html}</div>\n{folder}</header>"
    )


def _verdict_line(run: RunResult) -> str:
    return run.summary.headline


def _tally(parts: list[tuple[int, str, str]]) -> str:
    """``3 passed · 1 failed``, leaving out zeros (except the first) so the eye lands on what matters."""
    shown = [part for index, part in enumerate(parts) if part[0] or index == 0]
    return " <span class=\"sep\">\u00b7</span> ".join(
        f"<span class=\"n {tone if number else ''}\">{number}</span> {word}" for number, word, tone in shown)


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


def _grades(run: RunResult) -> list[str]:
    """Grading mode: which checks each implementation passed, and which caught it."""
    sections = []
    for grade in run.grades():
        caught = "".join(f"<li class=\"fail\">caught by {_e(name)}</li>" for name in grade.failed)
        broken = "".join(f"<li class=\"fail\">lab not ready: {_e(name)}</li>" for name in grade.labs_not_ready)
        held = "".join(f"<li class=\"pass\">passed {_e(name)}</li>" for name in grade.passed)
        sections.append(
            f"<nav class=\"contents grade\"><h2>Graded: <code>{_e(grade.role)}</code> = "
            f"<code>{_e(grade.file)}</code></h2>\n<p>{len(grade.passed)} of {grade.total} checks held</p>\n"
            f"<ul>{caught}{broken}{held}</ul></nav>")
    return sections


def _contents(scenarios: list[ScenarioResult], anchors: list[str]) -> str:
    """Every scenario with its verdict, linked to its section: the failures are one click away."""
    rows = []
    for scenario, anchor in zip(scenarios, anchors, strict=True):
        held = sum(c.passed for c in scenario.checks)
        checks = f"{held}/{len(scenario.checks)}" if scenario.checks else "\u2013"
        rows.append(
            f"<tr><td>{_badge(scenario.status)}</td><td><a href=\"#{anchor}\">{_e(scenario.name)}</a></td>"
            f"<td>{_e(scenario.title)}</td><td class=\"topic\">{_e(scenario.topic)}</td>"
            f"<td class=\"num {_tone(scenario.status)}\">{checks}</td></tr>")
    return (
        "<nav class=\"contents\"><h2>Scenarios</h2>\n<table>\n<thead><tr><th>Verdict</th><th>Scenario</th>"
        "<th>What it shows</th><th>Topic</th><th class=\"num\">Checks held</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows) + "\n</tbody></table></nav>"
    )


def _badge(status: Status) -> str:
    tone = {Status.PASSED: "pass", Status.FAILED: "fail"}.get(status, "skip")
    return f"<span class=\"badge {tone}\">{_e(BADGE_TEXT.get(status, str(status)))}</span>"


def _footer() -> str:
    return ("<footer>Written by socklab from the same results as <a href=\"report.json\">report.json</a> "
            "(the source of truth) and <a href=\"junit.xml\">junit.xml</a>.</footer>")


# -- one scenario -------------------------------------------------------------


def _scenario(scenario: ScenarioResult, anchor: str) -> str:
    """One scenario's section: verdict, topology, lesson, checks, services, notes."""
    meta = [f"topic <b>{_e(scenario.topic)}</b>"]
    if scenario.lab_id:
        meta.append(f"lab <code>{_e(scenario.lab_id)}</code>")
    if scenario.seconds:
        meta.append(f"took {_e(_duration(scenario.seconds))}")
    if scenario.phase_seconds:
        phases = scenario.phase_seconds.items()
        meta.append(" \u00b7 ".join(f"{_e(phase)} {seconds:.1f} s" for phase, seconds in phases))
    parts = [
        f"<section class=\"scenario {_tone(scenario.status)}\" id=\"{anchor}\">",
        f"<div class=\"head\"><h2><a class=\"self\" href=\"#{anchor}\">{_e(scenario.name)}</a></h2>"
        f"{_badge(scenario.status)}</div>",
        f"<p class=\"title\">{_e(scenario.title)}</p>",
        f"<p class=\"meta\">{SEPARATOR.join(meta)}</p>",
    ]
    if scenario.error:
        label = "Not run" if scenario.status == Status.SKIPPED else "The lab could not be readied"
        parts.append(f"<div class=\"error\"><b>{label}</b><pre>{_e(scenario.error)}</pre></div>")
    if scenario.hosts:
        parts.append(f"<h3>Topology</h3>\n<figure class=\"topology\">{topology_svg(scenario.hosts, scenario.name)}"
                     "</figure>")
    parts.append("<h3>What it teaches</h3>\n" + _paragraphs(scenario.explains))
    if scenario.try_next.strip():
        parts.append("<div class=\"try\"><h4>Try next</h4>\n" + _paragraphs(scenario.try_next) + "</div>")
    parts.append(_checks(scenario))
    if scenario.services:
        parts.append("<h3>Services</h3>\n" + "\n".join(_service(scenario.name, s) for s in scenario.services))
    if scenario.notes:
        items = "".join(f"<li><code>{_e(note)}</code></li>" for note in scenario.notes)
        parts.append(f"<h3>Notes from the hosts</h3>\n<ul class=\"notes\">{items}</ul>")
    captures = getattr(scenario, "captures", None) or {}  # present when the run was asked to capture
    if captures:
        items = "".join(f"<li><a href=\"{_e(quote(f'captures/{scenario.name}/{name}.pcap'))}\">{_e(name)}.pcap</a></li>"
                        for name in captures)
        parts.append(f"<h3>Packet captures</h3>\n<ul class=\"notes\">{items}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _tone(status: Status) -> str:
    return {Status.PASSED: "pass", Status.FAILED: "fail"}.get(status, "skip")


def _paragraphs(text: str) -> str:
    """Scenario prose is hard-wrapped TOML text: blank lines part paragraphs, `backticks` mark code."""
    blocks = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", text.strip())]
    return "\n".join(f"<p class=\"prose\">{_inline_code(_e(block))}</p>" for block in blocks if block)


def _inline_code(escaped: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


# -- checks -------------------------------------------------------------------

FACTS = (  # evidence keys worth a glance, in reading order, with how to show them
    ("errno", "errno", "{}"),
    ("elapsed_ms", "elapsed", "{:g} ms"),
    ("local", "local", "{}"),
    ("peer", "peer", "{}"),
    ("sent", "sent", "{} bytes"),
    ("received", "received", "{} bytes"),
)


def _checks(scenario: ScenarioResult) -> str:
    if not scenario.checks:
        reason = "the run was interrupted first" if scenario.status == Status.SKIPPED else "the lab never got that far"
        return f"<h3>Checks</h3>\n<p class=\"none\">No check was made: {reason}.</p>"
    held = sum(c.passed for c in scenario.checks)
    return (f"<h3>Checks <span class=\"count\">{held} of {len(scenario.checks)} held</span></h3>\n"
            + "\n".join(_check(check) for check in scenario.checks))


def _check(check: CheckResult) -> str:
    """A check as a card: the attempt, expected against observed, the evidence, and why if it did not hold."""
    tone = "pass" if check.passed else "fail"
    mark = "\u2713" if check.passed else "\u2717"
    parts = [
        f"<article class=\"check {tone}\">",
        f"<div class=\"check-head\"><span class=\"mark\">{mark}</span><h4>{_e(check.name)}</h4>"
        f"<span class=\"from\">from <b>{_e(check.host)}</b></span></div>",
        f"<pre class=\"cmd\"><span class=\"prompt\">{_e(check.host)}$</span> {_e(check.action)}</pre>",
        f"<div class=\"outcome\"><span class=\"expected\">expected <b class=\"word\">{_e(check.expected)}</b></span>"
        f"<span class=\"arrow\">\u2192</span><span class=\"observed\">observed "
        f"<b class=\"word {tone}\">{_e(check.observed)}</b></span></div>",
    ]
    facts = _facts(check.evidence)
    if facts:
        parts.append(facts)
    if not check.passed and (check.detail or check.unmet):
        why = f"<p>{_e(check.detail)}</p>" if check.detail else ""
        if check.unmet:
            why += "<p class=\"unmet-title\">Claims that did not hold:</p><ul class=\"unmet\">"
            why += "".join(f"<li>{_e(claim)}</li>" for claim in check.unmet) + "</ul>"
        parts.append(f"<div class=\"why\">{why}</div>")
    if check.evidence:
        evidence = json.dumps(check.evidence, indent=2, ensure_ascii=False, default=str)
        parts.append(f"<details><summary>Evidence (the client's JSON)</summary><pre>{_e(evidence)}</pre></details>")
    parts.append("</article>")
    return "\n".join(parts)


def _facts(evidence: dict[str, Any]) -> str:
    """The few evidence values a reader looks for first; the rest stay in the JSON."""
    items = []
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
        items.append(f"<div><dt>{label}</dt><dd>{_e(shown)}</dd></div>")
    if evidence.get("detail") and not evidence.get("errno"):  # a reason without an errno: a timeout, a mismatch
        items.insert(0, f"<div><dt>detail</dt><dd>{_e(evidence['detail'])}</dd></div>")
    return f"<dl class=\"facts\">{''.join(items)}</dl>" if items else ""


# -- services -----------------------------------------------------------------


def _service(scenario: str, service: ServiceResult) -> str:
    tone = "pass" if service.ready else "fail"
    state = "\u2713 ready" if service.ready else "\u2717 not ready"
    parts = [
        f"<article class=\"service {tone}\">",
        f"<div class=\"check-head\"><h4>{_e(service.name)}</h4><span class=\"from\">on <b>{_e(service.host)}</b></span>"
        f"<span class=\"badge {tone}\">{state}</span></div>",
        f"<pre class=\"cmd\"><span class=\"prompt\">{_e(service.host)}$</span> {_e(service.command)}</pre>",
    ]
    if service.detail:
        parts.append(f"<div class=\"why\"><p>{_e(service.detail)}</p></div>")
    if service.log:
        lines = len(service.log.splitlines())
        path = quote(f"logs/{scenario}/{service.host}.{service.name}.log")
        parts.append(f"<details><summary>Log ({lines} line{'s' if lines != 1 else ''}) \u00b7 "
                     f"<a href=\"{_e(path)}\">file</a></summary><pre>{_e(service.log)}</pre></details>")
    parts.append("</article>")
    return "\n".join(parts)


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


def topology_svg(hosts: Hosts, caption: str = "") -> str:
    """The topology as an inline SVG element, styled by the page's CSS."""
    drawing = layout(hosts)
    width, height = round(drawing.width), round(drawing.height)
    label = f"Topology of {caption}: " if caption else "Topology: "
    label += "; ".join(f"{host} on {', '.join(nets) or 'loopback only'}" for host, nets in hosts.items())
    parts = [f"<svg class=\"topo\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
             f"viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{_e(label)}\">"]
    parts += [_draw_bus(bus) for bus in drawing.buses]
    parts += [_draw_link(link) for link in drawing.links]
    parts += [_draw_box(box) for box in drawing.boxes]
    parts += [_draw_link_labels(link) for link in drawing.links]
    parts.append("</svg>")
    return "\n".join(parts)


def _draw_bus(bus: Bus) -> str:
    lines = [f"<text class=\"net-name\" x=\"{bus.x:g}\" y=\"18\" text-anchor=\"middle\" fill=\"{bus.colour}\">"
             f"{_e(bus.name)}</text>"]
    lines += [f"<text class=\"subnet\" x=\"{bus.x:g}\" y=\"{34 + 14 * index}\" text-anchor=\"middle\">"
              f"{_e(subnet)}</text>" for index, subnet in enumerate(bus.subnets)]
    lines.append(f"<rect class=\"bus\" x=\"{bus.x - 4:g}\" y=\"{bus.top:g}\" width=\"8\" "
                 f"height=\"{bus.bottom - bus.top:g}\" rx=\"4\" fill=\"{bus.colour}\">"
                 f"<title>network {_e(bus.name)}</title></rect>")
    return "<g class=\"network\">" + "".join(lines) + "</g>"


def _draw_link(link: Link) -> str:
    """The line, over a white halo that cuts a gap in any bus it crosses, and a dot where it joins its own."""
    return (f"<g class=\"link\"><line x1=\"{link.x1:g}\" y1=\"{link.y:g}\" x2=\"{link.x2 - 6:g}\" y2=\"{link.y:g}\" "
            f"stroke=\"#fff\" stroke-width=\"8\"/>"
            f"<line x1=\"{link.x1:g}\" y1=\"{link.y:g}\" x2=\"{link.x2:g}\" y2=\"{link.y:g}\" "
            f"stroke=\"{link.colour}\" stroke-width=\"2\"/>"
            f"<circle cx=\"{link.x2:g}\" cy=\"{link.y:g}\" r=\"5.5\" fill=\"{link.colour}\" stroke=\"#fff\" "
            f"stroke-width=\"2\"><title>{_e(link.host)} on {_e(link.network)}</title></circle></g>")


def _draw_link_labels(link: Link) -> str:
    """IPv4 above the line, IPv6 below it, right-aligned just before the bus they belong to."""
    x = link.x2 - 12
    rows = [(link.y - 6, address) for address in link.addresses[:1]]
    rows += [(link.y + 16, address) for address in link.addresses[1:2]]
    return "".join(f"<text class=\"addr\" x=\"{x:g}\" y=\"{y:g}\" text-anchor=\"end\">{_e(address)}</text>"
                   for y, address in rows)


def _draw_box(box: Box) -> str:
    middle = box.y + box.height / 2
    css = "host loopback" if box.loopback_only else "host"
    shape = (f"<rect x=\"{box.x:g}\" y=\"{box.y:g}\" width=\"{box.width:g}\" height=\"{box.height:g}\" rx=\"8\"/>")
    if box.loopback_only:
        text = (f"<text class=\"host-name\" x=\"{box.x + 14:g}\" y=\"{middle - 3:g}\">{_e(box.name)}</text>"
                f"<text class=\"lo\" x=\"{box.x + 14:g}\" y=\"{middle + 13:g}\">loopback only</text>")
    else:
        text = f"<text class=\"host-name\" x=\"{box.x + 14:g}\" y=\"{middle + 5:g}\">{_e(box.name)}</text>"
    return f"<g class=\"{css}\">{shape}{text}</g>"


# -- style --------------------------------------------------------------------

CSS = """
:root { --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9; --skip: #6e7781;
  --skip-bg: #eaeef2; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --paper: #f6f8fa;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--paper); color: var(--ink); font: 15px/1.55 system-ui, -apple-system, "Segoe UI",
  "DejaVu Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
code, pre { font-family: var(--mono); }
code { font-size: 0.88em; background: #eff2f5; padding: 0.1em 0.35em; border-radius: 4px; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
h1, h2, h3, h4 { line-height: 1.25; margin: 0; }
h3 { font-size: 16px; margin: 26px 0 10px; color: var(--ink); }
h3 .count { font-weight: 400; color: var(--muted); font-size: 14px; margin-left: 6px; }
.sep { color: #afb8c1; margin: 0 2px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12.5px; font-weight: 600;
  white-space: nowrap; border: 1px solid transparent; }
.badge.pass { color: var(--pass); background: var(--pass-bg); border-color: #aceebb; }
.badge.fail { color: var(--fail); background: var(--fail-bg); border-color: #ffcecb; }
.badge.skip { color: var(--skip); background: var(--skip-bg); border-color: #d1d9e0; }
header.run { background: #fff; border: 1px solid var(--line); border-radius: 12px; overflow: hidden; }
header.run .banner { padding: 20px 24px; color: #fff; }
header.run.pass .banner { background: var(--pass); } header.run.fail .banner { background: var(--fail); }
header.run.skip .banner { background: #9a6700; }
header.run h1 { font-size: 26px; }
header.run .exit { margin: 6px 0 0; opacity: 0.95; }
header.run .exit .code { font-family: var(--mono); font-weight: 700; background: rgba(255,255,255,0.2);
  padding: 1px 8px; border-radius: 6px; margin-right: 6px; }
.tiles { display: flex; flex-wrap: wrap; }
.tile { flex: 1 1 auto; padding: 14px 24px; border-right: 1px solid var(--line); }
.tile:last-child { border-right: 0; }
.tile .label { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); }
.tile .value { font-size: 16px; margin-top: 2px; white-space: nowrap; }
.tile .n { font-weight: 700; } .tile .n.pass { color: var(--pass); } .tile .n.fail { color: var(--fail); }
.tile .n.skip { color: var(--skip); }
.folder { margin: 0; padding: 10px 24px; border-top: 1px solid var(--line); color: var(--muted); font-size: 13px; }
nav.contents, section.scenario { background: #fff; border: 1px solid var(--line); border-radius: 12px;
  margin-top: 20px; padding: 18px 24px; }
nav.contents h2 { font-size: 18px; margin-bottom: 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); font-weight: 600; }
tbody tr:last-child td { border-bottom: 0; }
td a { font-family: var(--mono); font-size: 14px; font-weight: 600; white-space: nowrap; }
td.num.pass { color: var(--pass); } td.num.fail { color: var(--fail); font-weight: 600; }
td.topic { color: var(--muted); white-space: nowrap; } .num { text-align: right; white-space: nowrap; }
section.scenario { border-left: 6px solid var(--skip); }
section.scenario.pass { border-left-color: var(--pass); } section.scenario.fail { border-left-color: var(--fail); }
.head { display: flex; align-items: center; gap: 12px; }
.head h2 { font-family: var(--mono); font-size: 21px; }
.head h2 a { color: var(--ink); }
.title { font-size: 17px; margin: 6px 0 4px; }
.meta { color: var(--muted); font-size: 13px; margin: 0; }
.error { background: var(--fail-bg); border: 1px solid #ffcecb; border-radius: 8px; padding: 10px 14px;
  margin-top: 14px; color: #82071e; }
.error pre { margin-top: 6px; color: var(--ink); }
figure.topology { margin: 0; padding: 12px; background: #fbfcfd; border: 1px solid #eaeef2; border-radius: 8px;
  overflow-x: auto; }
svg.topo { display: block; max-width: none; font-family: var(--mono); }
svg.topo .host rect { fill: #fff; stroke: #424a53; stroke-width: 1.5; }
svg.topo .host.loopback rect { fill: #f6f8fa; stroke: #8c959f; stroke-dasharray: 5 4; }
svg.topo .host-name { font-size: 14px; font-weight: 700; fill: var(--ink); }
svg.topo .lo { font-size: 11px; fill: var(--muted); font-style: italic; }
svg.topo .net-name { font-size: 13px; font-weight: 700; }
svg.topo .subnet { font-size: 11px; fill: var(--muted); }
svg.topo .addr { font-size: 12px; fill: var(--ink); paint-order: stroke; stroke: #fbfcfd; stroke-width: 4px;
  stroke-linejoin: round; }
.prose { margin: 0 0 10px; max-width: 80ch; }
.try { background: #f1f8ff; border: 1px solid #c8e1ff; border-radius: 8px; padding: 10px 16px; margin-top: 12px; }
.try h4 { font-size: 13px; text-transform: uppercase; letter-spacing: 0.05em; color: #0550ae; margin-bottom: 4px; }
.try .prose:last-child { margin-bottom: 0; }
article.check, article.service { border: 1px solid var(--line); border-left: 4px solid var(--pass); border-radius: 8px;
  padding: 12px 16px; margin: 10px 0; background: #fff; }
article.fail { border-left-color: var(--fail); background: #fffafa; }
.check-head { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; }
.check-head h4 { font-size: 15px; }
.check-head .from { color: var(--muted); font-size: 13px; }
.check-head .badge { margin-left: auto; }
.mark { font-weight: 700; font-size: 16px; }
.check.pass .mark { color: var(--pass); } .check.fail .mark { color: var(--fail); }
pre.cmd { background: #24292f; color: #e6edf3; padding: 8px 12px; border-radius: 6px; margin: 8px 0;
  font-size: 12.5px; }
pre.cmd .prompt { color: #7ee787; }
.outcome { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; font-size: 14px; color: var(--muted); }
.outcome .word { font-family: var(--mono); font-size: 13.5px; padding: 2px 9px; border-radius: 6px;
  color: var(--ink); background: #eff2f5; border: 1px solid var(--line); }
.outcome .word.pass { color: var(--pass); background: var(--pass-bg); border-color: #aceebb; }
.outcome .word.fail { color: var(--fail); background: var(--fail-bg); border-color: #ffcecb; }
.outcome .arrow { color: #afb8c1; }
dl.facts { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 8px 0 0; font-size: 13px; }
dl.facts div { display: flex; gap: 6px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; font-family: var(--mono); font-size: 12.5px; }
.why { margin-top: 10px; padding: 8px 12px; border-radius: 6px; background: var(--fail-bg); color: #82071e;
  font-size: 14px; }
.why p { margin: 0; } .why .unmet-title { margin-top: 6px; font-weight: 600; }
.why ul { margin: 4px 0 0; padding-left: 20px; font-family: var(--mono); font-size: 13px; }
details { margin-top: 8px; font-size: 13px; }
summary { cursor: pointer; color: var(--muted); }
details pre { background: var(--paper); border: 1px solid #eaeef2; border-radius: 6px; padding: 8px 12px;
  margin-top: 6px; max-height: 420px; overflow: auto; }
ul.notes { margin: 0; padding-left: 20px; }
.none { color: var(--muted); }
footer { color: var(--muted); font-size: 13px; margin-top: 24px; text-align: center; }
"""
