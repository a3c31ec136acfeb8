"""No leftovers, no collisions, clear errors: against a real engine, at every moment of a run.

What these tests look for on the engine, and sweep after breaking a run on
purpose, is limited to this test run's labs (``tests.helpers``): a lab of
the same scenario name made by anybody else is neither seen nor removed.
Waits are for events (a lab up, a run ended); their bounds only stop a hang,
with room for a loaded machine.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import docker
from socklab import commands, runner, scenario
from socklab.constants import LABEL_LAB, LABEL_OWNER, LABEL_SCENARIO, owner
from socklab.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from socklab.results import Status
from tests.helpers import ANYONE, ROOT, invoke, labelled, remove_labelled

MOMENTS = 24  # distinct moments of a run at which a signal arrives
HANG = 600  # s: a bound that only stops a hung run or wait; a loaded machine is far inside it


def unique_scenario(tmp_path: Path, name: str, base: str = "tcp-echo") -> Path:
    """A catalogue scenario under a name of its own, so its resources are told apart by label."""
    path = tmp_path / f"{name}.toml"
    path.write_text((ROOT / "scenarios" / f"{base}.toml").read_text().replace(f'name = "{base}"', f'name = "{name}"'))
    return path


def running_hosts(name: str) -> int:
    """How many hosts of this run's labs of the scenario ``name`` are running."""
    api = docker.from_env().api
    found = api.containers(filters={"label": [f"{LABEL_SCENARIO}={name}", f"{LABEL_OWNER}={owner()}"]})
    return len(found)


def wait_until_up(name: str, run: subprocess.Popen[str] | None = None) -> None:
    """Until both hosts of the scenario ``name`` run; ``run``, if given, must not end before that."""
    deadline = time.monotonic() + HANG
    while running_hosts(name) < 2:
        assert run is None or run.poll() is None, "the run ended before its lab was up"
        assert time.monotonic() < deadline, "the lab never came up"
        time.sleep(0.02)


