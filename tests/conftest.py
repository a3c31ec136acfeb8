"""Fixtures shared by every test folder.

Docker-backed tests are marked ``docker``. Without an engine they fail in CI
(``CI`` or ``SOCKLAB_REQUIRE_DOCKER`` set) and skip locally, saying why.
Every lab a test creates is remembered, and after the test the engine must
hold nothing labelled with its id: a leak fails the test that caused it,
even when pytest-xdist runs other labs at the same time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import docker

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_DOCKER = bool(os.environ.get("CI") or os.environ.get("SOCKLAB_REQUIRE_DOCKER"))


def labelled(label: str, api: docker.APIClient | None = None) -> list[str]:
    """Every container, network and volume carrying ``label`` ("key" or "key=value").

    Listed with the low-level API, which does not inspect each container after
    listing it: a container that a lab's own teardown removes meanwhile cannot
    make the listing fail with "No such container".
    """
    api = api or docker.from_env(timeout=30).api
    filters = {"label": label}
    return ([f"container {c['Names'][0].lstrip('/')}" for c in api.containers(all=True, filters=filters)]
            + [f"network {n['Name']}" for n in api.networks(filters=filters)]
            + [f"volume {v['Name']}" for v in api.volumes(filters=filters).get("Volumes") or []])


def remove_labelled(label: str, patience: float = 30) -> None:
    """A test's own sweep after a run it broke on purpose.

    The lab's own teardown may be removing the same resources at the same
    time, so "already gone" and "removal in progress" are both fine: the
    sweep repeats until nothing carries the label.
    """
    api = docker.from_env(timeout=30).api
    filters = {"label": label}
    deadline = time.monotonic() + patience
    while True:
        for container in api.containers(all=True, filters=filters):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(container["Id"], force=True, v=True)
        for network in api.networks(filters=filters):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_network(network["Id"])
        if not labelled(label, api) or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def _tracking_backend_class() -> type:
    from socklab.backend.docker import DockerBackend

    class TrackingBackend(DockerBackend):
        """The real Docker backend, remembering every lab id it was asked to create."""

        def __init__(self) -> None:
            super().__init__()
            self.created: list[str] = []

        def create_lab(self, lab_id, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.created.append(lab_id)
            return super().create_lab(lab_id, *args, **kwargs)

        def leftovers(self, lab_ids: list[str]) -> list[str]:
            return [found for lab_id in lab_ids for found in labelled(f"socklab.lab={lab_id}", self.api)]

    return TrackingBackend


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    """A Docker backend with the node image built, or a loud failure (CI) / a skip (locally)."""
    from socklab.errors import EnvironmentProblem

    try:
        backend = _tracking_backend_class()()
        backend.ensure_image(lambda text: None)
    except EnvironmentProblem as exc:
        if REQUIRE_DOCKER:
            pytest.fail(f"this test needs Docker and CI requires it: {exc}", pytrace=False)
        pytest.skip(f"no usable Docker engine here: {exc}")
    return backend


@pytest.fixture
def backend(engine) -> Iterator:  # type: ignore[no-untyped-def]
    """The shared backend; after the test, nothing of the labs it created may remain."""
    before = len(engine.created)
    yield engine
    mine = engine.created[before:]
    left = engine.leftovers(mine)
    assert not left, f"the test left lab resources behind: {left}"


def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
           cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the invoke CLI as a user would, from the project root."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# -- the suite as a whole -----------------------------------------------------

DOCKER_FOLDERS = ("integration", "cli")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration and tests/cli needs Docker."""
    for item in items:
        if any(part in DOCKER_FOLDERS for part in Path(str(item.path)).relative_to(ROOT / "tests").parts[:1]):
            item.add_marker(pytest.mark.docker)


def _labelled() -> set[str] | None:
    """Every resource labelled socklab.lab on the engine, or None without one."""
    try:
        return set(labelled("socklab.lab"))
    except docker.errors.DockerException:  # no engine: the docker tests say so themselves
        return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        session.config.stash[_BEFORE] = _labelled()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run (all xdist workers), the engine holds no lab the suite made."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    before, after = session.config.stash.get(_BEFORE, None), _labelled()
    if before is None or after is None:
        return
    left = sorted(after - before)
    if left:
        session.config.get_terminal_writer().line(f"LEAK: the test run left lab resources behind: {left}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[set[str] | None]()
