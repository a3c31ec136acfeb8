"""Fixtures and hooks shared by every test folder; the helpers tests import live in ``tests.helpers``.

Docker-backed tests (everything under tests/integration and tests/cli) are
marked ``docker``. Without an engine they fail in CI (``CI`` or
``SOCKLAB_REQUIRE_DOCKER`` set) and skip locally, saying why.

Whose labs are whose: before anything else, and before pytest-xdist starts
its workers, the session sets ``SOCKLAB_OWNER`` to an owner unique to this
run (``tests-<random>@<host>``); workers, ``invoke`` subprocesses and nested
pytest sessions inherit it, so every lab the run makes carries it. Each
Docker test runs under an owner of its own beneath the run's
(``lab_owner``): after the test nothing of that owner may remain (a leak
fails the test that caused it, even when xdist runs other labs meanwhile,
and is removed), and after the whole run nothing of the run's owner may
remain. Labs of anybody else (another engineer's, another test run's) are
never counted, and never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

import docker
from socklab.backend import HostInfo
from socklab.backend.docker import DockerBackend
from socklab.constants import LABEL_LAB, OWNER_ENV
from socklab.errors import EnvironmentProblem
from socklab.model import Host, Network
from tests.helpers import ANYONE, REQUIRE_DOCKER, TESTS, labelled, owned, remove_owned, run_owner, sub_owner
from tests.tries import TrySession

pytest_plugins = ["pytester"]

DOCKER_FOLDERS = ("integration", "cli")
_RUN_OWNER = pytest.StashKey[str]()


class TrackingBackend(DockerBackend):
    """The real Docker backend, remembering every lab id it was asked to create."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []

    def create_lab(self, lab_id: str, scenario: str, networks: Iterable[Network], hosts: Iterable[Host],
                   on_started: Callable[[HostInfo], None] | None = None) -> dict[str, HostInfo]:
        self.created.append(lab_id)
        return super().create_lab(lab_id, scenario, networks, hosts, on_started)

    def leftovers(self, lab_ids: list[str]) -> list[str]:
        """What remains of these labs, whoever owns them (a lab id names one lab: nobody else's)."""
        return [found for lab_id in lab_ids for found in labelled(f"{LABEL_LAB}={lab_id}", owner=ANYONE, api=self.api)]


@pytest.fixture(scope="session")
def engine() -> TrackingBackend:
    """A Docker backend with the node image built, or a loud failure (CI) / a skip (locally)."""
    try:
        backend = TrackingBackend()
        backend.ensure_image(lambda text: None)
    except EnvironmentProblem as exc:
        if REQUIRE_DOCKER:
            pytest.fail(f"this test needs Docker and CI requires it: {exc}", pytrace=False)
        pytest.skip(f"no usable Docker engine here: {exc}")
    return backend


@pytest.fixture
def backend(engine: TrackingBackend) -> Iterator[TrackingBackend]:
    """The shared backend; after the test, nothing of the labs it created may remain."""
    before = len(engine.created)
    yield engine
    mine = engine.created[before:]
    left = engine.leftovers(mine)
    assert not left, f"the test left lab resources behind: {left}"


@pytest.fixture
def lab_owner(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An owner of this test's own, under the run's: every lab made meanwhile, here or in a subprocess, carries it.

    After the test nothing of it may remain: what does is removed, and the
    test fails for having left it.
    """
    mine = sub_owner()
    monkeypatch.setenv(OWNER_ENV, mine)
    yield mine
    try:
        left = owned(mine)
    except docker.errors.DockerException:  # no engine: the test said so itself
        return
    if left:
        remove_owned(mine)
        pytest.fail(f"the test left lab resources behind (removed now): {left}", pytrace=False)


@pytest.fixture(autouse=True)
def _docker_tests_own_their_labs(request: pytest.FixtureRequest) -> None:
    """Every Docker test runs under an owner of its own (``lab_owner``)."""
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("lab_owner")


@pytest.fixture
def try_text(request: pytest.FixtureRequest, tmp_path: Path, lab_owner: str) -> Iterator[TrySession]:
    """The `try` text that the test's ``tries`` marker names, to run its commands as a student would."""
    marker = request.node.get_closest_marker("tries")
    assert marker is not None and marker.args, "name the scenario and its commands: @pytest.mark.tries(NAME, ...)"
    session = TrySession(marker.args[0], tuple(marker.args[1:]), tmp_path)
    yield session
    never_run = session.close()
    if never_run:
        pytest.fail(f"the test names commands of {marker.args[0]}'s try text that it never ran: {never_run}",
                    pytrace=False)


# -- the suite as a whole -----------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """The master process (not an xdist worker, which inherits it) makes the run's owner before anything starts."""
    if hasattr(config, "workerinput"):
        return
    run = run_owner(os.environ.get(OWNER_ENV))
    os.environ[OWNER_ENV] = run
    config.stash[_RUN_OWNER] = run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration and tests/cli needs Docker."""
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(TESTS) and path.relative_to(TESTS).parts[0] in DOCKER_FOLDERS:
            item.add_marker(pytest.mark.docker)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run (all xdist workers), the engine holds nothing this run made; others' labs don't count."""
    run = session.config.stash.get(_RUN_OWNER, None)
    if run is None:  # an xdist worker: the master checks once everything is over
        return
    try:
        left = owned(run)
    except docker.errors.DockerException:  # no engine: the docker tests say so themselves
        return
    if left:
        message = f"LEAK: the test run ({OWNER_ENV}={run}) left lab resources behind: {left}"
        writer = session.config.get_terminal_writer()
        if writer.width_of_current_line:  # after the progress dots: a line of its own
            writer.line()
        writer.line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
