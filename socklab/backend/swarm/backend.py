"""Labs across a Docker Swarm: overlay networks on a manager, each host a container on the engine of its node.

The hosts are the same hardened containers the Docker backend makes (the
same code makes them, on each node's engine); what changes is the network
under them and where each one runs. Lab networks are overlays made on the
manager (attachable, so that a plain container on any node may join;
internal), from the same pools as on one engine, so addresses read the
same: IPv4 from Docker, IPv6 from socklab itself (``ipv6``). Hosts are
placed on nodes by ``placement``. Everything carries the lab's labels, so
that ``labs``, ``down`` and ``clean`` find it on every node; a teardown a
lost node cut short is finished once it is back (``unfinished``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, BinaryIO

import requests
from docker.errors import APIError

from socklab.backend.base import Channel, ExecResult, HostHandle, HostInfo, LabSummary, PathInfo, Progress
from socklab.backend.docker.backend import (
    Attachment,
    CreatedNetwork,
    DockerBackend,
    attachments,
    lab_labels,
    summarise,
)
from socklab.backend.docker.engine import EngineUnreachable, engine_errors
from socklab.backend.swarm import distribution, ipv6, placement, unfinished
from socklab.backend.swarm.cluster import ANSWER_WAIT, Cluster
from socklab.backend.swarm.overlays import OverlayNetworks
from socklab.concurrency import parallel_map
from socklab.constants import LABEL_LAB, LABEL_OWNER, owner
from socklab.errors import EnvironmentProblem, LabError, SocklabError
from socklab.model import Host, Network

GONE_WAIT = 10.0  # seconds the nodes may take to drop their copies of the networks removed


class NodeLost(LabError):
    """A node's engine stopped answering while a lab had hosts on it: that lab fails, the run goes on (exit 1)."""


