"""report.html, rendered by a real browser: what a reader sees, and a topology drawing that stays readable.

The page is built from a realistic run (a passing scenario, a failing one
with a multi-homed host and a loopback-only host, a lab that could not be
readied), written by ``reports.write`` as a run would, then opened in
headless Chromium. The tests that need Chromium are marked ``browser``:
without it they fail in CI (``CI`` or ``SOCKLAB_REQUIRE_BROWSER`` set; CI
installs it) and skip locally, saying what to install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from html import unescape
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from socklab import reports
from socklab.reports import html
from socklab.results import (
    Addresses,
    CheckResult,
    HostAddresses,
    Mark,
    RunResult,
    ScenarioResult,
    ServiceResult,
    Status,
)

REQUIRE_BROWSER = bool(os.environ.get("CI") or os.environ.get("SOCKLAB_REQUIRE_BROWSER"))
"""CI installs Chromium: there, a missing browser is a failure, not a reason to skip."""

# -- a realistic run ----------------------------------------------------------


def interface(net: int, host: int, ipv6: bool = True) -> Addresses:
    """Addresses as the lab allocates them: 198.18.N.0/24 and fd50:c1ab:0:N::/64."""
    return Addresses(f"198.18.{net}.{host}", f"fd50:c1ab:0:{net}::{host}" if ipv6 else None,
                     f"198.18.{net}.0/24", f"fd50:c1ab:0:{net}::/64" if ipv6 else None)


def probe_evidence(outcome: str, peer: str, local: str | None = None, errno: str | None = None,
                   detail: str | None = None, elapsed_ms: float = 0.7, sent: int = 12,
                   received: int = 12) -> dict[str, object]:
    """What ``nodes.probe`` prints: the client's own account of the attempt."""
    attempt = {"outcome": outcome, "errno": errno, "detail": detail, "local": local, "peer": peer,
               "elapsed_ms": elapsed_ms, "sent": sent, "received": received,
               "reply": "Hello, world" if received else None, "truncated": False}
    return {**attempt, "proto": "tcp", "target": peer, "attempts": [attempt]}


def probe_command(target: str) -> str:
    return f"python3 -m nodes.probe --proto tcp --timeout 2 --to {target} --send 'Hello, world'"


def passing_scenario() -> ScenarioResult:
    """all-interfaces, as a real run reports it: two hosts on one LAN, every check held."""
    scenario = ScenarioResult(
        "all-interfaces", "A server bound to '' answers on every IPv4 address of its host", "Binding and interfaces",
        explains="An empty host string binds an AF_INET socket to INADDR_ANY (0.0.0.0): the\nsocket accepts "
                 "connections addressed to any IPv4 address of the host.\n\nAn IPv4 socket cannot accept an IPv6 "
                 "connection, so a client that connects to\nthe server's IPv6 address is refused.",
        try_next="Rebind with `--bind :: --dual-stack` and the IPv6 client is served too.",
        lab_id="all-interfaces-3f9a1c", seconds=2.4,
        phase_seconds={"hosts": 1.0, "setup": 0.1, "services": 0.3, "checks": 0.4, "teardown": 0.4},
        hosts={"server": {"lan": interface(7, 2)}, "client": {"lan": interface(7, 3)}},
    )
    scenario.services = [ServiceResult(
        "server-echo", "server", "echo serve --bind '' --port 65432", True,
        log="05:46:44.726 echo listening on tcp 0.0.0.0:65432\n05:46:44.983 echo accepted 198.18.7.3:39104\n"
            "05:46:44.984 echo closed 198.18.7.3:39104 (12 bytes echoed)\n")]
    scenario.checks = [
        CheckResult("another host gets the echo over IPv4", "client", probe_command("198.18.7.2:65432"), "echoed",
                    "echoed", probe_evidence("echoed", "198.18.7.2:65432", "198.18.7.3:39104")),
        CheckResult("an IPv6 client is refused: '' means every IPv4 address", "client",
                    probe_command("'[fd50:c1ab:0:7::2]:65432'"), "refused", "refused",
                    probe_evidence("refused", "[fd50:c1ab:0:7::2]:65432", errno="ECONNREFUSED",
                                   detail="Connection refused", elapsed_ms=0.169, sent=0, received=0)),
    ]
    scenario.conclude()
    return scenario


