"""A stand-in for the backend interface, for tests that must not need Docker.

Hosts exist only as names with made-up addresses; commands are answered by
the test (``answer``), and every call is recorded, so a test can show what
the core asked of the engine, or that it asked nothing at all.

``FakeBackend`` is declared against the ``Backend`` protocol, so a type
checker holds every method to the protocol's signature; and on import the
fake is compared with the protocol (every method there, with the same
parameters), so that drift fails the tests at once, type checker or not.
"""

from __future__ import annotations

import inspect
import json
import posixpath
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from socklab.backend import (
    Backend,
    Channel,
    ExecResult,
    HostHandle,
    HostInfo,
    Interface,
    LabSummary,
    MissingPath,
    PathInfo,
)
from socklab.backend.base import Progress
from socklab.errors import SocklabError
from socklab.model import Host, Network

Answer = Callable[[str, list[str], str], ExecResult]


def ok(stdout: str = "") -> ExecResult:
    return ExecResult(0, stdout, "")


def outcome(word: str, **evidence: Any) -> ExecResult:
    return ok(json.dumps({"outcome": word, **evidence}) + "\n")


class FakeBackend(Backend):
    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or (lambda host, argv, user: ok())
        self.calls: list[tuple[Any, ...]] = []
        self.alive: set[str] = set()
        self.removal_seen_after: dict[str, int] = {}
        """host -> how many more lookups still find it running, for a host removed under the run."""
        self.folders: set[str] = {"/", "/lab", "/lab/log", "/lab/run", "/opt", "/opt/socklab", "/tmp"}
        """Folders every host has, as far as ``path_info`` tells."""
        self.put: list[tuple[str, str, bytes]] = []
        """Every archive put on a host: (host, folder, tar)."""
        self.archives: dict[tuple[str, str], bytes] = {}
        """What ``get_archive`` answers, by (host, path): a tar the test made."""
        self.agent_broken: set[str] = set()
        """Hosts whose agent ends as soon as it is attached (their checks go by exec)."""

    def ensure_image(self, progress: Progress) -> str:
        self.calls.append(("ensure_image",))
        return "fake:image"

    def host_images(self, hosts: Iterable[Host], progress: Progress) -> dict[str, str]:
        """Every host's own image is there: named ``fake:HOST`` (a call is recorded only if a host has one)."""
        images = {host.name: f"fake:{host.name}" for host in hosts if host.image}
        if images:
            self.calls.append(("host_images", sorted(images)))
        return images

    def create_lab(self, lab_id: str, scenario: str, networks: Iterable[Network], hosts: Iterable[Host],
                   on_started: Callable[[HostInfo], None] | None = None) -> dict[str, HostInfo]:
        self.calls.append(("create_lab", lab_id))
        self.alive.add(lab_id)
        subnets = {net.name: index for index, net in enumerate(networks)}
        infos: dict[str, HostInfo] = {}
        for number, host in enumerate(hosts, 2):
            interfaces = {
                net: Interface(net, f"198.18.{subnets[net]}.{number}", f"fd50:c1ab:0:{subnets[net]}::{number}",
                               f"198.18.{subnets[net]}.0/24", engine4=f"198.18.{subnets[net]}.1")
                for net in host.networks
            }
            infos[host.name] = HostInfo(HostHandle(lab_id, host.name, f"id-{host.name}"), interfaces)
            if on_started:
                on_started(infos[host.name])
        return infos

    def exec(self, handle: HostHandle, argv: Sequence[str], *, user: str, env: dict[str, str] | None = None,
             detach: bool = False, stdin: bytes | BinaryIO | None = None) -> ExecResult:
        self.calls.append(("exec", handle.host, list(argv), user))
        return self.answer(handle.host, list(argv), user)

    def attach(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Channel:
        """A host's agent (``nodes.agent``'s protocol), answering each request with the test's ``answer``.

        Each command it is asked to run is recorded as ``("agent", host, argv,
        user)``; ``agent_broken`` hosts' agents say nothing and end at once.
        """
        self.calls.append(("attach", handle.host, list(argv), user))
        return FakeAgentChannel(self, handle.host, user, alive=handle.host not in self.agent_broken)

    def stream(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Iterator[bytes]:
        """The answer's standard output, as one chunk (none if it is empty)."""
        self.calls.append(("stream", handle.host, list(argv), user))
        if stdout := self.answer(handle.host, list(argv), user).stdout:
            yield stdout.encode()

    def read_files(self, handle: HostHandle, path: str) -> dict[str, bytes]:
        self.calls.append(("read_files", handle.host, path))
        return {}

    def path_info(self, handle: HostHandle, path: str) -> PathInfo | None:
        self.calls.append(("path_info", handle.host, path))
        if path in self.folders:
            return PathInfo(posixpath.basename(path) or "/", 4096, True)
        return None

    def put_archive(self, handle: HostHandle, path: str, data: bytes) -> None:
        self.calls.append(("put_archive", handle.host, path))
        if path not in self.folders:
            raise MissingPath(f"host {handle.host!r} has no folder {path}")
        self.put.append((handle.host, path, data))

    def get_archive(self, handle: HostHandle, path: str) -> bytes:
        self.calls.append(("get_archive", handle.host, path))
        if (handle.host, path) not in self.archives:
            raise MissingPath(f"host {handle.host!r} has no {path}")
        return self.archives[handle.host, path]

    def destroy_lab(self, lab_id: str) -> int:
        self.calls.append(("destroy_lab", lab_id))
        self.alive.discard(lab_id)
        return 1

    def destroy_all(self) -> int:
        self.calls.append(("destroy_all",))
        return 0

    def destroy_owned(self, owner: str) -> int:
        self.calls.append(("destroy_owned", owner))
        return 0

    def labs(self) -> list[LabSummary]:
        return []

    def find_host(self, host: str, lab_id: str | None = None) -> HostHandle:
        self.calls.append(("find_host", host))
        if host in self.removal_seen_after:
            if self.removal_seen_after[host] == 0:
                raise SocklabError(f"no host {host!r} in lab {lab_id}")
            self.removal_seen_after[host] -= 1
        return HostHandle(lab_id or "lab", host, f"id-{host}")

    def shell(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> int:
        return 0


RecordingBackend = FakeBackend
RAN = ("exec", "agent")  # the kinds of call that run a command on a host: an exec of its own, or through its agent


class FakeAgentChannel:
    """What ``FakeBackend.attach`` gives: an agent answering on the spot, in its protocol's lines."""

    def __init__(self, backend: FakeBackend, host: str, user: str, alive: bool) -> None:
        self.backend, self.host, self.user = backend, host, user
        self.lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.lines.put(b'{"agent": "ready", "pid": 1}\n' if alive else None)

    def send(self, data: bytes) -> None:
        for line in data.splitlines():
            request = json.loads(line)
            self.backend.calls.append(("agent", self.host, request["argv"], self.user))
            done = self.backend.answer(self.host, request["argv"], self.user)
            self.lines.put((json.dumps({"id": request["id"], "exit": done.exit_code, "stdout": done.stdout,
                                        "stderr": done.stderr}) + "\n").encode())

    def receive(self) -> Iterator[bytes]:
        while (line := self.lines.get()) is not None:
            yield line

    def close(self) -> None:
        self.lines.put(None)


def drift(fake: type, protocol: type) -> list[str]:
    """How ``fake`` departs from ``protocol``: methods missing from the fake's own body, or taking other parameters.

    Parameter names, kinds and defaults are compared; their types are the type
    checker's business.
    """
    found = []
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        own = vars(fake).get(name)
        if own is None:
            found.append(f"{fake.__name__} lacks {name}{inspect.signature(member)}")
            continue
        want, have = (tuple((p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values())
                      for f in (member, own))
        if want != have:
            found.append(f"{fake.__name__}.{name}{inspect.signature(own)} is not {name}{inspect.signature(member)}")
    return found


if TYPE_CHECKING:  # a protocol method the fake leaves out is abstract: instantiating it fails the type check
    _complete: Backend = FakeBackend()

if _drift := drift(FakeBackend, Backend):
    raise TypeError("the fake backend has drifted from the Backend protocol: " + "; ".join(_drift))
