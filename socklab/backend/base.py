"""The interface between a lab and the engine that runs it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from socklab.errors import SocklabError
from socklab.model import Host, Network


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class HostHandle:
    """Enough to reach one host again, from this process or another."""

    lab_id: str
    host: str
    ref: str  # the engine's own id for it (a container id, for Docker)
    node: str = ""  # on a swarm, the id of the node whose engine runs it; "" on one engine


@dataclass(frozen=True)
class Interface:
    """A host's attachment to one network, as the engine configured it."""

    network: str
    ipv4: str | None
    ipv6: str | None
    subnet4: str | None = None
    subnet6: str | None = None
    # The engine's own addresses on the network (Docker's bridge gateway):
    # not a lab host, so the lab blocks them to keep hosts inside the lab.
    engine4: str | None = None
    engine6: str | None = None


@dataclass(frozen=True)
class HostInfo:
    handle: HostHandle
    interfaces: dict[str, Interface] = field(default_factory=dict)  # by network name


@dataclass(frozen=True)
class LabSummary:
    lab_id: str
    scenario: str
    hosts: tuple[str, ...]
    networks: tuple[str, ...]
    owner: str = ""  # who made it (socklab.constants.owner()); "" for a lab made before labs had owners
    nodes: tuple[str, ...] = ()  # on a swarm, the node each host runs on, in the order of ``hosts``; () on one engine


@dataclass(frozen=True)
class PathInfo:
    """What is at a path on a host, as the engine sees it."""

    name: str
    size: int
    is_dir: bool
    link_target: str = ""  # for a symbolic link: where it points


IMAGE_FIX = ('build it FROM socklab-node: image = { build = "FOLDER" }, with a Dockerfile in FOLDER starting '
             '"FROM socklab-node" (it builds with no registry)')


class ImageProblem(SocklabError):
    """A host's own image is not on the engine, does not build, or lacks what a lab host needs (exit 2).

    The message names the key (``hosts.NAME.image``) and the fix; whatever
    the lab had made is torn down.
    """


class MissingPath(SocklabError):
    """A path asked for on a host is not there (exit 2)."""


Progress = Callable[[str], None]


class Channel(Protocol):
    """A command's standard input and output, held open: how a host's resident agent is reached (socklab.agents)."""

    def send(self, data: bytes) -> None:
        """Write to the command's standard input; safe from several threads at once. OSError if it is gone."""

    def receive(self) -> Iterator[bytes]:
        """What the command writes on its standard output, as it comes, until it ends or the channel is closed."""

    def close(self) -> None:
        """End the command's standard input and let go of the channel; a ``receive`` under way ends."""


class Backend(Protocol):
    def ensure_image(self, progress: Progress) -> str:
        """Make sure the node image exists (building it if needed); return its name."""

    def host_images(self, hosts: Iterable[Host], progress: Progress) -> dict[str, str]:
        """Make sure the images of hosts that have their own (``Host.image``) are there; return them by host.

        An image named must already be on the engine; one to build is built
        from its folder, unless an image of the same content exists. Raises
        ImageProblem naming ``hosts.NAME.image`` before anything is created.
        """

    def create_lab(
        self, lab_id: str, scenario: str, networks: Iterable[Network], hosts: Iterable[Host],
        on_started: Callable[[HostInfo], None] | None = None,
    ) -> dict[str, HostInfo]:
        """Create networks and hosts, and start them.

        ``on_started`` is called for each host as soon as it runs, on a thread
        of its own, so that hosts get ready while others are still starting;
        if it raises, creation fails with that error.
        """

    def exec(
        self, handle: HostHandle, argv: Sequence[str], *, user: str, env: dict[str, str] | None = None,
        detach: bool = False, stdin: bytes | BinaryIO | None = None,
    ) -> ExecResult:
        """Run a command on a host and wait for it (unless ``detach``), feeding it ``stdin`` if given.

        ``stdin`` is bytes, or a file (a pipe, say) passed on as it is read,
        until it ends or the command does (``invoke exec`` forwards its own).
        """

    def attach(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Channel:
        """Start a command on a host and hold its standard input and output open (``Channel``) until closed."""

    def stream(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Iterator[bytes]:
        """Run a command on a host and yield its standard output as it comes, until it exits."""

    def read_files(self, handle: HostHandle, path: str) -> dict[str, bytes]:
        """Every regular file under ``path`` on a host, by name relative to it."""

    def path_info(self, handle: HostHandle, path: str) -> PathInfo | None:
        """What is at ``path`` on a host (a link is not followed), or None if nothing is."""

    def put_archive(self, handle: HostHandle, path: str, data: bytes) -> None:
        """Unpack a tar into the folder ``path`` on a host, as the tar's owners and modes say.

        The engine unpacks it, not a program of the host. Raises MissingPath
        if the folder is not there.
        """

    def get_archive(self, handle: HostHandle, path: str) -> bytes:
        """A tar of ``path`` on a host (a file, or a folder and all it holds), its first entry named after it.

        Raises MissingPath if nothing is there.
        """

    def destroy_lab(self, lab_id: str) -> int:
        """Remove everything labelled with this lab id; return how many resources went."""

    def destroy_all(self) -> int:
        """Remove everything labelled by socklab, whoever created it."""

    def destroy_owned(self, owner: str) -> int:
        """Remove everything of every lab that ``owner`` made (``constants.owner``), and nobody else's."""

    def labs(self) -> list[LabSummary]:
        """The labs that exist on the engine now."""

    def find_host(self, host: str, lab_id: str | None = None) -> HostHandle:
        """A running host by name: in ``lab_id``, or else in the only lab of the caller's own that has it."""

    def shell(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> int:
        """Attach the terminal to an interactive command on a host; return its exit status."""
