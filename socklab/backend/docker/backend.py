"""Labs as labelled containers on labelled, internal, dual-stack bridge networks.

Every resource carries ``socklab.lab=<id>``: teardown, ``invoke clean`` and
discovery all work from labels, so they find what an interrupted (or killed)
run created even if this process never learnt its id. Every resource also
carries ``socklab.owner``, who made it (``constants.owner()``, read when the
lab is created).
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, ClassVar, NamedTuple, cast
from urllib.parse import quote

from docker.errors import APIError, NotFound
from docker.types import DriverConfig, IPAMConfig, IPAMPool, Mount
from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter

import docker
from socklab.backend import subnets
from socklab.backend.base import (
    IMAGE_FIX,
    ExecResult,
    HostHandle,
    HostInfo,
    ImageProblem,
    Interface,
    LabSummary,
    MissingPath,
    PathInfo,
    Progress,
)
from socklab.backend.docker import terminal
from socklab.backend.docker.channel import ExecChannel
from socklab.backend.docker.engine import connect, engine_errors
from socklab.backend.docker.images import ImageBuilder, OwnImages
from socklab.concurrency import parallel_map
from socklab.constants import (
    GRADED_ID,
    LAB_HOME,
    LABEL_HOST,
    LABEL_LAB,
    LABEL_NETWORK,
    LABEL_OWNER,
    LABEL_SCENARIO,
    PROJECT,
    SUBMISSION_HOME,
    owner,
)
from socklab.errors import EnvironmentProblem, SocklabError
from socklab.model import Host, Network

# What a lab host may do: configure its own interfaces, firewall and queues,
# and open raw sockets (ping, tcpdump). SETUID and SETGID only because
# Debian's tcpdump switches user after opening the capture device and will
# not run at all if it cannot (even to stay root). Every other capability is
# dropped (Docker's default set has eleven more), no privilege escalation,
# bounded memory and processes. Open files keep the engine's own limit (a
# container cannot be given more; node programs raise their soft limit).
CAPABILITIES = ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]
MEMORY_LIMIT = "512m"
PIDS_LIMIT = 1024
# Every folder of a host that a graded program (the student user) may write
# in is a size-capped tmpfs of its own, so that a submission cannot fill the
# engine's disk, only these: the world-writable folders of the image, and the
# graded user's home. Each is an anonymous volume of the local driver with
# tmpfs options rather than the engine's tmpfs mounts, because the engine's
# archive API (``docker cp``, how a lab's files arrive) writes through volume
# mounts but not through tmpfs ones: files put there would vanish under the
# mount. The volumes carry the lab's labels and go with their container
# (removed with ``v=True``). Their pages count against the host's memory
# limit, so their sizes together stay well under it. /dev/shm is the
# engine's own tmpfs, made smaller. A graded program's single files are
# capped too (``socklab.commands.GRADED_LIMITS``), its log included.
SCRATCH = {  # folder -> (size, owner's uid, mode)
    "/tmp": ("64m", 0, "1777"),
    "/var/tmp": ("16m", 0, "1777"),
    "/run/lock": ("1m", 0, "1777"),
    SUBMISSION_HOME: ("64m", GRADED_ID, "0755"),
}
SHM_SIZE = "16m"
SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": "0",  # the lab user may serve on port 80 in a lesson
    "net.ipv6.conf.lo.disable_ipv6": "0",  # ::1 on every host, even one on no IPv6 network
}
# Every host's main process, whatever its image says (an image of one's own
# may have an ENTRYPOINT or a CMD): the lab starts programs as services.
MAIN_PROCESS = ["sleep", "infinity"]
GO_MODE_DIR = 1 << 31  # the engine's file modes are Go's os.FileMode
PATH_STAT_HEADER = "X-Docker-Container-Path-Stat"


@dataclass(frozen=True)
class Attachment:
    """A host's place on one of the lab's networks: the engine's network, and the interface it gets there."""

    network: str  # the engine's network name
    interface: Interface


@dataclass(frozen=True)
class CreatedNetwork:
    """A network the engine made for a lab: its engine name and the subnets it was given."""

    name: str
    subnet4: ipaddress.IPv4Network
    subnet6: ipaddress.IPv6Network | None


