"""Every door checked: a bad --jobs, a results folder that cannot be written, a full disk, an engine that runs out.

Each is a clear error (the thing, the problem, the fix) with exit 2, and
leaves nothing behind: no lab (the fake backend records every call), no
half-written file.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from docker.errors import APIError
from requests import Response

from socklab import api, catalogue, events, runner
from socklab.backend import ExecResult
from socklab.backend.docker.engine import engine_errors
from socklab.errors import EXIT_BAD_INPUT, EnvironmentProblem, UsageError
from socklab.reports import files
from socklab.reports.journal import MARKER
from tests.helpers import ROOT, invoke
from tests.unit.fakes import FakeBackend, ok, outcome

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # a run that got as far as the engine would fail so


def echoing(host: str, argv: list[str], user: str) -> ExecResult:
    return outcome("echoed") if "nodes.probe" in argv else ok()


def a_class(tmp_path: Path) -> tuple[Path, Path]:
    """Two students' echo servers and a rubric that grades them in tcp-echo alone."""
    for student in ("alice", "bob"):
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "server.py").write_text("import socket\n")
    rubric = tmp_path / "grading.toml"
    rubric.write_text('scenarios = ["tcp-echo"]\n')
    return tmp_path / "class", rubric


# -- --jobs -----------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [0, -1, runner.MAX_JOBS + 1, 1000])
def test_a_number_of_jobs_out_of_range_is_refused_before_anything_is_made(jobs: int, tmp_path: Path) -> None:
    backend = FakeBackend()
    with pytest.raises(UsageError, match=rf"--jobs: {jobs} is not a number of labs .* Fix: give a whole number"):
        api.run(catalogue.load(["tcp-echo"]), backend=backend, jobs=jobs, results_root=tmp_path / "results")
    classroom, rubric = a_class(tmp_path)
    with pytest.raises(UsageError, match="--jobs"):
        api.grade_class(classroom, "echo", rubric=rubric, jobs=jobs, results_root=tmp_path / "results",
                        backend=backend)
    assert backend.calls == [] and not (tmp_path / "results").exists()


@pytest.mark.parametrize("args", [("run", "tcp-echo", "-j", "0"), ("run", "tcp-echo", "--jobs=-1"),
                                  ("run", "tcp-echo", "--jobs", "65"), ("grade", "class", "--role", "echo", "-j", "0")])
def test_the_command_line_refuses_a_bad_number_of_jobs_with_exit_2_and_usage_advice(args: tuple[str, ...],
                                                                                    tmp_path: Path) -> None:
    result = invoke(*args, "--results", str(tmp_path / "results"), env=NO_ENGINE, cwd=ROOT)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "--jobs:" in result.stderr and "Fix:" in result.stderr and f"invoke --help {args[0]}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


@pytest.mark.parametrize("args", [("run", "tcp-echo", "-j", "abc"), ("run", "tcp-echo", "--jobs=1.5"),
                                  ("grade", "class", "--role", "echo", "--jobs", "many")])
def test_a_number_of_jobs_that_is_not_a_number_is_a_usage_error_not_a_traceback(args: tuple[str, ...],
                                                                                tmp_path: Path) -> None:
    result = invoke(*args, "--results", str(tmp_path / "results"), env=NO_ENGINE)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "is not a whole number. Fix:" in result.stderr and f"invoke --help {args[0]}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


# -- --results ------------------------------------------------------------------


