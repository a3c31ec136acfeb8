"""What the tests share besides fixtures: paths, the CLI as a user runs it, and the engine's labelled resources.

Every lab socklab creates carries its owner (``socklab.owner``, see
``socklab.constants.owner``). A test run owns ``tests-<random>@<host>``
(set by tests/conftest.py before any xdist worker or subprocess starts, so
they all inherit it), and each Docker test gets an owner of its own under the
run's: ``tests-<random>.<random>@<host>``. Whatever this module lists is, by
default, limited to what this test run made (labs of anybody else are not
seen), and what it removes to what the test itself made: a test never
removes a lab it did not make.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from socklab.constants import LABEL_OWNER, OWNER_ENV, owner

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
REQUIRE_DOCKER = bool(os.environ.get("CI") or os.environ.get("SOCKLAB_REQUIRE_DOCKER"))

RUN_PREFIX = "tests-"  # the owner of a test run's labs starts so
KILLED_REQUESTS_SETTLE = 2.0  # seconds an engine may take to finish what a killed process asked of it
ANYONE = ""  # as ``owner``: resources of every owner, for ``exclusive`` tests only


def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path = ROOT,
           prefix: Sequence[str] = (), stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the invoke CLI as a user would, from the project root (as this test's owner, from the environment).

    ``prefix`` runs it under another command (``nsenter``, say); ``stdin`` is its standard input (else it has
    the tests' own).
    """
    return subprocess.run([*prefix, sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=stdin)


# -- owners ---------------------------------------------------------------------


def run_owner(inherited: str | None = None) -> str:
    """A new owner for a test run: ``tests-<random>@<host>``.

    A test session started inside another test run (pytester) nests under the
    owner it ``inherited``, so that the outer run still counts what it made.
    """
    if inherited and inherited.startswith(RUN_PREFIX) and "@" in inherited:
        return sub_owner(inherited)
    return f"{RUN_PREFIX}{secrets.token_hex(4)}@{socket.gethostname()}"


def sub_owner(parent: str | None = None) -> str:
    """A new owner under ``parent`` (default: the current owner), for labs one test makes."""
    name, _, host = (parent or owner()).rpartition("@")
    return f"{name}.{secrets.token_hex(3)}@{host}"


def foreign_owner() -> str:
    """A new owner that belongs to no test run: somebody else, for a test that needs one (and removes its labs)."""
    return f"someone-else-{secrets.token_hex(3)}@elsewhere"


def under(parent: str, value: str) -> bool:
    """Whether ``value`` is ``parent`` itself, or an owner made under it (``sub_owner``)."""
    name, _, host = parent.rpartition("@")
    value_name, _, value_host = value.rpartition("@")
    return value_host == host and (value_name == name or value_name.startswith(f"{name}."))


def this_run() -> str:
    """The owner of the outermost test run this process belongs to."""
    current = owner()
    if not current.startswith(RUN_PREFIX):
        raise RuntimeError(f"{OWNER_ENV}={current!r} is no test run's owner: tests/conftest.py sets one")
    name, _, host = current.rpartition("@")
    return f"{name.split('.')[0]}@{host}"


# -- the engine's labelled resources -----------------------------------------------


@dataclass(frozen=True)
class Resource:
    kind: str  # container, network or volume
    name: str
    ref: str = field(compare=False)  # the engine's id (a volume's name)
    labels: dict[str, str] = field(compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def engine_api() -> docker.APIClient:
    return docker.from_env(timeout=30).api


def resources(*labels: str, owner: str | None = None, api: docker.APIClient | None = None) -> list[Resource]:
    """Every container, network and volume carrying all of ``labels`` ("key" or "key=value").

    Only those of ``owner`` (itself or under it: ``under``) count; the default
    is this test run, and ``ANYONE`` lifts the limit. Listed with the low-level
    API, which does not inspect each container after listing it: a container
    that a lab's own teardown removes meanwhile cannot make the listing fail
    with "No such container".
    """
    scope = this_run() if owner is None else owner
    if not scope and not labels:
        raise ValueError("resources() of anyone needs a label to select by: this would be every container")
    api = api or engine_api()
    filters = {"label": [*labels, LABEL_OWNER] if scope else list(labels)}
    found = ([Resource("container", c["Names"][0].lstrip("/"), c["Id"], c["Labels"] or {})
              for c in api.containers(all=True, filters=filters)]
             + [Resource("network", n["Name"], n["Id"], n["Labels"] or {}) for n in api.networks(filters=filters)]
             + [Resource("volume", v["Name"], v["Name"], v["Labels"] or {})
                for v in api.volumes(filters=filters).get("Volumes") or []])
    return [r for r in found if not scope or under(scope, r.labels.get(LABEL_OWNER, ""))]


def labelled(*labels: str, owner: str | None = None, api: docker.APIClient | None = None) -> list[str]:
    """``resources``, named: ``["container socklab-x-server", "network socklab-x-lan"]``."""
    return [str(found) for found in resources(*labels, owner=owner, api=api)]


def without_volumes(names: list[str]) -> list[str]:
    """Containers and networks only: a host's scratch volumes (``SCRATCH``) come and go with its container."""
    return [name for name in names if not name.startswith("volume ")]


def owned(owner: str, api: docker.APIClient | None = None) -> list[str]:
    """Everything ``owner`` made, or an owner under it."""
    return labelled(owner=owner, api=api)


def _sweep(select: Callable[[docker.APIClient], list[Resource]], patience: float, settle: float = 0.0) -> None:
    """Remove what ``select`` finds until it has found nothing for ``settle`` seconds, or ``patience`` have gone.

    A lab's own teardown may be removing the same resources at the same time,
    so "already gone" and "removal in progress" are both fine: the sweep
    repeats until nothing is found. A process killed while it was making a lab
    may have left a request with the engine that completes after the kill (a
    network appears a moment later): ``settle`` watches that long for one.
    """
    api = engine_api()
    deadline = time.monotonic() + patience
    quiet_since: float | None = None
    removals: dict[str, Callable[[str], Any]] = {
        "container": lambda ref: api.remove_container(ref, force=True, v=True),
        "network": api.remove_network,
        "volume": lambda ref: api.remove_volume(ref, force=True),
    }
    while True:
        found = select(api)
        for kind in ("container", "network", "volume"):  # containers hold the networks
            for resource in (r for r in found if r.kind == kind):
                with contextlib.suppress(docker.errors.APIError):
                    removals[kind](resource.ref)
        now = time.monotonic()
        if select(api):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        if (quiet_since is not None and now - quiet_since >= settle) or now > deadline:
            return
        time.sleep(0.2)


def remove_labelled(*labels: str, patience: float = 60) -> None:
    """A test's own sweep after a run it broke on purpose: what carries ``labels`` and the test itself made.

    "Itself" is the current owner, the test's own (tests/conftest.py
    ``lab_owner``), so the sweep never reaches another test's labs, even of
    this run, nor anybody else's.
    """
    mine = owner()
    this_run()  # refuses an owner that is no test's (a person's own labs)
    _sweep(lambda api: resources(*labels, owner=mine, api=api), patience, settle=KILLED_REQUESTS_SETTLE)


def remove_owned(owner: str, patience: float = 60) -> None:
    """Remove everything ``owner`` made (or an owner under it): an owner the caller made, never anybody else's."""
    if not owner:
        raise ValueError("remove_owned() needs an owner: it removes what that owner made")
    _sweep(lambda api: resources(owner=owner, api=api), patience)