class Given(NamedTuple):
    """A container's addresses on one network, as the engine gave them."""

    ipv4: str | None
    ipv6: str | None
    mac: str


def lab_labels(lab_id: str, scenario: str) -> dict[str, str]:
    """The labels every resource of a lab carries (teardown and discovery find it by them)."""
    return {LABEL_LAB: lab_id, LABEL_SCENARIO: scenario, LABEL_OWNER: owner()}


def attachments(hosts: list[Host], created: dict[str, CreatedNetwork]) -> list[tuple[Host, list[Attachment]]]:
    """Each host with its attachments: on each of its networks, the next address after the hosts before it."""
    plans = []
    for host in hosts:
        attached = []
        for net in host.networks:
            made = created[net]
            index = [h.name for h in hosts if net in h.networks].index(host.name)
            subnet4, subnet6 = made.subnet4, made.subnet6
            interface = Interface(
                net,
                ipv4=subnets.host_address(subnet4, index),
                ipv6=subnets.host_address(subnet6, index) if subnet6 else None,
                subnet4=str(subnet4),
                subnet6=str(subnet6) if subnet6 else None,
                engine4=subnets.gateway(subnet4),
                engine6=subnets.gateway(subnet6) if subnet6 else None,
            )
            attached.append(Attachment(made.name, interface))
        plans.append((host, attached))
    return plans


REMOVAL_ATTEMPTS = 5


def _scratch(labels: dict[str, str]) -> list[Mount]:
    """The host's size-capped writable folders (``SCRATCH``), as labelled anonymous tmpfs volumes."""
    return [Mount(folder, None, type="volume", labels=labels, driver_config=DriverConfig(
        "local", {"type": "tmpfs", "device": "tmpfs",
                  "o": f"size={size},uid={uid},gid={uid},mode={mode},nosuid,nodev"}))
            for folder, (size, uid, mode) in SCRATCH.items()]


def _remove(call: Callable[[], Any]) -> bool:
    """Remove something that may already be gone (a concurrent clean, say); True if this call removed it.

    The engine sometimes fails a removal for a moment (a container's file
    system still busy while an exec ends: "directory not empty", "device or
    resource busy"); such server errors are retried a few times, briefly.
    """
    for attempt in range(REMOVAL_ATTEMPTS):
        try:
            call()
        except NotFound:
            return False
        except APIError as exc:
            if exc.status_code == 409:  # removal already in progress elsewhere
                return False
            if _busy(exc):
                raise  # the caller's sweep comes back to it
            if not exc.is_server_error() or attempt == REMOVAL_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * 2**attempt)
        else:
            return True
    return False


def summarise(containers: Iterable[dict[str, Any]], networks: Iterable[dict[str, Any]],
              nodes: Mapping[str, str] | None = None) -> list[LabSummary]:
    """The labs that labelled containers and networks (the engine's listings of them) make up, by lab id.

    ``nodes`` says, on a swarm, which node each container (by id) runs on.
    """
    found: dict[str, dict[str, Any]] = {}

    def lab_of(labels: dict[str, str]) -> dict[str, Any]:
        return found.setdefault(labels[LABEL_LAB], {"scenario": labels.get(LABEL_SCENARIO, "?"),
                                                    "owner": labels.get(LABEL_OWNER, ""), "h": [], "n": []})

    for container in containers:
        host = container["Labels"].get(LABEL_HOST, "?")
        lab_of(container["Labels"])["h"].append((host, (nodes or {}).get(container["Id"], "")))
    for network in networks:
        lab_of(network["Labels"])["n"].append(network["Labels"].get(LABEL_NETWORK, "?"))
    summaries = []
    for lab_id, v in sorted(found.items()):
        hosts = sorted(v["h"])
        placed = tuple(node for _, node in hosts) if nodes else ()
        summaries.append(LabSummary(lab_id, v["scenario"], tuple(host for host, _ in hosts), tuple(sorted(v["n"])),
                                    v["owner"], placed))
    return summaries


def _busy(exc: APIError) -> bool:
    """A network that still has endpoints: a container leaving it (403), or on a swarm, a task not yet let go."""
    return exc.status_code == 403 or "in use by task" in str(exc.explanation or exc)


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    """What a file gives, as it comes (a pipe's writes, not its end), until it ends."""
    while chunk := os.read(source.fileno(), 65536):
        yield chunk


