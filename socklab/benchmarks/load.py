"""Load held: eight whole catalogues at once on one engine, and a soak of labs made and removed in a loop.

Too heavy for every CI run (tests/integration/test_soak.py is the small,
bounded version), so it is a benchmark: its figures are how many of the
eight runs passed and their wall time, and for the soak, each resource's
count before and after and the growth (the target is none), and labs per
second.

What the soak counts:

* on the engine, the containers, networks and volumes of the benchmark's
  own owner (every host has four labelled scratch volumes);
* on the host, its veth links and its iptables and ip6tables rules. These
  are the whole host's: other labs on the engine may move them, so they are
  counted before and after, the "after" given a moment to settle back;
* in this process, its open files (/proc/self/fd) and threads (Python's and
  the kernel's, /proc/self/task).

The labs of this benchmark carry an owner of their own, under the caller's
(``<owner>.load-<random>@<machine>``), so that whatever is left when it ends,
however it ends (an error, SIGINT or SIGTERM), is removed, and nobody
else's lab is counted or touched.
"""

from __future__ import annotations

import contextlib
import gc
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from socklab.backend.docker import DockerBackend
from socklab.benchmarks import Figure, environment
from socklab.constants import LABEL_OWNER, OWNER_ENV, PROJECT_ROOT, owner
from socklab.errors import Interrupted
from socklab.interrupts import Interruptions
from socklab.lab import Lab
from socklab.model import Host, Network

RUNS = 8  # `invoke run --all` at once
RUN_LIMIT = 1800.0  # s: a bound that only stops a hung run
SOAK_LABS = 200
SOAK_LIMIT = 900.0  # s: the soak stops early past this, and says how many labs it made
WARM_UP = 3  # labs before the "before" counts: the engine client's connection pool fills, modules load
SETTLE = 20.0  # s the host's counts may take to come back after the last lab
ENGINE_KINDS = ("containers", "networks", "volumes")
HOST_KINDS = ("veth links", "iptables rules", "ip6tables rules")
PROCESS_KINDS = ("open files", "threads (Python)", "threads (kernel)")


# -- counts -----------------------------------------------------------------------


def engine_counts(backend: DockerBackend, of: str) -> dict[str, int]:
    """The containers, networks and volumes the owner ``of`` has on the engine (exactly that owner)."""
    label = {"label": f"{LABEL_OWNER}={of}"}
    api = backend.api
    return {"containers": len(api.containers(all=True, filters=label)),
            "networks": len(api.networks(filters=label)),
            "volumes": len(api.volumes(filters=label).get("Volumes") or [])}


def veth_links() -> list[str]:
    """The host's veth links, one line each, as ``ip -o link show type veth`` gives them."""
    done = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