def failing_scenario() -> ScenarioResult:
    """A router on two networks, a server behind it, a host with loopback only; two checks do not hold."""
    scenario = ScenarioResult(
        "routed-lans", "Two LANs joined by a multi-homed router", "Routing",
        explains="A host on two networks has an address on each; a client reaches the other LAN only\n"
                 "through a route.",
        lab_id="routed-lans-81be20", seconds=3.1,
        hosts={
            "client": {"lan": interface(12, 2)},
            "router": {"lan": interface(12, 3), "dmz": interface(13, 2)},
            "server": {"dmz": interface(13, 3)},
            "isolated": {},
        },
        notes=["router: loss: no sch_netem in this kernel, dropping 20% with iptables -m statistic"],
    )
    scenario.services = [ServiceResult("dmz-echo", "server", "echo serve --bind 198.18.13.3 --port 7", True,
                                       log="06:01:02.000 echo listening on tcp 198.18.13.3:7\n")]
    scenario.checks = [
        CheckResult("the router answers on its LAN address", "client", probe_command("198.18.12.3:7"), "echoed",
                    "echoed", probe_evidence("echoed", "198.18.12.3:7", "198.18.12.2:40112")),
        CheckResult("the client reaches the DMZ server", "client", probe_command("198.18.13.3:7"), "echoed",
                    "net-unreachable", probe_evidence("net-unreachable", "198.18.13.3:7", errno="ENETUNREACH",
                                                      detail="Network is unreachable", sent=0, received=0),
                    detail="expected echoed, observed net-unreachable (ENETUNREACH)"),
        CheckResult("the router's echo is fast", "router", probe_command("198.18.13.3:7"), "echoed", "echoed",
                    probe_evidence("echoed", "198.18.13.3:7", "198.18.13.2:51000", elapsed_ms=512.3),
                    detail="echoed as expected, but elapsed_ms = 512.3, not within [0, 100]",
                    unmet=["elapsed_ms = 512.3, not within [0, 100]"]),
    ]
    scenario.conclude()
    return scenario


def unready_scenario() -> ScenarioResult:
    scenario = ScenarioResult("slow-link", "Delay stretches every round trip", "Link conditions",
                              explains="netem delays every packet.", lab_id="slow-link-0c1d2e",
                              error="delay_ms cannot be emulated on this kernel: it has no sch_netem")
    scenario.conclude()
    return scenario


def realistic_run() -> RunResult:
    return RunResult([passing_scenario(), failing_scenario(), unready_scenario()],
                     started="2026-11-21T05:46:43+00:00", seconds=7.9)


def big_topology() -> HostAddresses:
    """Twelve hosts on three networks, some on two or three, one on none: the largest drawing to stay readable."""
    hosts: HostAddresses = {}
    for number in range(12):
        on = [net for index, net in enumerate(("frontend", "backend", "management")) if (number >> index) & 1 or
              number % 5 == index]
        hosts[f"host-{number:02d}"] = {net: interface(100 + i, 10 + number, ipv6=net != "management")
                                       for i, net in enumerate(("frontend", "backend", "management")) if net in on}
    hosts["host-00"] = {}
    return hosts


# -- the page without a browser -----------------------------------------------


def test_the_layout_draws_every_host_every_network_and_one_line_per_attachment() -> None:
    for hosts in (passing_scenario().hosts, failing_scenario().hosts, big_topology()):
        drawing = html.layout(hosts)
        attachments = sorted((host, net) for host, nets in hosts.items() for net in nets)
        assert [box.name for box in drawing.boxes] == list(hosts)
        assert {bus.name for bus in drawing.buses} == {net for nets in hosts.values() for net in nets}
        assert sorted((link.host, link.network) for link in drawing.links) == attachments
        assert [box.name for box in drawing.boxes if box.loopback_only] == [h for h, nets in hosts.items() if not nets]