def test_a_results_path_that_is_a_file_is_refused_before_any_lab(tmp_path: Path) -> None:
    in_the_way = tmp_path / "results"
    in_the_way.write_text("not a folder")
    backend = FakeBackend()
    for root in (in_the_way, in_the_way / "deeper"):
        with pytest.raises(UsageError, match=r"--results: cannot write results under .*a file is in the way.*Fix:"):
            api.run(catalogue.load(["tcp-echo"]), backend=backend, results_root=root)
        classroom, rubric = a_class(tmp_path / root.name.replace("results", "r1"))
        with pytest.raises(UsageError, match="--results: cannot write results under"):
            api.grade_class(classroom, "echo", rubric=rubric, results_root=root, backend=backend)
    assert backend.calls == [] and in_the_way.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_results_folder_without_write_permission_is_refused_before_any_lab(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    backend = FakeBackend()
    try:
        with pytest.raises(UsageError, match="--results: cannot write results under .*Permission denied"):
            api.run(catalogue.load(["tcp-echo"]), backend=backend, results_root=locked)
    finally:
        locked.chmod(0o700)
    assert backend.calls == [] and list(locked.iterdir()) == []


def test_a_results_folder_one_may_not_make_is_refused_before_any_lab(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """As the test above, for a run as root (who may write anywhere): the refusal simulated."""
    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    backend = FakeBackend()
    with pytest.raises(UsageError, match="--results: cannot write results under .*locked: Permission denied"):
        api.run(catalogue.load(["tcp-echo"]), backend=backend, results_root=tmp_path / "locked")
    assert backend.calls == []


def test_a_results_folder_that_cannot_hold_the_journal_is_refused_and_removed(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder could be made but not written in (a disk already full): refused, and the empty folder goes."""
    monkeypatch.setattr(files.os, "fsync", full_disk)
    backend = FakeBackend()
    with pytest.raises(UsageError, match="--results: cannot write results under .*No space left on device"):
        api.run(catalogue.load(["tcp-echo"]), backend=backend, results_root=tmp_path / "results")
    assert backend.calls == [] and list((tmp_path / "results").iterdir()) == []


def test_the_command_line_refuses_a_results_file_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("")
    result = invoke("run", "tcp-echo", "--results", str(tmp_path / "results"), env=NO_ENGINE)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "--results: cannot write results under" in result.stderr and "invoke --help run" in result.stderr
    assert "Traceback" not in result.stderr and "No Docker engine" not in result.stderr  # refused before the engine


# -- a disk that fills while results are written -----------------------------------


def full_disk(*args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_leaves_the_old_file_whole_and_names_the_file(where: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    files.atomic_write(path, b"old")
    if where == "fsync":
        monkeypatch.setattr(files.os, "fsync", full_disk)
    else:
        real = files.os.fdopen

        class Full:
            def __init__(self, *args: object, **kwargs: object) -> None:
                self.file = real(*args, **kwargs)  # type: ignore[call-overload]

            def __enter__(self) -> Full:
                return self

            def __exit__(self, *exc: object) -> None:
                self.file.close()

            def write(self, data: bytes) -> int:
                self.file.write(data[:1])
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files.os, "fdopen", Full)
    with pytest.raises(files.NotWritten) as raised:
        files.atomic_write(path, b"new and longer")
    assert raised.value.path == path and raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_disk_that_fills_mid_run_tears_the_labs_down_and_says_which_file(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills once the checks are made: the journal stops writing, the final reports fail, clearly.

    Every lab is already down; report.json is the journal's last, whole, with
    every check; no temporary file is left.
    """
    def fill_disk_when_done(event: events.Event) -> None:
        if isinstance(event, events.ScenarioFinished):
            monkeypatch.setattr(files.os, "fsync", full_disk)

    backend = FakeBackend(echoing)
    with pytest.raises(EnvironmentProblem) as raised:
        api.run(catalogue.load(["tcp-echo"]), backend=backend, results_root=tmp_path, listener=fill_disk_when_done)
    message = str(raised.value)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"{folder / 'report.json'}: could not be written: No space left on device" in message
    assert "Every lab was torn down" in message and "Fix: free some space" in message
    assert backend.alive == set() and backend.calls[-1][0] == "destroy_lab"
    journal = json.loads((folder / "report.json").read_text())
    assert journal["complete"] is False and len(journal["scenarios"][0]["checks"]) == 3
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "report.json"]
    assert not (tmp_path / "latest").exists()


def test_a_disk_that_fills_while_a_class_is_written_is_a_clear_error(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    classroom, rubric = a_class(tmp_path)

    def fill_disk_when_done(event: events.Event) -> None:
        if isinstance(event, events.ScenarioFinished) and event.result.name == "tcp-echo":
            monkeypatch.setattr(files.os, "fsync", full_disk)

    backend = FakeBackend(echoing)
    with pytest.raises(EnvironmentProblem, match=r"alice/report.json: could not be written: No space left on device. "
                                                 r"Every lab was torn down"):
        api.grade_class(classroom, "echo", rubric=rubric, results_root=tmp_path / "results", backend=backend,
                        listener=fill_disk_when_done)
    assert backend.alive == set()


# -- the engine out of disk or memory ------------------------------------------------


def refusal(status: int, message: str) -> APIError:
    response = Response()
    response.status_code = status
    return APIError(f"{status} Server Error", response=response, explanation=message)


@pytest.mark.parametrize(("message", "resource", "fix"), [
    ("failed to create shim task: write /var/lib/docker/x: no space left on device", "disk space", "docker system df"),
    ("OCI runtime create failed: runc create failed: fork/exec /proc/self/exe: cannot allocate memory", "memory",
     "--jobs 1"),
])
def test_an_engine_out_of_disk_or_memory_says_so_and_what_to_free(message: str, resource: str, fix: str) -> None:
    with pytest.raises(EnvironmentProblem) as raised, engine_errors("creating lab abc123 (tcp-echo)"):
        raise refusal(500, message)
    said = str(raised.value)
    assert said.startswith(f"The Docker engine ran out of {resource} while creating lab abc123 (tcp-echo): {message}")
    assert "Fix: " in said and fix in said


def test_an_engine_refusal_of_another_kind_keeps_its_message() -> None:
    with pytest.raises(EnvironmentProblem, match="refused a request while creating lab x: nope$"), \
            engine_errors("creating lab x"):
        raise refusal(500, "nope")
