"""Everything the invoke tasks do, as plain functions: the lab's Python API.

``tasks.py`` only parses arguments and calls these; the pytest plugin and
anybody's script can call them too. Scenario files are always loaded and
validated before the backend is touched, so bad input creates nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import posixpath
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from socklab import capture as capture_commands
from socklab import catalogue, events, files, grading, reports, runner, schema
from socklab import scenario as scenario_file
from socklab.backend import Backend, ExecResult, LabSummary
from socklab.constants import CATALOGUE_DIR, LAB_USER, owner
from socklab.errors import EnvironmentProblem, SocklabError, UsageError
from socklab.grading import Plan, cohort
from socklab.grading.marking import Budget
from socklab.interrupts import Interruptions, calling_on_signals
from socklab.lab import Lab
from socklab.model import FileCopy, Scenario
from socklab.reports import cohort as class_reports
from socklab.reports.files import NotWritten
from socklab.reports.journal import Journal
from socklab.results import ClassResult, RunningLab, RunResult

BACKEND_VARIABLE = "SOCKLAB_BACKEND"


def default_backend(name: str = "") -> Backend:
    """The backend named (``--backend``), else ``$SOCKLAB_BACKEND``'s, else the one Docker engine (DOCKER_HOST's)."""
    chosen = name or os.environ.get(BACKEND_VARIABLE, "") or "docker"
    if chosen == "docker":
        from socklab.backend.docker import DockerBackend  # the SDK loads only when a lab is needed

        return DockerBackend()
    if chosen == "swarm":
        from socklab.backend.swarm import SwarmBackend

        return SwarmBackend()
    raise UsageError("--backend" if name else BACKEND_VARIABLE, f"{chosen!r} is not a backend",
                     "use docker (one engine, the default) or swarm (a Docker Swarm: the README's "
                     '"Across several machines")')


def build(backend: Backend | None = None, listener: events.Listener = events.ignore) -> str:
    """Make sure the node image exists, building it if the recipe changed; return its name."""
    return (backend or default_backend()).ensure_image(lambda text: listener(events.Note(text)))


def select(names: Sequence[str] = (), *, everything: bool = False, directory: Path = CATALOGUE_DIR) -> list[Scenario]:
    """Load the scenarios to run: those named, or the whole catalogue."""
    if not names and not everything:
        raise UsageError("NAME", "no scenario named",
                         "name one or more, as in `invoke run tcp-echo` (`invoke list` shows them), or pass --all")
    return catalogue.load(() if everything else names, directory)


def validate(paths: Sequence[Path | str]) -> list[Scenario]:
    """Read scenario files as a run would, with no engine: every problem of every file, or the scenarios."""
    if not paths:
        raise UsageError("FILE", "no file named", "name one or more, as in `invoke validate scenarios/*.toml`")
    return scenario_file.load_all(Path(path) for path in paths)


def refresh_docs(readme: Path, directory: Path = CATALOGUE_DIR) -> list[str]:
    """Regenerate what the docs derive from the code: the README's catalogue and key list, the schema file.

    For a catalogue of one's own (``directory``), only its README's table,
    between the markers ``<!-- catalogue:start -->`` and ``<!-- catalogue:end -->``.
    Returns what changed, for the caller to say.
    """
    changed = []
    table = catalogue.markdown(catalogue.load((), directory))
    if directory != CATALOGUE_DIR:
        if catalogue.README_START not in (readme.read_text() if readme.exists() else ""):
            raise UsageError(str(readme), f"has no {catalogue.README_START} ... {catalogue.README_END} markers",
                             "add both where the catalogue table belongs")
        return [f"{readme}: the catalogue"] if schema.refresh(readme, catalogue.README_START, catalogue.README_END,
                                                              table) else []
    if schema.refresh(readme, catalogue.README_START, catalogue.README_END, table):
        changed.append(f"{readme}: the catalogue")
    if schema.refresh(readme, schema.README_START, schema.README_END, schema.markdown()):
        changed.append(f"{readme}: the list of keys")
    text = schema.schema_text()
    if not schema.SCHEMA_FILE.exists() or schema.SCHEMA_FILE.read_text() != text:
        schema.SCHEMA_FILE.write_text(text)
        changed.append(str(schema.SCHEMA_FILE))
    return changed


def run(
    scenarios: Sequence[Scenario], *, backend: Backend | None = None, jobs: int = runner.DEFAULT_JOBS,
    results_root: Path = reports.DEFAULT_ROOT, listener: events.Listener = events.ignore, capture: bool = False,
    plans: Sequence[Plan | None] = (), budgets: Sequence[Budget | None] = (), folder: Path | None = None,
) -> RunResult:
    """Run scenarios and write their results folder; the result's exit_status is the run's.

    Grading, ``plans`` say how each scenario grades its submissions (see
    ``socklab.grading.prepare``) and ``budgets`` how much time their checks
    have, in the order of ``scenarios``. The results go to a new folder
    under ``results_root``, or to ``folder``.

    A ``jobs`` out of range, or a results folder that cannot be made and
    written, is a UsageError before any lab exists; reports that cannot be
    written at the end (a full disk) are an EnvironmentProblem naming the
    file, raised once every lab is down.
    """
    check_jobs(jobs)
    made = folder is None
    folder = folder or _results_folder(results_root)
    try:
        journal = Journal(folder, scenarios, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    except OSError as exc:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        raise _unwritable(folder, exc) from None
    result = runner.run(scenarios, backend or default_backend(), jobs=jobs, listener=events.both(listener, journal),
                        capture=capture, plans=plans, budgets=budgets)
    _write_reports(lambda: reports.write(result, folder), f"{folder / 'report.json'} holds, whole, the checks "
                   "recorded until then")
    journal.close(result)
    return result


def check_jobs(jobs: int) -> None:
    """``--jobs`` must be a number of labs this machine can hold side by side: 1 to ``runner.MAX_JOBS``."""
    if not 1 <= jobs <= runner.MAX_JOBS:
        raise UsageError("--jobs", f"{jobs!r} is not a number of labs to run side by side (1 to {runner.MAX_JOBS})",
                         f"give a whole number from 1 to {runner.MAX_JOBS}, as in `-j 4` (the default is "
                         f"{runner.DEFAULT_JOBS})")


def _results_folder(root: Path) -> Path:
    """A new results folder under ``root``, made now: a root that cannot hold one is refused before any lab."""
    try:
        return reports.new_folder(root)
    except OSError as exc:
        raise _unwritable(root, exc) from None


def _unwritable(where: Path, exc: OSError) -> UsageError:
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = f"a file is in the way ({exc.filename or where} is not a folder)"
    return UsageError("--results", f"cannot write results under {where}: {reason}; nothing was created",
                      "name a folder you may write to (it is made if need be), or free some space there")


def _write_reports(write: Callable[[], object], kept: str) -> None:
    """Write the final reports; a disk that fails now (full, gone read-only) is a clear error, not a traceback.

    By then every lab is torn down; each report is written whole or not at
    all, so ``report.json`` still holds the run's journal (or nothing new).
    """
    try:
        write()
    except OSError as exc:
        path = exc.path if isinstance(exc, NotWritten) else exc.filename or "a results file"
        raise EnvironmentProblem(
            f"{path}: could not be written: {exc.strerror or exc}. Every lab was torn down, and no file was left "
            f"half written: {kept}. Fix: free some space (or make the folder writable) and run again") from None


def grade_class(
    folder: Path, role: str, *, rubric: Path | None = None, directory: Path = CATALOGUE_DIR,
    jobs: int = runner.DEFAULT_JOBS, results_root: Path = reports.DEFAULT_ROOT, backend: Backend | None = None,
    listener: events.Listener = events.ignore,
) -> ClassResult:
    """Grade every student's submission (a subfolder of ``folder`` each) as ``role``; write the class's results.

    The rubric (``grading.toml``) may give the command that starts a
    submission, the scenarios, points and the time each student has; with
    none, each student's folder must hold one Python file, and every
    scenario of the catalogue with a check of the role grades it. Every
    submission is checked before anything runs (exit 2 for a bad one).
    The results folder holds a folder per student (report.html,
    report.json, junit.xml, Gradescope's results.json) and the class's
    views: class.csv, class.html.
    """
    check_jobs(jobs)
    chosen = grading.rubric.load(rubric) if rubric else grading.Rubric()
    scenarios = catalogue.load(chosen.scenarios, directory)
    prepared = cohort.prepare_class(folder, role, scenarios, chosen)
    out = _results_folder(results_root)  # before any lab: a root that cannot hold results is refused now
    try:
        result = cohort.grade(prepared, role, chosen, backend or default_backend(), jobs=jobs, listener=listener)
    except BaseException:
        with contextlib.suppress(OSError):
            out.rmdir()  # still empty: nothing was graded
        raise

    def write() -> None:
        for student in result.students:
            student.results_dir = str(reports.write(student.run, out / student.student, latest=False))
            class_reports.write_student(student, out / student.student)
        result.results_dir = str(out)
        class_reports.write_class(result, out)

    _write_reports(write, f"{out} holds the reports written before that one")
    reports.point_latest(out)
    return result


def up(scenario: Scenario, *, backend: Backend | None = None,
       listener: events.Listener = events.ignore) -> RunningLab:
    """Bring a scenario's lab up with its services started, and leave it running.

    If anything fails on the way (a service that never gets ready: LabError,
    exit 1; a signal), the lab is torn down instead.
    """
    backend = backend or default_backend()
    backend.ensure_image(lambda text: listener(events.Note(text)))
    guard = Interruptions()
    with guard.installed(), Lab.open(backend, scenario.name, scenario.networks, scenario.hosts, keep=True,
                                     interruptions=guard, listener=listener, files=scenario.files) as lab:
        running = RunningLab(lab.id, scenario.name, lab.addresses(), notes=lab.notes)
        running.services = [lab.require(service) for service in scenario.services]
    return running


def capture(host: str, output: Path, *, lab_id: str | None = None, interface: str = "any",
            backend: Backend | None = None) -> int:
    """Record packets on a host of a running lab into a pcap file until SIGINT or SIGTERM; return its size.

    The signal asks tcpdump (on the host) to stop; reading goes on until its
    output ends, so every packet it captured is in the file.
    """
    backend = backend or default_backend()
    handle = backend.find_host(host, lab_id)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    stop = lambda: backend.exec(handle, capture_commands.live_stop_argv(), user="root")  # noqa: E731
    with calling_on_signals(stop), output.open("wb") as pcap:
        for chunk in backend.stream(handle, capture_commands.live_argv(interface), user="root"):
            written += pcap.write(chunk)
            pcap.flush()
    return written


def labs(backend: Backend | None = None) -> list[LabSummary]:
    """Every lab on the engine, whoever made it (each summary names its owner)."""
    return (backend or default_backend()).labs()


def down(lab_id: str | None = None, backend: Backend | None = None) -> int:
    """Tear down the lab named, or else every lab of the caller's own; return how many resources went.

    The caller is ``constants.owner()`` (``$SOCKLAB_OWNER``, or user@machine):
    without a lab id, labs of other owners are left alone (``clean
    --everyone`` removes everything, whoever made it).
    """
    backend = backend or default_backend()
    if lab_id:
        return backend.destroy_lab(lab_id)
    me = owner()
    return sum(backend.destroy_lab(lab.lab_id) for lab in backend.labs() if lab.owner == me)


def clean(*, everyone: bool = False, backend: Backend | None = None) -> int:
    """Remove every resource of the caller's labs (``constants.owner``), or with ``everyone``, of anybody's.

    Unlike ``down``, it goes by the owner's label alone, so it also sweeps
    what a killed run left half made (a network without its hosts). Safe to
    run any time; with ``everyone``, it takes other people's labs from under
    them.
    """
    backend = backend or default_backend()
    return backend.destroy_all() if everyone else backend.destroy_owned(owner())


def execute(host: str, argv: Sequence[str], *, lab_id: str | None = None, user: str = LAB_USER,
            stdin: bytes | BinaryIO | None = None, backend: Backend | None = None) -> ExecResult:
    """Run a command (its argv, no shell) on a host of a running lab, feeding it ``stdin`` if given."""
    backend = backend or default_backend()
    return backend.exec(backend.find_host(host, lab_id), list(argv), user=user, stdin=stdin)


def shell(host: str, *, lab_id: str | None = None, user: str = LAB_USER, backend: Backend | None = None) -> int:
    """An interactive shell on a host of a running lab; returns its exit status."""
    backend = backend or default_backend()
    handle = backend.find_host(host, lab_id)
    return backend.shell(handle, ["bash", "-l"], user=user)


HOST_PATH = re.compile(r"([a-z][a-z0-9-]{0,30}):(.*)", re.DOTALL)  # HOST:PATH, as docker cp writes CONTAINER:PATH


def copy(source: str, target: str, *, lab_id: str | None = None, backend: Backend | None = None) -> str:
    """Copy a file or folder between this machine and a host of a running lab (``invoke cp``); say what was done.

    One side is ``HOST:PATH`` (a relative PATH is under /lab), the other a
    local path (write ``./a:b`` for a local name with a colon). As ``docker
    cp`` does: onto an existing folder, the copy goes inside it under its
    own name; otherwise it takes the name given, in a folder that must
    exist. To a host, the copy belongs to the lab user; from a host, owners
    are not kept. Links inside folders stay links. Through the engine's
    archive API, so a remote engine works too.

    Raises UsageError for two local or two host paths, SocklabError (exit
    2) for a local path or a host path that is not there.
    """
    from_host, to_host = HOST_PATH.fullmatch(source), HOST_PATH.fullmatch(target)
    if bool(from_host) == bool(to_host):
        raise UsageError("SOURCE TARGET", f"{'both' if from_host else 'neither'} of {source!r} and {target!r} "
                         "name a host", "give one HOST:PATH and one local path, as in `invoke cp app server:/lab/app` "
                         "or `invoke cp server:/lab/log ./logs`")
    backend = backend or default_backend()
    if to_host:
        local = Path(source)
        if not local.exists():
            raise SocklabError(f"{source}: no such file or folder here")
        host = to_host.group(1)
        handle = backend.find_host(host, lab_id)
        where = files.host_path(to_host.group(2) or ".")
        found = backend.path_info(handle, where)
        if found and found.is_dir:
            where = posixpath.join(where, local.resolve().name)
        elif backend.path_info(handle, folder := posixpath.dirname(where)) is None:
            raise SocklabError(f"host {host!r} has no folder {folder} to put {source} in (make it first: "
                               f"`invoke exec {host} -- mkdir -p {folder}`, with --root outside /lab)")
        backend.put_archive(handle, "/", files.archive([FileCopy(where, local)]))
        return f"copied {source} to {host}:{where}"
    assert from_host is not None  # exactly one side is a host
    host = from_host.group(1)
    handle = backend.find_host(host, lab_id)
    path = files.host_path(from_host.group(2) or ".")
    data = backend.get_archive(handle, path)  # MissingPath if it is not there
    local = Path(target)
    if local.is_dir():
        local = local / (posixpath.basename(path) or host)
    elif not local.parent.is_dir():
        raise SocklabError(f"{local.parent}: no such folder here to put {host}:{path} in")
    files.extract(data, local)
    return f"copied {host}:{path} to {local}"
