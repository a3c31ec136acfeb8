"""Ladders from a real captured run, as a browser shows them in report.html.

A small scenario of its own (written here, so the catalogue's lessons can
change freely) makes its checks side by side: TCP to a closed port (SYN,
then the server kernel's RST), connected and unconnected UDP to that same
port (a datagram, then ICMP port unreachable), and an echo over loopback on
the server. It runs in a real lab with ``capture=True``, its results are
written as ``invoke run --capture`` writes them, and headless Chromium
opens report.html: each check has its own ladder, with its own packets, in
order, each arrow from sender to receiver, and nothing drawn over anything.
"""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from socklab import reports, runner, scenario
from socklab.results import RunResult
from tests.unit.test_html_report import browser, chromium  # noqa: F401 (browser: a fixture)

SCENARIO = """
[scenario]
name = "ladders"
topic = "Failures a client sees"
title = "A closed port, over TCP and UDP, and an echo over loopback, side by side"
explains = "The server's kernel answers a SYN to a closed port with a RST, a datagram with ICMP port unreachable."
parallel_checks = true

[networks.lan]

[hosts.server]
networks = ["lan"]

[hosts.client]
networks = ["lan"]

[[services]]
host = "server"
run = "echo serve --bind 127.0.0.1 --port 7"
ready = "tcp://127.0.0.1:7"

[[checks]]
name = "refused TCP"
host = "client"
probe = { proto = "tcp", to = "{server.lan.ipv4}:65432", timeout = 1 }
expect = "refused"

[[checks]]
name = "connected UDP to a closed port"
host = "client"
probe = { proto = "udp", to = "{server.lan.ipv4}:65432", connected = true, timeout = 1 }
expect = "refused"

[[checks]]
name = "unconnected UDP to a closed port"
host = "client"
probe = { proto = "udp", to = "{server.lan.ipv4}:65432", timeout = 1 }
expect = "timeout"

[[checks]]
name = "echo over loopback"
host = "server"
probe = { proto = "tcp", to = "127.0.0.1:7", send = "Hello, world", timeout = 2 }
expect = "echoed"
"""

MEASURE = """<script>
/* Test only: open every ladder, then see what the browser laid out. Text that overlaps other text, or leaves
   its drawing, is unreadable; so is a page wider than the window. */
for (const details of document.querySelectorAll("details.wire")) details.open = true;
const problems = [];
const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
for (const svg of document.querySelectorAll("svg.ladder")) {
  const texts = [...svg.querySelectorAll("text")].map(t => [t.textContent, t.getBBox()]);
  const box = svg.viewBox.baseVal;
  texts.forEach(([text, b], i) => {
    const inside = b.x >= 0 && b.y >= 0 && b.x + b.width <= box.width && b.y + b.height <= box.height;
    if (!inside) problems.push("outside: " + text);
    texts.slice(i + 1).forEach(([other, c]) => { if (overlap(b, c)) problems.push(text + " overlaps " + other); });
  });
  if (svg.getBoundingClientRect().height < 40) problems.push("a ladder is not drawn");
}
if (document.documentElement.scrollWidth > window.innerWidth) problems.push("the page is wider than the window");
document.body.setAttribute("data-problems", JSON.stringify(problems));
</script>"""


class Ladders(HTMLParser):
    """The DOM's ladders, by check: the summary line, the lanes, and each arrow's label, detail and words."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.check = ""  # the check whose card we are in
        self.found: dict[str, dict[str, list[str]]] = {}
        self.open: list[str] = []  # the classes of the elements we are in
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.open.append(f"{tag}.{found.get('class') or ''}")
        if tag == "svg" and found.get("class") == "ladder":
            self.found[self.check]["aria"] = [found.get("aria-label") or ""]

    def handle_endtag(self, tag: str) -> None:
        while self.open and not self.open.pop().startswith(f"{tag}."):
            pass

    def handle_data(self, data: str) -> None:
        if not data.strip() or not self.open:
            return
        where = self.open[-1]
        if where == "h4." and any(element.startswith("article.check") for element in self.open):
            self.check = data.strip()
            self.found[self.check] = {}
        elif self.check not in self.found:
            return
        elif where == "summary." and data.startswith("Packets on the wire"):
            self.found[self.check]["summary"] = [data.strip()]
        elif where in ("text.label", "text.detail", "text.lane-name", "text.time"):
            self.found[self.check].setdefault(where.partition(".")[2], []).append(data.strip())


def without_arp(labels: list[str]) -> list[str]:
    """An ARP exchange goes to whichever attempts waited for it: side by side, that varies from run to run."""
    return [label for label in labels if not label.startswith("ARP")]


@pytest.mark.browser
def test_a_captured_run_draws_each_checks_packets_in_a_browser(backend, browser: str,  # noqa: F811
                                                               tmp_path: Path) -> None:
    path = tmp_path / "ladders.toml"
    path.write_text(SCENARIO)
    result = runner.run_scenario(scenario.load(path), backend, capture=True)
    assert result.status == "passed", [(c.name, c.observed, c.detail) for c in result.checks] or result.error
    assert all(c.started_at and c.ended_at >= c.started_at for c in result.checks)
    folder = reports.write(RunResult([result], "now", 1.0), reports.new_folder(tmp_path / "results"))
    report = json.loads((folder / "report.json").read_text())
    assert all(check["started_at"] for check in report["scenarios"][0]["checks"])

    measured = folder / "measured.html"
    measured.write_text((folder / "report.html").read_text().replace("</body>", MEASURE + "\n</body>"))
    dom = chromium(browser, tmp_path / "profile", "--window-size=1280,4000", "--dump-dom", measured.as_uri()).stdout
    problems = re.search(r'data-problems="([^"]*)"', dom)
    assert problems, "the measuring script did not run"
    assert json.loads(unescape(problems.group(1))) == []
    ladders = Ladders(dom).found
    assert set(ladders) == {c.name for c in result.checks} and all("label" in found for found in ladders.values())
    server = result.hosts["server"]["lan"].ipv4
    client = result.hosts["client"]["lan"].ipv4
    evidence = {c.name: c.evidence for c in result.checks}

    refused = ladders["refused TCP"]
    assert without_arp(refused["label"]) == ["SYN", "RST, ACK"]
    assert refused["lane-name"] == ["client", "server"]
    aria = refused["aria"][0]
    assert re.search(r"client to server: \+[\d.]+ ms · SYN · :\d+ → :65432 seq 0", aria), aria
    assert re.search(r"server to client: \+[\d.]+ ms · RST, ACK · :65432 → :\d+ seq 0 ack 1", aria), aria
    assert refused["summary"][0].endswith("SYN → RST, ACK")

    for name in ("connected UDP to a closed port", "unconnected UDP to a closed port"):
        drawn = ladders[name]
        assert without_arp(drawn["label"]) == ["UDP len 4", "ICMP port unreachable"], name
        port = evidence[name]["local"].rpartition(":")[2]  # this check's own datagram, not its neighbour's
        assert f"quotes UDP {client}:{port} → {server}:65432" in drawn["detail"], (name, drawn["detail"])
        assert re.search(r"server to client: [^;]*ICMP port unreachable", drawn["aria"][0])

    echo = ladders["echo over loopback"]
    port = evidence["echo over loopback"]["local"].rpartition(":")[2]
    assert echo["lane-name"] == [f"server :{port}", "server :7"]  # one host, two sockets
    assert echo["label"][:3] == ["SYN", "SYN, ACK", "ACK"]
    assert "PSH, ACK len 12" in echo["label"] and "FIN, ACK" in echo["label"]