def test_the_layout_keeps_boxes_apart_and_lines_between_their_host_and_their_network() -> None:
    drawing = html.layout(big_topology())
    boxes = {box.name: box for box in drawing.boxes}
    buses = {bus.name: bus for bus in drawing.buses}
    for above, below in zip(drawing.boxes, drawing.boxes[1:], strict=False):
        assert above.y + above.height < below.y
    for link in drawing.links:
        box, bus = boxes[link.host], buses[link.network]
        assert link.x1 == box.x + box.width and link.x2 == bus.x
        assert box.y < link.y < box.y + box.height and bus.top < link.y < bus.bottom
    assert len({link.y for link in drawing.links}) == len(drawing.links)  # no two lines on top of each other
    assert max(bus.x for bus in drawing.buses) < drawing.width <= 1060  # fits the page without scrolling


def test_the_layout_is_deterministic() -> None:
    assert html.topology_svg(big_topology()) == html.topology_svg(big_topology())


def test_a_host_on_no_network_is_drawn_alone_as_loopback_only() -> None:
    svg = html.topology_svg({"solo": {}})
    assert "solo" in svg and "loopback only" in svg and "<line" not in svg


def test_everything_shown_is_escaped_and_nothing_is_fetched() -> None:
    run = realistic_run()
    run.scenarios[0].checks[0].name = "<script>alert(1)</script>"
    run.scenarios[1].hosts["<b>evil</b>"] = {"lan": interface(12, 9)}
    page = html.render(run)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page
    assert not re.search(r"<link|\bsrc=|url\(|@import", page)
    assert set(re.findall(r"https?://[^\s\"')]+", page)) == {"http://www.w3.org/2000/svg"}


HOSTILE = "<i>\"'&"
"""Markup, both quotes and an ampersand: text that breaks a page, or an attribute, wherever it is not escaped."""


def hostile_run() -> RunResult:
    """Every string a run carries, from hosts, files and checks, set to markup."""
    h = HOSTILE
    scenario = ScenarioResult(
        f"name{h}", f"title{h}", f"topic{h}", explains=f"prose{h} and `code{h}`\n\nmore{h}", try_next=f"`{h}` {h}",
        lab_id=f"lab{h}", seconds=1.5, phase_seconds={f"phase{h}": 1.0}, error=f"error{h}",
        hosts={f"host{h}": {f"net{h}": Addresses(f"4{h}", f"6{h}", f"s4{h}", f"s6{h}")}, f"alone{h}": {}},
        notes=[f"note{h}"], implementations={f"role{h}": f"file{h}"},
        marks=[Mark(f"role{h}", f"name{h}", f"check{h}", 1.0, 0.0, f"expected{h}", f"observed{h}", f"detail{h}",
                    f"program{h}", restarted=True)],
        services=[ServiceResult(f"service{h}", f"on{h}", f"command{h}", False, detail=f"detail{h}", log=f"log{h}")],
        checks=[CheckResult(f"check{h}", f"from{h}", f"action{h}", f"expected{h}", f"observed{h}",
                            {"errno": f"E{h}", "detail": f"why{h}", "peer": f"peer{h}", f"key{h}": f"value{h}"},
                            detail=f"detail{h}", unmet=[f"claim{h}"])],
        captures={f"capture{h}": b""}, status=Status.FAILED)
    return RunResult([scenario], started=f"started{h}", seconds=2.0, results_dir=f"folder{h}")


def test_every_value_is_escaped_in_text_and_in_attributes_alike() -> None:
    page = html.render(hostile_run())
    assert "<i>" not in page and "\"'&" not in page
    shown = page.count("&lt;i&gt;&#34;&#39;&amp;")
    assert shown >= 40, f"only {shown} of the hostile values are on the page"
    assert 'aria-label="Topology of name&lt;i&gt;&#34;&#39;&amp;: host&lt;i&gt;' in page  # an attribute
    assert "<code>code&lt;i&gt;&#34;&#39;&amp;</code>" in page  # backticks make code, and what is inside is escaped
    assert 'href="captures/name%3Ci%3E%22%27%26/capture%3Ci%3E%22%27%26.pcap"' in page  # a link, URL-quoted


