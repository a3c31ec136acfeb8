"""pytest fixtures for cross-host integration tests (registered as the ``socklab`` pytest11 plugin).

    def test_echo_across_hosts(socklab_lab):
        lab = socklab_lab(hosts={"server": ["lan"], "client": ["lan"]})
        lab.start("server", "echo serve --bind '' --port 65432", ready="tcp://0.0.0.0:65432")
        seen = lab.probe("client", to="{server.lan.ipv4}:65432", send="Hello, world")
        assert seen.outcome == "echoed", seen  # an Observation says what happened: outcome, errno, peer, time

``socklab_lab`` brings labs up (inline, or from a scenario file or catalogue
name, services started) and tears every one down when the test ends,
whatever it did. Each lab has its own id and subnets, so tests run side by
side under pytest-xdist. Without a Docker engine the fixtures fail when
``CI`` or ``SOCKLAB_REQUIRE_DOCKER`` is set, and skip otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from socklab import catalogue
from socklab.backend import Backend
from socklab.errors import EnvironmentProblem
from socklab.lab import Lab
from socklab.model import FileCopy, Host, Image, Network, Scenario

LabFactory = Callable[..., Lab]


def pytest_configure(config: pytest.Config) -> None:
    """Let SIGTERM end a test session the way Ctrl-C does, so that every lab is torn down."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def interrupt(signum: int, frame: object) -> NoReturn:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def socklab_backend() -> Backend:
    """The backend $SOCKLAB_BACKEND names (one Docker engine by default, or a swarm), its node image ready.

    Once per session (or per xdist worker).
    """
    from socklab.api import default_backend

    backend = default_backend()
    try:
        backend.ensure_image(lambda text: None)
    except EnvironmentProblem as exc:
        if os.environ.get("CI") or os.environ.get("SOCKLAB_REQUIRE_DOCKER"):
            pytest.fail(f"socklab needs a Docker engine here: {exc}", pytrace=False)
        pytest.skip(f"no usable Docker engine: {exc}")
    return backend


def _lab_name(test_name: str) -> str:
    """A lab name from a test's name: lowercase letters, digits and dashes, short enough for labels."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:24].strip("-")
    return f"t-{slug}" if not slug[:1].isalpha() else slug


def _inline(hosts: Mapping[str, Sequence[str]], networks: Mapping[str, Network] | Sequence[str] | None,
            images: Mapping[str, str | Path | Image], here: Path) -> tuple[dict[str, Network], dict[str, Host]]:
    """``hosts={"server": ["lan"]}``; networks named by hosts are dual-stack unless given as Network objects.

    ``images={"server": "name:tag"}`` gives a host an image already on the
    engine; a ``Path`` (relative to the test file) names a folder with a
    Dockerfile to build it from.
    """
    declared = dict(networks) if isinstance(networks, Mapping) else {n: Network(n) for n in networks or ()}
    for attached in hosts.values():
        for name in attached:
            declared.setdefault(name, Network(name))
    unknown = set(images) - set(hosts)
    if unknown:
        raise TypeError(f"image= names hosts that hosts= does not: {', '.join(sorted(unknown))}")
    return declared, {name: Host(name, tuple(attached), image=_image(images.get(name), here))
                      for name, attached in hosts.items()}


def _image(given: str | Path | Image | None, here: Path) -> Image | None:
    if given is None or isinstance(given, Image):
        return given
    if isinstance(given, Path):
        return Image(build=given if given.is_absolute() else here / given)
    return Image(name=given)


def _files(given: Mapping[str, str | Path], here: Path) -> tuple[FileCopy, ...]:
    """``files={"/lab/app": "app/"}``: sources relative to the test file's folder, as a scenario's are to its own."""
    copies = []
    for target, source in given.items():
        path = Path(source) if Path(source).is_absolute() else here / source
        if not path.exists():
            raise FileNotFoundError(f"files={{{target!r}: {str(source)!r}}}: {path} does not exist")
        copies.append(FileCopy(target, path))
    return tuple(copies)


@contextlib.contextmanager
def _factory(backend: Backend, test_name: str, here: Path) -> Iterator[LabFactory]:
    with contextlib.ExitStack() as labs:

        def make(scenario: str | Path | Scenario | None = None, *,
                 hosts: Mapping[str, Sequence[str]] | None = None,
                 networks: Mapping[str, Network] | Sequence[str] | None = None,
                 files: Mapping[str, str | Path] | None = None,
                 image: Mapping[str, str | Path | Image] | None = None,
                 start_services: bool = True, **options: Any) -> Lab:
            """A lab from a scenario (name, file or object), or from ``hosts`` and ``networks`` given inline.

            ``files`` go onto every host (``{"/lab/app": "app/"}``, relative to
            the test file); ``image`` gives hosts images of their own.
            """
            copies = _files(files or {}, here)
            if scenario is not None:
                if isinstance(scenario, str | Path) and str(scenario).endswith(".toml") and (here / scenario).exists():
                    scenario = here / scenario  # a scenario file beside the test
                loaded = scenario if isinstance(scenario, Scenario) else catalogue.load([str(scenario)])[0]
                lab = labs.enter_context(Lab.open(backend, loaded.name, loaded.networks, loaded.hosts,
                                                  files=(*loaded.files, *copies), **options))
                for service in loaded.services if start_services else ():
                    lab.require(service)
                return lab
            if not hosts:
                raise TypeError("socklab_lab() needs a scenario, or hosts={name: [networks]}")
            declared, made = _inline(hosts, networks, image or {}, here)
            return labs.enter_context(Lab.open(backend, _lab_name(test_name), declared, made, files=copies,
                                               **options))

        yield make


@pytest.fixture
def socklab_lab(socklab_backend: Backend, request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    """Bring labs up for this test; all of them are torn down when it ends."""
    with _factory(socklab_backend, request.node.name, request.path.parent) as make:
        yield make


@pytest.fixture(scope="module")
def socklab_module_lab(socklab_backend: Backend, request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    """The same, for labs shared by a module's tests (brought up once, torn down after the last test)."""
    with _factory(socklab_backend, request.module.__name__.rsplit(".", 1)[-1], request.path.parent) as make:
        yield make
