"""Packet captures, read back with tcpdump -r: the lesson's packets are really in them."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from socklab import reports, runner, scenario
from socklab.lab import Lab
from socklab.model import Command, Host, Network, Service
from socklab.results import RunResult
from tests.helpers import REQUIRE_DOCKER, ROOT


@pytest.fixture(scope="module")
def tcpdump() -> str:
    found = shutil.which("tcpdump")
    if not found:
        message = "reading captures back needs tcpdump on this machine (Debian's tcpdump)"
        if REQUIRE_DOCKER:
            pytest.fail(message)
        pytest.skip(message)
    return found


def read(tcpdump: str, pcap: Path) -> str:
    return subprocess.run([tcpdump, "-nn", "-A", "-r", str(pcap)], capture_output=True, text=True, check=True).stdout


def test_a_captured_run_holds_each_hosts_interfaces(backend, tcpdump: str, tmp_path: Path) -> None:
    result = runner.run_scenario(scenario.load(ROOT / "scenarios" / "loopback-only.toml"), backend, capture=True)
    assert result.status == "passed", result.error
    assert set(result.captures) == {"server-lo", "server-eth0", "client-lo", "client-eth0"}
    folder = reports.write(RunResult([result], "now", 1.0), reports.new_folder(tmp_path))
    captures = folder / "captures" / "loopback-only"
    # Its own host's echo went over lo: handshake and the message.
    on_lo = read(tcpdump, captures / "server-lo.pcap")
    assert "127.0.0.1.65432: Flags [S]" in on_lo and "Flags [S.]" in on_lo and "Hello, world" in on_lo
    # The other host's SYN reached the LAN interface and was answered by a RST.
    on_lan = read(tcpdump, captures / "server-eth0.pcap")
    server = result.hosts["server"]["lan"].ipv4
    assert f"> {server}.65432: Flags [S]" in on_lan and f"{server}.65432 >" in on_lan and "Flags [R.]" in on_lan
    assert "Hello, world" not in on_lan


def test_a_live_capture_records_until_interrupted(backend, tcpdump: str, tmp_path: Path) -> None:
    echo = Service("echo", "server", Command.parse("echo serve --bind '' --port 7000"), ready="tcp://0.0.0.0:7000")
    hosts = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
    pcap = tmp_path / "live.pcap"
    with Lab.open(backend, "live-capture", {"lan": Network("lan")}, hosts) as lab:
        assert lab.start_service(echo).ready
        recorder = subprocess.Popen([sys.executable, "-m", "invoke", "capture", "server", "--lab", lab.id,
                                     "--interface", "eth0", "--output", str(pcap)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # tcpdump writes the pcap header as soon as it listens: the event awaited (the bound only stops a hang)
            deadline = time.monotonic() + 300
            while not (pcap.exists() and pcap.stat().st_size >= 24):
                assert recorder.poll() is None, f"the capture ended before it listened: {recorder.communicate()}"
                assert time.monotonic() < deadline, "tcpdump never started listening"
                time.sleep(0.05)
            assert lab.probe("client", to="{server.lan.ipv4}:7000", send="captured live").outcome == "echoed"
            recorder.send_signal(signal.SIGINT)
            out, err = recorder.communicate(timeout=300)
        finally:
            recorder.kill()
    assert recorder.returncode == 0, err
    assert f"wrote {pcap.stat().st_size} bytes" in out
    packets = read(tcpdump, pcap)
    assert ".7000: Flags [S]" in packets and "captured live" in packets