def _rules(command: str) -> int | None:
    """How many lines ``iptables-save`` (or ``ip6tables-save``) gives, its comments aside; None if it cannot."""
    try:
        done = subprocess.run([command], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return sum(1 for line in done.stdout.splitlines() if line.strip() and not line.startswith("#"))


def host_counts() -> dict[str, int | None]:
    """The whole host's veth links and firewall rules (None where this user cannot read them)."""
    try:
        veths: int | None = len(veth_links())
    except (OSError, subprocess.CalledProcessError):
        veths = None
    return {"veth links": veths, "iptables rules": _rules("iptables-save"), "ip6tables rules": _rules("ip6tables-save")}


def process_counts() -> dict[str, int]:
    """This process's open files and threads (after a garbage collection: what is still held, not yet freed)."""
    gc.collect()
    return {"open files": len(os.listdir("/proc/self/fd")), "threads (Python)": threading.active_count(),
            "threads (kernel)": len(os.listdir("/proc/self/task"))}


def settled(count: Callable[[], Mapping[str, int | None]], before: Mapping[str, int | None],
            patience: float = SETTLE) -> Mapping[str, int | None]:
    """``count()`` once every figure is back at (or below) ``before``, or as it is after ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while True:
        now = count()
        if all(now[k] is None or before[k] is None or now[k] <= before[k] for k in now):  # type: ignore[operator]
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.5)


# -- the benchmark's own owner ------------------------------------------------------------


def load_owner() -> str:
    """An owner of this benchmark's own, under the caller's (``owner()``)."""
    name, _, machine = owner().rpartition("@")
    return f"{name or owner()}.load-{secrets.token_hex(3)}@{machine or 'here'}"


@contextlib.contextmanager
def owning(backend: DockerBackend, who: str) -> Iterator[None]:
    """Labs made inside (here and in subprocesses) belong to ``who``; whatever of theirs is left goes after."""
    try:
        with environment(OWNER_ENV, who):
            yield
    finally:
        backend.destroy_owned(who)


# -- eight catalogues at once -------------------------------------------------------------


def _stop(runs: list[subprocess.Popen[str]]) -> None:
    """Ask every run still going to stop (each tears its labs down first), and wait for it."""
    for run in runs:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
    for run in runs:
        try:
            run.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()


def runs_at_once(count: int, results: Path, progress: Callable[[str], None]) -> tuple[float, list[float], list[str]]:
    """``count`` ``invoke run --all`` started together: the wall time, each run's time, and each failure's words."""
    progress(f"  {count} x invoke run --all at once")
    started = time.perf_counter()
    runs = [subprocess.Popen([sys.executable, "-m", "invoke", "run", "--all", "--quiet", "--results",
                              str(results / f"run-{i}")], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True) for i in range(count)]
    took: list[float] = [0.0] * count
    failures: list[str] = []
    try:
        pending = dict(enumerate(runs))
        while pending:
            for index, run in list(pending.items()):
                if run.poll() is not None:
                    took[index] = round(time.perf_counter() - started, 2)
                    out, err = run.communicate()
                    if run.returncode != 0:
                        failures.append(f"run {index} exited {run.returncode}: {(err or out).strip()[-600:]}")
                    del pending[index]
            if time.perf_counter() - started > RUN_LIMIT:
                raise RuntimeError(f"{len(pending)} runs still going after {RUN_LIMIT:.0f} s")
            time.sleep(0.2)
    finally:
        _stop(runs)
    return round(time.perf_counter() - started, 2), took, failures


# -- the soak ----------------------------------------------------------------------------


SOAK_NETWORKS = {"lan": Network("lan")}
SOAK_HOSTS = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}


def one_lab(backend: DockerBackend, guard: Interruptions | None = None) -> None:
    """A two-host dual-stack lab up, prepared, one command run on it, and down."""
    with Lab.open(backend, "soak", SOAK_NETWORKS, SOAK_HOSTS, interruptions=guard) as lab:
        if not lab.exec("client", ["true"]).ok:
            raise RuntimeError("a command failed on a soak lab")


def soak(backend: DockerBackend, who: str, labs: int, limit: float, guard: Interruptions | None = None,
         progress: Callable[[str], None] = lambda text: None) -> tuple[dict[str, tuple[int | None, int | None]], int,
                                                                         float]:
    """``labs`` labs made and removed in a loop (fewer if ``limit`` seconds pass first).

    Returns each resource's count (before, after), how many labs were made, and the seconds they took.
    """
    for _ in range(WARM_UP):
        one_lab(backend, guard)
    engine_before, host_before, process_before = engine_counts(backend, who), host_counts(), process_counts()
    started, made = time.monotonic(), 0
    while made < labs and time.monotonic() - started < limit:
        one_lab(backend, guard)
        made += 1
        if made % 25 == 0:
            progress(f"  soak: {made} labs")
    took = time.monotonic() - started
    engine_after = engine_counts(backend, who)
    host_after = settled(host_counts, host_before)
    process_after = settled(process_counts, process_before)
    counts: dict[str, tuple[int | None, int | None]] = {}
    for before, after in ((engine_before, engine_after), (host_before, host_after), (process_before, process_after)):
        counts |= {kind: (before[kind], after[kind]) for kind in before}
    return counts, made, took


# -- the benchmark -----------------------------------------------------------------------------


def run(repeats: int, progress: Callable[[str], None]) -> list[Figure]:
    """One round, whatever ``repeats`` says: it is a test of holding up, not a timing to take the median of."""
    backend = DockerBackend()
    backend.ensure_image(progress)
    who = load_owner()
    figures: list[Figure] = []
    guard = Interruptions()
    try:
        with guard.installed(), owning(backend, who), tempfile.TemporaryDirectory(prefix="socklab-load-") as folder:
            wall, took, failures = runs_at_once(RUNS, Path(folder), progress)
            left = sum(engine_counts(backend, who).values())
            figures += [
                Figure(f"{RUNS} x invoke run --all at once: wall time", "s", [wall],
                       note=f"each run: {', '.join(f'{t:.0f}' for t in sorted(took))} s"),
                Figure(f"{RUNS} x invoke run --all at once: runs passed", "runs", [float(RUNS - len(failures))],
                       target=f">= {RUNS}", note=" | ".join(failures)),
                Figure(f"{RUNS} x invoke run --all at once: containers, networks, volumes left", "count",
                       [float(left)], target="<= 0"),
            ]
            progress(f"  soak: {SOAK_LABS} labs made and removed, one after another")
            counts, made, seconds = soak(backend, who, SOAK_LABS, SOAK_LIMIT, guard, progress)
    except Interrupted:
        raise KeyboardInterrupt from None  # after every lab of the benchmark's owner was removed
    host_note = "the whole host's: other labs on the engine may move it (after: settled up to 20 s)"
    figures.append(Figure("soak: labs made and removed", "labs", [float(made)], target=f">= {SOAK_LABS}",
                          note=f"two hosts, one dual-stack network, one command each; bounded to {SOAK_LIMIT:.0f} s"))
    figures.append(Figure("soak: labs per second", "labs/s", [round(made / seconds, 3) if seconds else 0.0]))
    for kind, (before, after) in counts.items():
        if before is None or after is None:
            figures.append(Figure(f"soak: {kind}: growth", "count", [], note="this user cannot count them here"))
            continue
        note = host_note if kind in HOST_KINDS else ("this benchmark's own labs" if kind in ENGINE_KINDS
                                                     else "this process")
        figures.append(Figure(f"soak: {kind}: before", "count", [float(before)], note=note))
        figures.append(Figure(f"soak: {kind}: after", "count", [float(after)]))
        figures.append(Figure(f"soak: {kind}: growth", "count", [float(after - before)], target="<= 0", note=note))
    return figures
