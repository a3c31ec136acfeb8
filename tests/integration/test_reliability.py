"""No leftovers, no collisions, clear errors: against a real engine, at every moment of a run."""

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
from socklab import runner, scenario
from socklab.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from socklab.results import Status
from tests.conftest import ROOT, invoke, labelled, remove_labelled

MOMENTS = 24  # distinct moments of a run at which a signal arrives


def unique_scenario(tmp_path: Path, name: str, base: str = "tcp-echo") -> Path:
    """A catalogue scenario under a name of its own, so its resources are told apart by label."""
    path = tmp_path / f"{name}.toml"
    path.write_text((ROOT / "scenarios" / f"{base}.toml").read_text().replace(f'name = "{base}"', f'name = "{name}"'))
    return path


def wait_until_up(name: str, run: subprocess.Popen[str] | None = None) -> None:
    """Until both hosts of the scenario ``name`` run; ``run``, if given, must not end before that."""
    api, deadline = docker.from_env().api, time.monotonic() + 60
    while len(api.containers(filters={"label": f"socklab.scenario={name}"})) < 2:
        assert time.monotonic() < deadline and (run is None or run.poll() is None), "the lab never came up"
        time.sleep(0.02)


def drive(signame: str, at: int, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.integration.interrupt_driver", signame, str(at), str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def requests_per_run(engine, tmp_path_factory) -> int:  # type: ignore[no-untyped-def]
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
        left = labelled(f"socklab.scenario={name}")
        if left:  # a failure, either way; whether the engine was only slow to finish tells where to look
            time.sleep(2)
            later = "still there" if labelled(f"socklab.scenario={name}") else "gone 2 s later"
            pytest.fail(f"SIG{signame} at request {at} of {requests_per_run} left {left} ({later}); "
                        f"the run said:\n{result.stderr[-3000:]}")
    finally:
        remove_labelled(f"socklab.scenario={name}")


def test_two_runs_at_once_never_collide(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = [unique_scenario(tmp_path, f"twin-{i}", "loopback-only") for i in range(2)]
    runs = [subprocess.Popen([sys.executable, "-m", "invoke", "run", str(p), "--json", "--results", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in paths]
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == EXIT_OK, err
        reports.append(json.loads(out))
    subnets = [r["scenarios"][0]["hosts"]["server"]["lan"]["subnet4"] for r in reports]
    labs = [r["scenarios"][0]["lab_id"] for r in reports]
    assert subnets[0] != subnets[1] and labs[0] != labs[1]
    assert labelled("socklab.scenario=twin-0") == labelled("socklab.scenario=twin-1") == []


def test_a_service_that_never_gets_ready_fails_in_bounded_time_with_its_log(backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = unique_scenario(tmp_path, "never-ready")
    path.write_text(path.read_text().replace('ready = "tcp://0.0.0.0:65432"', 'ready = "tcp://0.0.0.0:65000"'))
    started = time.monotonic()
    result = runner.run_scenario(scenario.load(path), backend)
    assert time.monotonic() - started < 60, "a service that never gets ready must not hang the run"
    assert result.status == Status.FAILED and "did not become ready in time" in result.error
    (service,) = result.services
    assert not service.ready and "listening on tcp 0.0.0.0:65432" in service.log


class EngineProxy:
    """Stands between a client and the engine's socket, and can cut the line, as an engine that dies would."""

    def __init__(self, path: Path, engine_socket: str) -> None:
        self.path, self.engine_socket = path, engine_socket
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
                    self.selector.register(client, selectors.EVENT_READ, upstream)
                    self.selector.register(upstream, selectors.EVENT_READ, client)
                    continue
                source, sink = key.fileobj, key.data
                try:
                    data = source.recv(65536)  # type: ignore[union-attr]
                    if data:
                        sink.sendall(data)
                        continue
                except OSError:
                    pass
                for end in (source, sink):
                    if end in self.open:
                        self.selector.unregister(end)
                        end.close()  # type: ignore[union-attr]
                        self.open.remove(end)  # type: ignore[arg-type]

    def cut(self) -> None:
        self.cut_event.set()
        self.thread.join()
        for sock in [self.listener, *self.open]:
            sock.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def proxy(engine, tmp_path: Path) -> Iterator[EngineProxy]:  # type: ignore[no-untyped-def]
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
        out, err = run.communicate(timeout=60)
        assert run.returncode == EXIT_BAD_INPUT, out + err
        assert "The Docker engine stopped answering" in err and "invoke clean" in err
        assert "Traceback" not in err
    finally:
        run.kill()
        remove_labelled(f"socklab.scenario={name}")


@pytest.mark.exclusive
def test_sigkill_leaves_what_clean_removes_and_clean_is_idempotent(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = "killed-hard"
    run = subprocess.Popen([sys.executable, "-m", "invoke", "up", str(unique_scenario(tmp_path, name))], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(name)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert labelled(f"socklab.scenario={name}"), "SIGKILL gives no chance to clean up"
        first, second = invoke("clean"), invoke("clean")
        assert first.returncode == second.returncode == EXIT_OK
        assert labelled(f"socklab.scenario={name}") == []
        assert second.stdout.startswith("removed 0 ")
        assert labelled("socklab.lab") == []
    finally:
        remove_labelled(f"socklab.scenario={name}")


@pytest.mark.exclusive
def test_clean_during_a_run_ends_it_with_a_clear_error(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = "cleaned-under-foot"
    path = unique_scenario(tmp_path, name, "loopback-only")
    run = subprocess.Popen([sys.executable, "-m", "invoke", "run", str(path), "--results", str(tmp_path)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(name, run)
        assert invoke("clean").returncode == EXIT_OK
        out, err = run.communicate(timeout=60)
        # 2: the run saw its hosts go, whatever it was doing; 0: it had just finished. Never a failed check.
        assert run.returncode in (EXIT_BAD_INPUT, EXIT_OK), out + err
        assert "Traceback" not in err
        assert labelled(f"socklab.scenario={name}") == []
    finally:
        run.kill()
        remove_labelled(f"socklab.scenario={name}")


@pytest.mark.exclusive
def test_a_full_subnet_pool_is_a_clear_error_and_creates_nothing(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = docker.from_env()
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="198.18.0.0/15")])
    filler = client.networks.create("socklab-test-pool-filler", internal=True, ipam=ipam,
                                    labels={"socklab.lab": "pool-filler"})
    try:
        result = invoke("run", str(unique_scenario(tmp_path, "no-room")), "--results", str(tmp_path))
        assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
        assert "no free subnet left" in result.stderr and "invoke clean" in result.stderr
        assert labelled("socklab.scenario=no-room") == []
    finally:
        filler.remove()