def _send_all(sock: Any, chunks: Iterable[bytes], *, close: bool = True) -> None:
    """Send every chunk on an exec's socket, then close its sending side (unless not asked): the command's stdin
    ends."""
    try:
        for chunk in chunks:
            sock.sendall(chunk)
        if close:
            sock.shutdown(socket.SHUT_WR)
    except OSError:  # the command exited without reading it all, or the exec is over: its output says why
        pass


def counted(argv: Sequence[str], size: int) -> list[str]:
    """``argv`` reading exactly ``size`` bytes of its standard input, then its end: for a connection that cannot
    close its sending side alone (TLS: Python's ssl has no half-close, and its ``shutdown`` drops the encryption
    for what follows)."""
    return ["sh", "-c", 'head -c "$0" | "$@"', str(size), *argv]


class DockerBackend:
    # How lab networks are made on this engine: bridges, local to it (the swarm backend makes overlays).
    NETWORK_OPTIONS: ClassVar[dict[str, Any]] = {"driver": "bridge"}
    # Rounds of a teardown while a network stays busy (about 1 s apart after the first few): a container leaving
    # a bridge lets go of it at once, and the first round nearly always does it.
    REMOVAL_SWEEPS: ClassVar[int] = 14

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._image: str | None = None
        self._own_images: OwnImages | None = None
        self._allocating = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    # -- image ---------------------------------------------------------------

    def ensure_image(self, progress: Progress) -> str:
        if self._image is None:
            with engine_errors("preparing the node image"):
                self._image = ImageBuilder(self.client).ensure(progress)
        return self._image

    def host_images(self, hosts: Iterable[Host], progress: Progress) -> dict[str, str]:
        own = [host for host in hosts if host.image]
        if not own:
            return {}
        node_image = self.ensure_image(progress)
        if self._own_images is None:
            self._own_images = OwnImages(self.client)
        builder = self._own_images
        with engine_errors("preparing the hosts' own images"):
            return {host.name: builder.ensure(host.name, host.image, node_image, progress)
                    for host in own if host.image}

    # -- labs ----------------------------------------------------------------

    def create_lab(
        self, lab_id: str, scenario: str, networks: Iterable[Network], hosts: Iterable[Host],
        on_started: Callable[[HostInfo], None] | None = None,
    ) -> dict[str, HostInfo]:
        hosts = list(hosts)
        image = self.ensure_image(lambda message: None)
        images = self.host_images(hosts, lambda message: None)  # before anything is made: a bad one makes nothing
        labels = lab_labels(lab_id, scenario)
        with engine_errors(f"creating lab {lab_id} of {scenario}"):
            created = {net.name: self.create_network(lab_id, net, labels) for net in networks}

            def bring_up(plan: tuple[Host, list[Attachment]]) -> HostInfo:
                host, attachments = plan
                container = self.create_host(images.get(host.name, image), lab_id, labels, host, attachments)
                info = HostInfo(HostHandle(lab_id, host.name, container),
                                {a.interface.network: a.interface for a in attachments})
                if on_started:
                    on_started(info)
                return info

            infos = parallel_map(bring_up, attachments(hosts, created))
        return {info.handle.host: info for info in infos}

    def create_network(self, lab_id: str, net: Network, labels: dict[str, str]) -> CreatedNetwork:
        """A network of the lab on free subnets, made with ``NETWORK_OPTIONS``."""
        name = f"{PROJECT}-{lab_id}-{net.name}"
        with self._allocating:  # threads of this process never race each other for a subnet
            for subnet4, subnet6 in self._candidates(net):
                pools = [IPAMPool(subnet=str(subnet4), gateway=subnets.gateway(subnet4))]
                if subnet6:
                    pools.append(IPAMPool(subnet=str(subnet6), gateway=subnets.gateway(subnet6)))
                try:
                    self.api.create_network(
                        name, internal=True, enable_ipv6=bool(subnet6), ipam=IPAMConfig(pool_configs=pools),
                        labels=labels | {LABEL_NETWORK: net.name}, **self.NETWORK_OPTIONS,
                    )
                except APIError as exc:
                    if "overlap" in str(exc).lower():
                        continue  # another lab (or program) took it meanwhile
                    raise
                if not self.allocated(name, [pool["Subnet"] for pool in pools]):
                    continue  # another client took it meanwhile, and the engine has made this one unusable
                return CreatedNetwork(name, subnet4, subnet6)
        if net.subnet4 or net.subnet6:
            raise EnvironmentProblem(
                f"network {net.name!r}: the subnet the scenario sets ({net.subnet4 or net.subnet6}) is in use by "
                "another network on this engine; stop the lab using it, or leave the subnet out to have one allocated"
            )
        raise EnvironmentProblem(
            f"no free subnet left in the lab pools for network {net.name!r}: every /24 of 198.18.0.0/15 is in use. "
            "Run `invoke clean` if they belong to labs of yours left behind (`invoke labs` shows whose they are), "
            "or run fewer labs at once"
        )

    def allocated(self, name: str, subnets: list[str]) -> bool:
        """Whether a network just made has its subnets: a bridge is refused at once if they are taken."""
        return True

    def _candidates(self, net: Network) -> Iterator[tuple[Any, Any]]:
        if net.subnet4 and (net.subnet6 or not net.ipv6):
            yield net.subnet4, net.subnet6
            return
        for v4, v6 in subnets.free_pairs(self.taken_subnets()):
            yield net.subnet4 or v4, (net.subnet6 or v6) if net.ipv6 else None

    def taken_subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        taken = []
        for network in self.api.networks():
            for config in (network.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet"):
                    taken.append(ipaddress.ip_network(config["Subnet"], strict=False))
        return taken

    def create_host(
        self, image: str, lab_id: str, labels: dict[str, str], host: Host, attached: list[Attachment]
    ) -> str:
        """Create and start a host's container, hardened, on its networks; return its id."""
        first, rest = (attached[0], attached[1:]) if attached else (None, [])
        host_config = self.api.create_host_config(
            init=True,
            cap_drop=["ALL"],
            cap_add=CAPABILITIES,
            security_opt=["no-new-privileges"],
            mem_limit=MEMORY_LIMIT,
            pids_limit=PIDS_LIMIT,
            shm_size=SHM_SIZE,
            mounts=_scratch(labels),
            sysctls=SYSCTLS | dict(host.sysctls),
            network_mode=first.network if first else "none",
        )
        networking = None
        if first:
            networking = self.api.create_networking_config(
                cast(Any, {first.network: self._endpoint(first, host.name)}))
        container: str = self.api.create_container(
            image, name=f"{PROJECT}-{lab_id}-{host.name}", hostname=host.name, labels=labels | {LABEL_HOST: host.name},
            host_config=host_config, networking_config=networking, detach=True, entrypoint=[""], command=MAIN_PROCESS,
        )["Id"]
        for attachment in rest:
            self.api.connect_container_to_network(
                container, attachment.network, ipv4_address=attachment.interface.ipv4,
                ipv6_address=attachment.interface.ipv6, aliases=[host.name],
            )
        try:
            self.api.start(container)
        except APIError as exc:
            why = str(exc.explanation or exc)
            if host.image and "executable file not found" in why:
                raise ImageProblem(f"hosts.{host.name}.image: {host.image} cannot run a lab host, whose main process "
                                   f"is `{' '.join(MAIN_PROCESS)}`: {why}. Fix: {IMAGE_FIX}") from None
            raise
        return container

    def addresses(self, container: str) -> dict[str, Given]:
        """What the engine gave a container on each of its networks, by network name."""
        networks = self.api.inspect_container(container)["NetworkSettings"]["Networks"] or {}
        return {name: Given(found.get("IPAddress") or None, found.get("GlobalIPv6Address") or None,
                            found.get("MacAddress") or "")
                for name, found in networks.items()}

    def _endpoint(self, attachment: Attachment, alias: str) -> Any:
        return self.api.create_endpoint_config(
            ipv4_address=attachment.interface.ipv4, ipv6_address=attachment.interface.ipv6, aliases=[alias]
        )

    # -- hosts ---------------------------------------------------------------

    def exec(
        self, handle: HostHandle, argv: Sequence[str], *, user: str, env: dict[str, str] | None = None,
        detach: bool = False, stdin: bytes | BinaryIO | None = None,
    ) -> ExecResult:
        if stdin is not None and self.over_tls:
            stdin = stdin if isinstance(stdin, bytes) else stdin.read()  # all of it first: it is counted
            argv = counted(argv, len(stdin))
        with engine_errors(f"running a command on {handle.host}"):
            exec_id = self.api.exec_create(handle.ref, list(argv), user=user, environment=env, workdir=LAB_HOME,
                                           stdin=stdin is not None)["Id"]
            if detach:
                self.api.exec_start(exec_id, detach=True)
                return ExecResult(0, "", "")
            if stdin is None:
                stdout, stderr = self.api.exec_start(exec_id, demux=True)
            else:
                stdout, stderr = self._feed(exec_id, stdin)
            code = self.api.exec_inspect(exec_id)["ExitCode"]
        return ExecResult(code, (stdout or b"").decode(errors="replace"), (stderr or b"").decode(errors="replace"))

    @property
    def over_tls(self) -> bool:
        """Whether this engine is reached over TLS (a remote engine's ``tcp://`` endpoint)."""
        return str(self.api.base_url).startswith("https://")

    def attach(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> ExecChannel:
        with engine_errors(f"attaching to a command on {handle.host}"):
            exec_id = self.api.exec_create(handle.ref, list(argv), user=user, workdir=LAB_HOME, stdin=True)["Id"]
            return ExecChannel(self.api, exec_id)

    def stream(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Iterator[bytes]:
        with engine_errors(f"streaming from {handle.host}"):
            exec_id = self.api.exec_create(handle.ref, list(argv), user=user, workdir=LAB_HOME)["Id"]
            for stdout, _ in self.api.exec_start(exec_id, stream=True, demux=True):
                if stdout:
                    yield stdout

    def _feed(self, exec_id: str, data: bytes | BinaryIO) -> tuple[bytes | None, bytes | None]:
        """Write ``data`` to an exec's stdin, close it, and collect stdout and stderr.

        Unpacking nodes/ this way, inside the exec that prepares the host, costs
        a fraction of the engine's own archive copy (which spawns a chrooted
        untar per call). A file is passed on as it is read, on a thread of its
        own, so that a command that never reads it (or a pipe that never ends)
        cannot hold the exec open: it ends when the command does.
        """
        stream = self.api.exec_start(exec_id, socket=True)
        sock: Any = getattr(stream, "_sock", stream)
        try:
            if isinstance(data, bytes):
                _send_all(sock, [data], close=not self.over_tls)  # over TLS the command counts it (``counted``)
            else:
                threading.Thread(target=_send_all, args=(sock, _chunks(data)), daemon=True).start()
            frames = (demux_adaptor(*frame) for frame in frames_iter(stream, tty=False))  # type: ignore[no-untyped-call]  # the SDK's helper has no annotations
            output: tuple[bytes | None, bytes | None] = consume_socket_output(frames, demux=True)
            return output
        finally:
            sock.close()

    def read_files(self, handle: HostHandle, path: str) -> dict[str, bytes]:
        with engine_errors(f"reading {path} on {handle.host}"):
            try:
                stream, _ = self.api.get_archive(handle.ref, path)
            except NotFound:
                return {}
            data = b"".join(stream)
        files = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile() and (content := tar.extractfile(member)):
                    files[member.name.partition("/")[2] or member.name] = content.read()
        return files

    def path_info(self, handle: HostHandle, path: str) -> PathInfo | None:
        """The engine's stat of a path in a container (HEAD on its archive endpoint: nothing is copied)."""
        url = f"{self.api.base_url}/v{self.api.api_version}/containers/{quote(handle.ref, safe='')}/archive"
        with engine_errors(f"looking at {path} on {handle.host}"):
            response = self.api.head(url, params={"path": path}, timeout=self.api.timeout)
        if response.status_code == 404:
            return None
        if not response.ok or PATH_STAT_HEADER not in response.headers:
            raise EnvironmentProblem(f"The Docker engine refused to look at {path} on {handle.host}: "
                                     f"{response.status_code} {response.reason}")
        found = json.loads(base64.b64decode(response.headers[PATH_STAT_HEADER]))
        return PathInfo(str(found.get("name", "")), int(found.get("size", 0)),
                        bool(int(found.get("mode", 0)) & GO_MODE_DIR), str(found.get("linkTarget", "")))

    def put_archive(self, handle: HostHandle, path: str, data: bytes) -> None:
        with engine_errors(f"copying files to {path} on {handle.host}"):
            try:
                self.api.put_archive(handle.ref, path, data)
            except NotFound:
                raise MissingPath(f"host {handle.host!r} has no folder {path}") from None

    def get_archive(self, handle: HostHandle, path: str) -> bytes:
        with engine_errors(f"copying {path} from {handle.host}"):
            try:
                stream, _ = self.api.get_archive(handle.ref, path)
                return b"".join(stream)
            except NotFound:
                raise MissingPath(f"host {handle.host!r} has no {path}") from None

    def find_host(self, host: str, lab_id: str | None = None) -> HostHandle:
        """The host in ``lab_id``, or else in the caller's own only lab that has it.

        Without a lab id, only labs of the caller's own (``constants.owner``)
        count: on an engine shared by several people (or by tests running side
        by side), ``invoke exec client`` must never land in somebody else's lab.
        """
        filters = [f"{LABEL_HOST}={host}"] + ([f"{LABEL_LAB}={lab_id}"] if lab_id else [f"{LABEL_OWNER}={owner()}"])
        with engine_errors("looking for a host"):
            found = self.api.containers(filters={"label": filters, "status": "running"})
        if not found:
            where = f"lab {lab_id}" if lab_id else "any running lab of yours"
            raise SocklabError(f"no host {host!r} in {where}; start one with `invoke up SCENARIO`, or name "
                               "another's lab with --lab (see `invoke labs`)")
        if len(found) > 1:
            labs = ", ".join(sorted(c["Labels"][LABEL_LAB] for c in found))
            raise SocklabError(f"host {host!r} exists in several labs ({labs}); choose one with --lab")
        return HostHandle(found[0]["Labels"][LABEL_LAB], host, found[0]["Id"])

    def shell(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> int:
        with engine_errors(f"attaching to {handle.host}"):
            return terminal.attach(self.api, handle.ref, list(argv), user=user)

    # -- discovery and teardown ------------------------------------------------

    def labs(self) -> list[LabSummary]:
        with engine_errors("listing labs"):
            containers = self.api.containers(all=True, filters={"label": LABEL_LAB})
            networks = self.api.networks(filters={"label": LABEL_LAB})
        return summarise(containers, networks)

    def destroy_lab(self, lab_id: str) -> int:
        return self.remove_labelled(f"{LABEL_LAB}={lab_id}")

    def destroy_all(self) -> int:
        return self.remove_labelled(LABEL_LAB)

    def destroy_owned(self, owner: str) -> int:
        return self.remove_labelled(f"{LABEL_OWNER}={owner}")

    def remove_labelled(self, label: str, *, networks: bool = True, sweeps: int | None = None) -> int:
        """Containers first (they hold the networks), then networks (unless not asked), then volumes.

        Another process may still be attaching a container to one of the
        networks (a run being cleaned away under its feet): the network is
        then busy, and the sweep goes round again, ``sweeps`` times at most
        (``REMOVAL_SWEEPS``). On a swarm, a node's engine removes its
        containers and volumes, and the manager the networks
        (``networks=False`` on the nodes).
        """
        removed = 0
        sweeps = sweeps or self.REMOVAL_SWEEPS
        with engine_errors("tearing down"):
            for sweep in range(sweeps):
                if sweep:
                    time.sleep(min(1.0, 0.05 * 2**sweep))  # the engine lets go of a network's endpoints
                containers = self.api.containers(all=True, filters={"label": label})

                def remove_container(container: dict[str, Any]) -> bool:
                    return _remove(lambda: self.api.remove_container(container["Id"], force=True, v=True))

                removed += sum(parallel_map(remove_container, containers))
                busy = False
                for network in self.api.networks(filters={"label": label}) if networks else ():
                    try:
                        removed += _remove(partial(self.api.remove_network, network["Id"]))
                    except APIError as exc:
                        if not _busy(exc) or sweep == sweeps - 1:
                            raise
                        busy = True
                for volume in self.api.volumes(filters={"label": label}).get("Volumes") or []:
                    removed += _remove(partial(self.api.remove_volume, volume["Name"], force=True))
                if not busy:
                    break
        return removed