def test_the_templates_escape_everything_and_mark_nothing_safe() -> None:
    environment = html.TEMPLATES
    assert environment.autoescape is True
    assert {"report.html", "topology.svg", "report.css"} <= set(environment.list_templates())
    assert environment.loader is not None
    for name in environment.list_templates():
        source = environment.loader.get_source(environment, name)[0]
        assert not re.search(r"\|\s*safe\b|\bMarkup\b|autoescape\s+false", source), f"{name} marks something safe"
    python = Path(html.__file__).read_text()
    assert not re.search(r"\bMarkup\b|\|\s*safe\b", python)


def test_the_templates_are_package_data_and_the_css_arrives_as_written() -> None:
    templates = resources.files("socklab.reports") / "templates"
    css = (templates / "report.css").read_text(encoding="utf-8")
    page = html.render(realistic_run())
    assert f"<style>\n{css}</style>" in page  # neither escaped nor read as a template: quotes and braces intact
    assert page.startswith("<!DOCTYPE html>\n") and page.endswith("</html>\n")


# -- the page in a browser ----------------------------------------------------


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> str:
    """Debian's Chromium, or a loud failure (CI) / a skip (locally) that says to install it."""
    assert request.node.get_closest_marker("browser"), "a test that opens Chromium is marked @pytest.mark.browser"
    found = shutil.which("chromium")
    if found:
        return found
    message = "no chromium here: these tests render report.html in a real browser; install Debian's chromium " \
              "(apt-get install chromium)"
    if REQUIRE_BROWSER:
        pytest.fail(f"{message}, which CI requires", pytrace=False)
    pytest.skip(message)


def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a profile of its own, so that tests running side by side do not share one."""
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--window-size=1280,2000", *args],
        capture_output=True, text=True, timeout=120, check=True)


class Page(HTMLParser):
    """The rendered DOM, reduced to what the tests read: text per section, SVG text, badges, element ids."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.section = ""
        self.stack: list[tuple[str, str]] = []
        self.text: dict[str, list[str]] = {}
        self.svg_text: dict[str, list[str]] = {}
        self.badges: dict[str, list[str]] = {}
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section":
            self.section = found.get("id") or ""
        self.stack.append((tag, found.get("class") or ""))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass
        if tag == "section":
            self.section = ""

    def handle_data(self, data: str) -> None:
        if not data.strip():
            return
        self.text.setdefault(self.section, []).append(data.strip())
        tags = [tag for tag, _ in self.stack]
        if "svg" in tags and tags[-1] == "text":
            self.svg_text.setdefault(self.section, []).append(data.strip())
        if self.stack and "badge" in self.stack[-1][1].split():
            self.badges.setdefault(self.section, []).append(data.strip())

    def words(self, section: str) -> str:
        return " ".join(self.text.get(section, []))


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """The realistic run written as ``invoke run`` writes it."""
    return reports.write(realistic_run(), reports.new_folder(tmp_path / "results"))