def drive(signame: str, at: int, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.integration.interrupt_driver", signame, str(at), str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG)


@pytest.fixture(scope="module")
def requests_per_run(engine, tmp_path_factory) -> int:
    """How many engine requests one undisturbed run makes: the moments there are to interrupt."""
    path = unique_scenario(tmp_path_factory.mktemp("dry"), "interrupt-dry-run")
    result = drive("INT", 0, path)
    assert result.returncode == EXIT_OK, result.stderr
    return int(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("moment", range(1, MOMENTS + 1))
def test_a_signal_at_any_moment_leaves_nothing(moment: int, requests_per_run: int, tmp_path: Path) -> None:
    """Moments spread over the whole run: networks, hosts, nodes/ copy, services, checks, teardown."""
    at = math.ceil(moment * requests_per_run / MOMENTS)
    signame = "INT" if moment % 2 else "TERM"
    name = f"interrupt-{moment}-{signame.lower()}"
    result = drive(signame, at, unique_scenario(tmp_path, name))
    try:
        assert result.returncode == EXIT_INTERRUPTED, f"request {at}/{requests_per_run}: {result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr
        left = labelled(f"{LABEL_SCENARIO}={name}")
        if left:  # a failure, either way; whether the engine was only slow to finish tells where to look
            time.sleep(2)
            later = "still there" if labelled(f"{LABEL_SCENARIO}={name}") else "gone 2 s later"
            pytest.fail(f"SIG{signame} at request {at} of {requests_per_run} left {left} ({later}); "
                        f"the run said:\n{result.stderr[-3000:]}")
    finally:
        remove_labelled(f"{LABEL_SCENARIO}={name}")


def subnets_of(name: str) -> set[str]:
    """The subnets of this run's networks of the scenario ``name``, as the engine has them now."""
    api = docker.from_env().api
    found = api.networks(filters={"label": [f"{LABEL_SCENARIO}={name}", f"{LABEL_OWNER}={owner()}"]})
    return {config["Subnet"] for network in found for config in (network.get("IPAM") or {}).get("Config") or []}


def hold_until_both_up(runs: list[subprocess.Popen[str]], names: list[str]) -> list[set[str]]:
    """The subnets of both runs' labs at a moment they both exist.

    Whichever lab comes up first has its run held (SIGSTOP) until the other
    lab's network exists, so that the two labs are certainly up at once,
    however the machine is loaded; the caller lets it go on (SIGCONT).
    """
    deadline, held = time.monotonic() + HANG, None
    while True:
        subnets = [subnets_of(name) for name in names]
        if all(subnets):
            return subnets
        for index, run in enumerate(runs):
            if run.poll() is not None:
                pytest.fail(f"run {index} ended before both labs were up:\n{run.communicate()[1][-3000:]}")
        if held is None and any(subnets):
            held = [bool(found) for found in subnets].index(True)
            runs[held].send_signal(signal.SIGSTOP)
        assert time.monotonic() < deadline, "the labs never came up"
        time.sleep(0.02)


def test_two_runs_at_once_never_collide(engine, tmp_path: Path) -> None:
    """Two runs side by side: their labs, up at the same moment, have their own ids and subnets, and both pass."""
    names = ["twin-0", "twin-1"]
    paths = [unique_scenario(tmp_path, name, "loopback-only") for name in names]
    runs = [subprocess.Popen([sys.executable, "-m", "invoke", "run", str(p), "--json", "--results", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in paths]
    try:
        at_once = hold_until_both_up(runs, names)
    finally:
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGCONT)
    assert not at_once[0] & at_once[1], f"two labs up at once share a subnet: {at_once}"
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=HANG)
        assert run.returncode == EXIT_OK, err
        reports.append(json.loads(out))
    subnets = [r["scenarios"][0]["hosts"]["server"]["lan"]["subnet4"] for r in reports]
    labs = [r["scenarios"][0]["lab_id"] for r in reports]
    assert subnets[0] in at_once[0] and subnets[1] in at_once[1], (subnets, at_once)
    assert labs[0] != labs[1]
    assert labelled(f"{LABEL_SCENARIO}=twin-0") == labelled(f"{LABEL_SCENARIO}=twin-1") == []


def test_a_service_that_never_gets_ready_fails_in_bounded_time_with_its_log(backend, tmp_path: Path) -> None:
    path = unique_scenario(tmp_path, "never-ready")
    path.write_text(path.read_text().replace('ready = "tcp://0.0.0.0:65432"', 'ready = "tcp://0.0.0.0:65000"'))
    started = time.monotonic()
    result = runner.run_scenario(scenario.load(path), backend)
    # The readiness wait is what ended it (its own message); the bound only tells a hang from a loaded machine.
    assert time.monotonic() - started < commands.READY_LIMIT + HANG / 4, "a service that never gets ready hung the run"
    assert result.status == Status.FAILED and "did not become ready in time" in result.error
    (service,) = result.services
    assert not service.ready and "listening on tcp 0.0.0.0:65432" in service.log


class EngineProxy:
    """Stands between a client and the engine's socket, and can cut the line, as an engine that dies would.

    It can also answer a kind of request itself, as a failing engine would:
    ``refuse(b"/containers/create", message)`` answers every request whose
    first line holds that with a 500 and ``message``, passing nothing on.
    """

    def __init__(self, path: Path, engine_socket: str) -> None:
        self.path, self.engine_socket = path, engine_socket
        self.refusals: dict[bytes, str] = {}
        self.clients: set[socket.socket] = set()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.open: list[socket.socket] = []
        self.cut_event = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while not self.cut_event.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                if key.fileobj is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.socket(socket.AF_UNIX)
                    upstream.connect(self.engine_socket)
                    self.open += [client, upstream]
                    self.clients.add(client)
                    self.selector.register(client, selectors.EVENT_READ, upstream)
                    self.selector.register(upstream, selectors.EVENT_READ, client)
                    continue
                source: socket.socket = key.fileobj  # type: ignore[assignment]  # only sockets are registered
                sink: socket.socket = key.data
                try:
                    data = source.recv(65536)
                    if data and source in self.clients and (answer := self._refusal(data)):
                        source.sendall(answer)  # then the line closes: the request's body, if any, goes nowhere
                    elif data:
                        sink.sendall(data)
                        continue
                except OSError:
                    pass
                for end in (source, sink):
                    if end in self.open:
                        self.selector.unregister(end)
                        end.close()
                        self.open.remove(end)

    def refuse(self, request: bytes, message: str) -> None:
        self.refusals[request] = message

    def _refusal(self, data: bytes) -> bytes:
        first_line = data.split(b"\r\n", 1)[0]
        for request, message in self.refusals.items():
            if request in first_line:
                body = json.dumps({"message": message}).encode()
                return (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        return b""

    def cut(self) -> None:
        self.cut_event.set()
        self.thread.join()
        for sock in [self.listener, *self.open]:
            sock.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def proxy(engine, tmp_path: Path) -> Iterator[EngineProxy]:
    engine_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not engine_host.startswith("unix://"):
        pytest.fail(f"the proxy test needs a local engine socket, not {engine_host}")
    line = EngineProxy(tmp_path / "engine.sock", engine_host.removeprefix("unix://"))
    yield line
    line.cut()


def test_an_engine_that_stops_mid_run_is_a_clear_error(proxy: EngineProxy, tmp_path: Path) -> None:
    name = "engine-dies"
    path = unique_scenario(tmp_path, name, "loopback-only")
    path.write_text(path.read_text().replace('send = "Hello, world" }', 'send = "Hello, world", timeout = 5 }'))
    run = subprocess.Popen([sys.executable, "-m", "invoke", "run", str(path), "--results", str(tmp_path)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "DOCKER_HOST": f"unix://{proxy.path}"})
    try:
        wait_until_up(name, run)
        proxy.cut()
        out, err = run.communicate(timeout=HANG)
        assert run.returncode == EXIT_BAD_INPUT, out + err
        assert "The Docker engine stopped answering" in err and "invoke clean" in err
        assert "Traceback" not in err
    finally:
        run.kill()
        remove_labelled(f"{LABEL_SCENARIO}={name}")


@pytest.mark.parametrize(("says", "resource"), [
    ("failed to create shim task: write /var/lib/docker/overlay2/x: no space left on device", "disk space"),
    ("OCI runtime create failed: fork/exec /proc/self/exe: cannot allocate memory", "memory"),
])
def test_an_engine_out_of_disk_or_memory_while_creating_a_lab_is_a_clear_error_and_leaves_nothing(
        proxy: EngineProxy, tmp_path: Path, says: str, resource: str) -> None:
    """The engine refuses to create a host: the networks already made go too, and the run says why, exit 2."""
    name = f"engine-out-of-{resource.split()[0]}"
    proxy.refuse(b"/containers/create", says)
    results = tmp_path / "results"
    try:
        result = invoke("run", str(unique_scenario(tmp_path, name, "loopback-only")), "--results", str(results),
                        env={"DOCKER_HOST": f"unix://{proxy.path}"})
        assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
        assert f"ran out of {resource} while creating lab" in result.stderr and f"of {name}" in result.stderr
        assert says in result.stderr and "Fix:" in result.stderr and "Traceback" not in result.stderr
        assert labelled(f"{LABEL_SCENARIO}={name}") == [], "the lab's networks were left behind"
        (folder,) = [p for p in results.iterdir() if p.is_dir()]
        assert json.loads((folder / "report.json").read_text())["complete"] is False  # whole, and says it
    finally:
        remove_labelled(f"{LABEL_SCENARIO}={name}")


@pytest.mark.exclusive
def test_sigkill_leaves_what_clean_removes_and_clean_is_idempotent(engine, tmp_path: Path) -> None:
    name = "killed-hard"
    run = subprocess.Popen([sys.executable, "-m", "invoke", "up", str(unique_scenario(tmp_path, name))], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(name)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert labelled(f"{LABEL_SCENARIO}={name}"), "SIGKILL gives no chance to clean up"
        first, second = invoke("clean", "--everyone", "--yes"), invoke("clean", "--everyone", "--yes")
        assert first.returncode == second.returncode == EXIT_OK
        assert labelled(f"{LABEL_SCENARIO}={name}") == []
        assert second.stdout.startswith("removed 0 ")
        assert labelled(LABEL_LAB, owner=ANYONE) == []  # exclusive: nobody's lab is left
    finally:
        remove_labelled(f"{LABEL_SCENARIO}={name}")


@pytest.mark.exclusive
def test_clean_during_a_run_ends_it_with_a_clear_error(engine, tmp_path: Path) -> None:
    name = "cleaned-under-foot"
    path = unique_scenario(tmp_path, name, "loopback-only")
    run = subprocess.Popen([sys.executable, "-m", "invoke", "run", str(path), "--results", str(tmp_path)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(name, run)
        assert invoke("clean", "--everyone", "--yes").returncode == EXIT_OK
        out, err = run.communicate(timeout=HANG)
        # 2: the run saw its hosts go, whatever it was doing; 0: it had just finished. Never a failed check.
        assert run.returncode in (EXIT_BAD_INPUT, EXIT_OK), out + err
        assert "Traceback" not in err
        assert labelled(f"{LABEL_SCENARIO}={name}") == []
    finally:
        run.kill()
        remove_labelled(f"{LABEL_SCENARIO}={name}")


@pytest.mark.exclusive
def test_a_full_subnet_pool_is_a_clear_error_and_creates_nothing(engine, tmp_path: Path) -> None:
    client = docker.from_env()
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="198.18.0.0/15")])
    filler = client.networks.create("socklab-test-pool-filler", internal=True, ipam=ipam,
                                    labels={LABEL_LAB: "pool-filler", LABEL_OWNER: owner()})
    try:
        results = tmp_path / "results"
        result = invoke("run", str(unique_scenario(tmp_path, "no-room")), "--results", str(results))
        assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
        assert "no free subnet left" in result.stderr and "invoke clean" in result.stderr
        assert "Traceback" not in result.stderr
        assert labelled(f"{LABEL_SCENARIO}=no-room") == []
        (folder,) = [p for p in results.iterdir() if p.is_dir()]  # the run's record: whole, and says it is not
        assert json.loads((folder / "report.json").read_text())["complete"] is False
    finally:
        filler.remove()


def test_a_run_killed_mid_way_leaves_a_report_of_every_check_made_and_says_it_is_incomplete(
        engine, tmp_path: Path) -> None:
    """SIGKILL after the first scenario's checks: its folder holds them, whole, and latest never points at it."""
    first, second = unique_scenario(tmp_path, "journal-first"), unique_scenario(tmp_path, "journal-second")
    results = tmp_path / "results"
    run = subprocess.Popen([sys.executable, "-m", "invoke", "run", f"{first},{second}", "-j", "1",
                            "--results", str(results)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + HANG
        while not any(s.get("status") == "passed" for s in _journal(results).get("scenarios", [])):
            assert run.poll() is None and time.monotonic() < deadline, "the first scenario never finished"
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait()
    finally:
        remove_labelled(f"{LABEL_SCENARIO}=journal-first")
        remove_labelled(f"{LABEL_SCENARIO}=journal-second")
    (folder,) = [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()]
    written = json.loads((folder / "report.json").read_text())
    assert written["complete"] is False and (folder / "INCOMPLETE").exists()
    done = written["scenarios"][0]
    assert done["name"] == "journal-first" and done["status"] == "passed" and len(done["checks"]) == 3
    assert written["scenarios"][1]["status"] == "pending"
    assert not (results / "latest").exists(), "latest points only at a run whose reports are written"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "no half-written file is left"


def _journal(results: Path) -> dict:
    """The report.json of the one run under ``results``, as far as it is written ({} before it is)."""
    for path in results.glob("*/report.json"):
        return json.loads(path.read_text())  # written whole, or not yet there: never half
    return {}