class SwarmBackend:
    """The Backend interface (``socklab.backend.base``) over a swarm; see the module's docstring."""

    def __init__(self, endpoint: str | None = None) -> None:
        self._endpoint = endpoint
        self._cluster: Cluster | None = None
        self._networks: OverlayNetworks | None = None
        self._image: str | None = None
        self._lock = threading.Lock()
        self._finished = False  # the caller's unfinished teardowns were looked at (``_finish_unfinished``)

    @property
    def cluster(self) -> Cluster:
        with self._lock:
            if self._cluster is None:
                self._cluster = Cluster.discover(self._endpoint)
                self._networks = OverlayNetworks(self._cluster.manager.client)
            return self._cluster

    @property
    def networks(self) -> OverlayNetworks:
        self.cluster  # noqa: B018  # discovering the cluster makes the manager's network maker
        assert self._networks is not None
        return self._networks

    # -- images ----------------------------------------------------------------

    def ensure_image(self, progress: Progress) -> str:
        """Built (or found) on the manager's engine, then sent to each node that lacks it, once."""
        cluster = self.cluster
        self._finish_unfinished()
        if self._image is None:
            name = cluster.manager.ensure_image(progress)
            distribution.send(name, cluster.manager, self._node_engines(), progress)
            self._image = name
        return self._image

    def host_images(self, hosts: Iterable[Host], progress: Progress) -> dict[str, str]:
        cluster = self.cluster
        images = cluster.manager.host_images(hosts, progress)
        engines = self._node_engines()
        for name in sorted(set(images.values())):
            distribution.send(name, cluster.manager, engines, progress)
        return images

    def _node_engines(self) -> dict[str, DockerBackend]:
        return {node.hostname: self._engine_of(node.node_id) for node in self.cluster.nodes}

    # -- labs --------------------------------------------------------------------

    def create_lab(
        self, lab_id: str, scenario: str, networks: Iterable[Network], hosts: Iterable[Host],
        on_started: Callable[[HostInfo], None] | None = None,
    ) -> dict[str, HostInfo]:
        """Overlays on the manager, then each host on its node, then IPv6 where the lab uses it (``ipv6``)."""
        hosts, networks = list(hosts), list(networks)
        image = self.ensure_image(lambda message: None)
        images = self.host_images(hosts, lambda message: None)
        cluster = self.cluster
        where = placement.place(hosts, cluster.nodes, self._running())
        labels = lab_labels(lab_id, scenario)
        with engine_errors(f"creating lab {lab_id} of {scenario} on the swarm's manager"):
            created = {net.name: self._overlay(lab_id, net, labels) for net in networks}
        dual = {net.name for net in networks if net.ipv6}

        def bring_up(plan: tuple[Host, list[Attachment]]) -> tuple[HostInfo, dict[str, str]]:
            host, attached = plan
            node = where[host.name]
            engine = self._engine_of(node.node_id)
            if any(a.interface.network in dual for a in attached):
                host = replace(host, sysctls=ipv6.SYSCTLS + host.sysctls)  # the scenario's own settings win
            # No addresses asked for: on an overlay, an address the manager cannot give (each node's own endpoint
            # on the network takes one as well) fails the container and leaves a task that blocks the network's
            # removal. The engine's IPv4 choice is read back; IPv6 is socklab's own plan.
            anywhere = [Attachment(a.network, replace(a.interface, ipv4=None, ipv6=None)) for a in attached]
            doing = f"creating host {host.name} of lab {lab_id} on swarm node {node}"
            with self._node_errors(node.node_id, doing), engine_errors(doing):
                container = engine.create_host(images.get(host.name, image), lab_id, labels, host, anywhere)
                given = engine.addresses(container)
            interfaces = {a.interface.network: replace(a.interface, ipv4=given[a.network].ipv4) for a in attached}
            macs = {a.interface.network: given[a.network].mac for a in attached}
            return HostInfo(HostHandle(lab_id, host.name, container, node.node_id), interfaces), macs

        # One host after another: hosts joining a new overlay at the same moment, on Docker 20.10, now and then
        # leave behind an attachment the manager never lets go of, and the network can then not be removed.
        made = [bring_up(plan) for plan in attachments(hosts, created)]
        self._give_ipv6(dual, made)
        infos = [info for info, _ in made]
        for info in infos:
            if on_started:
                on_started(info)
        return {info.handle.host: info for info in infos}

    def _overlay(self, lab_id: str, net: Network, labels: dict[str, str]) -> CreatedNetwork:
        """An IPv4 overlay; for a network that uses IPv6, with the ULA /64 socklab itself gives its hosts."""
        made = self.networks.create_network(lab_id, replace(net, ipv6=False, subnet6=None), labels)
        if not net.ipv6:
            return made
        return replace(made, subnet6=net.subnet6 or ipv6.paired_subnet(made.subnet4))

    def _give_ipv6(self, dual: set[str], made: list[tuple[HostInfo, dict[str, str]]]) -> None:
        """Each host's IPv6 address on each network that uses it, and its peers' neighbour entries."""
        work: list[tuple[str, HostInfo, ipv6.Member, list[ipv6.Member]]] = []
        for network in sorted(dual):
            members = [(info, ipv6.Member(info.handle.host, info.interfaces[network].ipv6 or "", macs[network],
                                          info.interfaces[network].ipv4 or ""))
                       for info, macs in made if network in info.interfaces]
            work += [(network, info, me, [peer for _, peer in members if peer is not me]) for info, me in members]

        def give(item: tuple[str, HostInfo, ipv6.Member, list[ipv6.Member]]) -> None:
            network, info, me, peers = item
            said = self.exec(info.handle, ["sh", "-c", ipv6.script(me, peers)], user="root")
            if not said.ok:  # a host's own image without iproute2, say
                raise LabError(f"could not give host {me.host} its IPv6 address on network {network} (the host "
                               f"needs `ip`, of iproute2): {said.stderr.strip() or said.stdout.strip()}")

        parallel_map(give, work)

    def _running(self) -> dict[str, int]:
        """How many socklab hosts each node runs now (placement prefers the least busy)."""

        def count(node_id: str) -> int:
            try:
                engine = self.cluster.engine(node_id, within=ANSWER_WAIT)  # a hung node: seconds, not minutes
                return len(engine.api.containers(filters={"label": LABEL_LAB}))
            except Exception:  # noqa: BLE001  # a node that does not answer is simply not preferred
                return 1 << 20

        ids = [node.node_id for node in self.cluster.nodes]
        return dict(zip(ids, parallel_map(count, ids), strict=True))

    # -- hosts: each call goes to the engine of the host's node ---------------------

    def exec(
        self, handle: HostHandle, argv: Sequence[str], *, user: str, env: dict[str, str] | None = None,
        detach: bool = False, stdin: bytes | BinaryIO | None = None,
    ) -> ExecResult:
        with self._node_errors(handle.node, f"running a command on {handle.host}"):
            return self._engine(handle).exec(handle, argv, user=user, env=env, detach=detach, stdin=stdin)

    def attach(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Channel:
        with self._node_errors(handle.node, f"attaching to a command on {handle.host}"):
            return self._engine(handle).attach(handle, argv, user=user)

    def stream(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> Iterator[bytes]:
        with self._node_errors(handle.node, f"streaming from {handle.host}"):
            yield from self._engine(handle).stream(handle, argv, user=user)

    def read_files(self, handle: HostHandle, path: str) -> dict[str, bytes]:
        with self._node_errors(handle.node, f"reading {path} on {handle.host}"):
            return self._engine(handle).read_files(handle, path)

    def path_info(self, handle: HostHandle, path: str) -> PathInfo | None:
        with self._node_errors(handle.node, f"looking at {path} on {handle.host}"):
            return self._engine(handle).path_info(handle, path)

    def put_archive(self, handle: HostHandle, path: str, data: bytes) -> None:
        with self._node_errors(handle.node, f"copying files to {path} on {handle.host}"):
            self._engine(handle).put_archive(handle, path, data)

    def get_archive(self, handle: HostHandle, path: str) -> bytes:
        with self._node_errors(handle.node, f"copying {path} from {handle.host}"):
            return self._engine(handle).get_archive(handle, path)

    def shell(self, handle: HostHandle, argv: Sequence[str], *, user: str) -> int:
        return self._engine(handle).shell(handle, argv, user=user)

    def find_host(self, host: str, lab_id: str | None = None) -> HostHandle:
        """As on one engine (``DockerBackend.find_host``), on every node at once.

        A node that does not answer (within ``ANSWER_WAIT``) is passed over;
        if no other node has the host, ``NodeLost`` names it: the host may be
        there, out of reach, rather than gone.
        """

        def look(node: placement.Node) -> HostHandle | str | None:
            """The host's handle on this node, None if it is not there, the node's name if it does not answer."""
            try:
                handle = self.cluster.engine(node.node_id, within=ANSWER_WAIT).find_host(host, lab_id)
            except (EngineUnreachable, requests.RequestException):
                return node.hostname
            except EnvironmentProblem:
                raise
            except SocklabError:
                return None  # not on that node
            return HostHandle(handle.lab_id, host, handle.ref, node.node_id)

        answers = parallel_map(look, self.cluster.nodes)
        found = [answer for answer in answers if isinstance(answer, HostHandle)]
        silent = [answer for answer in answers if isinstance(answer, str)]
        if not found:
            where = f"lab {lab_id}" if lab_id else "any running lab of yours"
            if silent:
                raise NodeLost(f"no host {host!r} in {where} on the swarm nodes that answer; swarm node(s) "
                               f"{', '.join(silent)} did not answer and may hold it, out of reach until back "
                               "(`docker node ls` on the manager shows each node's state)")
            raise SocklabError(f"no host {host!r} in {where} on the swarm's nodes; start one with `invoke up "
                               "SCENARIO --backend swarm`, or name another's lab with --lab (see `invoke labs`)")
        if len(found) > 1:
            labs = ", ".join(sorted(h.lab_id for h in found))
            raise SocklabError(f"host {host!r} exists in several labs ({labs}); choose one with --lab")
        return found[0]

    def _engine(self, handle: HostHandle) -> DockerBackend:
        if not handle.node:
            raise SocklabError(f"host {handle.host} of lab {handle.lab_id} was not made on a swarm")
        return self._engine_of(handle.node)

    def _engine_of(self, node_id: str) -> DockerBackend:
        with self._node_errors(node_id, "connecting to its engine"):
            return self.cluster.engine(node_id)

    def _node_errors(self, node_id: str, doing: str) -> contextlib.AbstractContextManager[None]:
        return _lost_node(self.cluster, node_id, doing)

    # -- discovery and teardown: every node, and the manager's networks ---------------

    def labs(self) -> list[LabSummary]:
        """The hosts of every node that answers, and the manager's networks.

        A node that does not answer is left out (its hosts are not listed; a
        lab with hosts there still shows, by its networks and its other
        hosts): listing must work while a node is down, to see what to clean.
        """
        self._finish_unfinished()

        def hosts_on(node: placement.Node) -> list[dict[str, Any]]:
            try:
                engine = self.cluster.engine(node.node_id, within=ANSWER_WAIT)
                with engine_errors("listing labs"):
                    listed: list[dict[str, Any]] = engine.api.containers(all=True, filters={"label": LABEL_LAB})
            except (EngineUnreachable, requests.RequestException):
                return []
            return listed

        nodes = self.cluster.nodes
        listed = list(zip(nodes, parallel_map(hosts_on, nodes), strict=True))
        containers = [container for _, found in listed for container in found]
        where = {container["Id"]: node.hostname for node, found in listed for container in found}
        with engine_errors("listing the swarm's lab networks"):
            networks = self.networks.api.networks(filters={"label": LABEL_LAB, "scope": "swarm"})
        return summarise(containers, networks, where)

    def destroy_lab(self, lab_id: str) -> int:
        self._finish_unfinished()
        return self._destroy(f"{LABEL_LAB}={lab_id}")

    def destroy_all(self) -> int:
        self._finish_unfinished()
        return self._destroy(LABEL_LAB)

    def destroy_owned(self, owner: str) -> int:
        self._finish_unfinished()
        return self._destroy(f"{LABEL_OWNER}={owner}")

    def _destroy(self, label: str) -> int:
        """Hosts (and their volumes) on every node, then the networks on the manager.

        A node that does not answer within ``ANSWER_WAIT`` (killed, hung, cut
        off) is passed over: the rest still goes. Whether it held hosts of
        ``label`` the manager tells: an overlay cannot be removed while a host
        of a node that is away is attached to it. If every network went, it
        held none there, and the teardown succeeds (a lab of the run with no
        host on that node passes). If some stay, ``NodeLost`` (a LabError:
        that lab fails, the run goes on) names the node, what it still holds,
        and how to clean it once it is back.
        """
        cluster = self.cluster
        silent: dict[str, str] = {}  # hostname -> why it is taken for away
        refused: list[str] = []

        def on_node(node: placement.Node) -> int:
            try:
                return cluster.engine(node.node_id, within=ANSWER_WAIT).remove_labelled(label, networks=False)
            except (EngineUnreachable, requests.RequestException) as exc:
                silent[node.hostname] = str(exc)
            except EnvironmentProblem as exc:
                refused.append(f"{node.hostname} ({exc})")
            return 0

        removed = sum(parallel_map(on_node, cluster.nodes))
        # Nodes discovery passed over because the manager sees them down may hold hosts as well.
        away = silent | {name: why for name, why in cluster.unreachable.items() if "state" in why}
        try:  # a node that is away never lets go of its hosts' attachments: no use waiting as long for them
            removed += self.networks.remove_labelled(label, sweeps=DockerBackend.REMOVAL_SWEEPS if away else None)
        except EnvironmentProblem as exc:
            if not away:
                raise
            why = "; ".join(f"{name}: {reason}" for name, reason in sorted(away.items()))
            with contextlib.suppress(APIError, requests.RequestException):  # the note is a help, not a must
                unfinished.remember(self.networks.client, label, owner())
            raise NodeLost(
                f"swarm node(s) {', '.join(sorted(away))} did not answer, and still hold hosts labelled {label}: "
                f"the networks those hosts are attached to stay on the manager until they are removed ({exc}). "
                f"Removed {removed} resources on the other nodes. Fix: once the node is back (`docker node ls` on "
                "the manager shows it Ready), run `invoke clean --backend swarm` (or `invoke down --lab LAB "
                f"--backend swarm`). Why the node(s) did not answer: {why}") from None
        self._until_gone(label, passed_over=silent)
        if refused:
            raise EnvironmentProblem(
                f"removed {removed} resources, but these nodes refused to remove hosts labelled {label}: "
                f"{'; '.join(refused)}. Fix: run `invoke clean --backend swarm` again (or `invoke down --lab LAB "
                "--backend swarm`)")
        return removed

    def _finish_unfinished(self) -> None:
        """Finish the caller's teardowns that a lost node cut short, if it is back (``unfinished``); once a process.

        A teardown that still cannot finish leaves its note for another time.
        """
        if self._finished:
            return
        self._finished = True
        manager = self.networks.client
        with engine_errors("reading the swarm's notes of unfinished teardowns"):
            notes = unfinished.pending(manager, owner())
        for note, label in notes.items():
            try:
                self._destroy(label)
            except (NodeLost, EnvironmentProblem):
                continue
            unfinished.forget(manager, note)

    def _until_gone(self, label: str, passed_over: Collection[str] = ()) -> None:
        """Wait until the networks removed have left every listing (a node drops its copy a moment later).

        So that ``labs`` right after ``down`` shows nothing, and whatever
        counts what remains (a test, a script) sees the truth. Nodes that did
        not answer (``passed_over``, by hostname), or that stop answering
        now, are not waited for: a node that is away drops its copy when back.
        """
        deadline = time.monotonic() + GONE_WAIT
        for node in self.cluster.nodes:
            if node.hostname in passed_over:
                continue
            try:
                engine = self.cluster.engine(node.node_id, within=ANSWER_WAIT)
                while engine.api.networks(filters={"label": label}) and time.monotonic() < deadline:
                    time.sleep(0.05)
            except (EngineUnreachable, requests.RequestException):
                continue


@contextlib.contextmanager
def _lost_node(cluster: Cluster, node_id: str, doing: str) -> Iterator[None]:
    """A node's engine going away fails the lab with ``NodeLost``, naming the node; other errors pass as they are.

    A request the engine never answered (the SDK's read timeout, 120 s: a
    hung engine accepts connections but says nothing) is the node's loss
    only if the node does not answer a ping either; a slow answer from a
    live node is passed on as it is, as on one engine.
    """
    try:
        yield
    except (EngineUnreachable, requests.RequestException) as exc:
        if not isinstance(exc, EngineUnreachable):
            try:
                cluster.engine(node_id, within=ANSWER_WAIT)
            except (EnvironmentProblem, requests.RequestException):
                pass  # it does not answer: lost
            else:
                raise
        name = next((node.hostname for node in cluster.nodes if node.node_id == node_id), node_id)
        raise NodeLost(f"swarm node {name} stopped answering while {doing}: the lab's hosts there are lost "
                       f"({exc})") from None