@pytest.mark.browser
def test_the_report_as_a_browser_renders_it(browser: str, written: Path, tmp_path: Path) -> None:
    report = written / "report.html"
    assert report.is_file() and (written / "report.json").is_file()
    page = Page(chromium(browser, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout)

    header = page.words("")
    assert "2 of 5 checks failed, 1 lab could not be readied" in header
    assert "exit 1" in header and "a check failed" in header and "2026-11-21 05:46:43 UTC" in header
    assert page.badges[""] == ["\u2713 passed", "\u2717 failed", "\u2717 failed"]  # the table of contents

    names = ("all-interfaces", "routed-lans", "slow-link")
    passed, failed, unready = (page.words(f"scenario-{name}") for name in names)
    assert page.badges["scenario-all-interfaces"] == ["\u2713 passed", "\u2713 ready"]
    assert page.badges["scenario-routed-lans"][0] == "\u2717 failed"
    assert "A server bound to '' answers on every IPv4 address of its host" in passed
    assert "INADDR_ANY (0.0.0.0): the socket accepts connections" in passed  # hard-wrapped prose, rejoined
    assert "--bind :: --dual-stack" in passed and "Try next" in passed
    assert "expected refused" in passed and "observed refused" in passed
    assert "ECONNREFUSED (Connection refused)" in passed
    assert "05:46:44.983 echo accepted 198.18.7.3:39104" in passed  # the service log

    assert "expected echoed" in failed and "observed net-unreachable" in failed and "ENETUNREACH" in failed
    assert "elapsed_ms = 512.3, not within [0, 100]" in failed and "Claims that did not hold" in failed
    assert "512.3 ms" in failed and "no sch_netem in this kernel" in failed

    assert "could not be readied" in unready and "has no sch_netem" in unready and "No check was made" in unready

    drawn = page.svg_text["scenario-routed-lans"]
    for label in ("client", "router", "server", "isolated", "loopback only", "lan", "dmz", "198.18.12.0/24",
                  "fd50:c1ab:0:13::/64", "198.18.12.3", "198.18.13.2", "fd50:c1ab:0:13::2", "198.18.13.3"):
        assert label in drawn, f"{label!r} is not drawn in the topology: {drawn}"
    assert {"server", "client", "198.18.7.2", "198.18.7.3", "fd50:c1ab:0:7::3"} <= set(page.svg_text[
        "scenario-all-interfaces"])
    assert "scenario-slow-link" not in page.svg_text  # the lab never came up: nothing to draw


MEASURE = """<script>
/* Test only: what the browser laid out. Text that overlaps other text or a network bus, or leaves its drawing,
   is unreadable; so is a page wider than the window. */
const problems = [];
const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
for (const svg of document.querySelectorAll("svg.topo")) {
  const texts = [...svg.querySelectorAll("text")].map(t => [t.textContent, t.getBBox()]);
  const buses = [...svg.querySelectorAll("rect.bus")].map(r => r.getBBox());
  const box = svg.viewBox.baseVal;
  texts.forEach(([text, b], i) => {
    const inside = b.x >= 0 && b.y >= 0 && b.x + b.width <= box.width && b.y + b.height <= box.height;
    if (!inside) problems.push("outside: " + text);
    texts.slice(i + 1).forEach(([other, c]) => { if (overlap(b, c)) problems.push(text + " overlaps " + other); });
    buses.forEach(c => { if (overlap(b, c)) problems.push(text + " overlaps a bus"); });
  });
}
if (document.documentElement.scrollWidth > window.innerWidth) problems.push("the page is wider than the window");
document.body.setAttribute("data-problems", JSON.stringify(problems));
</script>"""


@pytest.mark.browser
def test_every_drawing_stays_readable_in_a_browser(browser: str, tmp_path: Path) -> None:
    run = realistic_run()
    big = ScenarioResult("twelve-hosts", "Three networks, twelve hosts", "Layout", "The largest drawing.",
                         hosts=big_topology(), status=Status.SKIPPED)
    run.scenarios.append(big)
    measured = tmp_path / "measured.html"
    measured.write_text(html.render(run).replace("</body>", MEASURE + "\n</body>"), encoding="utf-8")
    dom = chromium(browser, tmp_path / "profile", "--dump-dom", measured.as_uri()).stdout
    found = re.search(r'data-problems="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    assert json.loads(unescape(found.group(1))) == []


@pytest.mark.browser
def test_a_screenshot_of_the_report_is_a_real_picture(browser: str, written: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(browser, tmp_path / "profile", f"--screenshot={shot}", (written / "report.html").as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 2000)
    assert len(png) > 40_000, f"a {len(png)} byte screenshot is nearly blank"
    pixels = zlib.decompress(b"".join(_chunks(png, b"IDAT")))
    assert len(set(pixels)) > 64, "the screenshot is a flat colour"


def _chunks(png: bytes, kind: bytes) -> list[bytes]:
    """The data of every PNG chunk of one kind."""
    found, at = [], 8
    while at < len(png):
        length, name = struct.unpack(">I4s", png[at:at + 8])
        if name == kind:
            found.append(png[at + 8:at + 8 + length])
        at += 12 + length
    return found


def test_an_interrupted_run_says_so_and_what_its_exit_status_means() -> None:
    run = RunResult([passing_scenario(), ScenarioResult("slow-link", "Delay", "Link conditions", "netem.",
                                                           status=Status.SKIPPED)],
                    started="not a time", seconds=75.2, interrupted=True)
    page = html.render(run)
    assert "Interrupted before every scenario ran" in page and "exit 130" in page
    assert "interrupted: every lab was torn down first" in page and "1 min 15 s" in page and "not a time" in page
    assert "No check was made: the run was interrupted first." in page


