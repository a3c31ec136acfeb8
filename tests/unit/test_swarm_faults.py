"""A swarm node that stops answering: what listing, finding, exec and teardown make of it, against stub engines.

Each node's engine is a stub that answers, refuses (its dockerd killed: the
socket refuses) or hangs (stopped: a request is accepted and never answered,
which the SDK reports as a read timeout). The manager's network removal is a
stub too: an overlay that a host of an absent node is attached to cannot be
removed, as on a real swarm. The real thing, with dockerds killed and
started again, is tests/integration/test_swarm_faults.py.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any, cast

import pytest
import requests
from docker.errors import APIError

from socklab.backend.base import HostHandle
from socklab.backend.docker.backend import DockerBackend
from socklab.backend.swarm import NodeLost, SwarmBackend
from socklab.backend.swarm import cluster as cluster_module
from socklab.backend.swarm.cluster import ANSWER_WAIT, REQUEST_WAIT, Cluster
from socklab.backend.swarm.overlays import OverlayNetworks
from socklab.backend.swarm.placement import Node
from socklab.constants import LABEL_HOST, LABEL_LAB, LABEL_OWNER
from socklab.errors import EnvironmentProblem, SocklabError

UP, DEAD, HUNG = "up", "dead", "hung"


class StubAPI:
    """The few SDK calls the swarm backend makes of a node's engine directly."""

    base_url = "http+docker://stub"

    def __init__(self, engine: StubEngine) -> None:
        self.engine = engine

    def get(self, url: str, timeout: float | None = None) -> Any:
        self.engine.answer(url, timeout)
        return type("Response", (), {"status_code": 200, "reason": "OK"})()

    def containers(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.engine.answer("containers", None)
        return [{"Id": f"id-{host}", "Labels": {LABEL_LAB: lab, LABEL_HOST: host, LABEL_OWNER: "me"}}
                for lab, host in self.engine.hosts]

    def networks(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.engine.answer("networks", None)
        return []


class StubEngine(DockerBackend):
    """A node's engine, holding hosts as (lab, host) pairs, in one of three states."""

    def __init__(self, name: str, state: str = UP, hosts: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__()
        self.name, self.state, self.hosts = name, state, list(hosts)
        self.asked: list[tuple[str, float | None]] = []  # (what, the timeout it was asked with)
        self._stub_api = StubAPI(self)

    @property
    def api(self) -> Any:
        return self._stub_api

    def answer(self, what: str, timeout: float | None) -> None:
        self.asked.append((what, timeout))
        if self.state == DEAD:
            raise requests.ConnectionError("('Connection aborted.', ConnectionRefusedError(111, 'refused'))")
        if self.state == HUNG:
            raise requests.ReadTimeout(f"Read timed out. (read timeout={timeout})")

    def remove_labelled(self, label: str, *, networks: bool = True, sweeps: int | None = None) -> int:
        self.answer("remove", None)
        lab = label.partition("=")[2]
        gone = [pair for pair in self.hosts if pair[0] == lab]
        self.hosts = [pair for pair in self.hosts if pair not in gone]
        return len(gone)

    def find_host(self, host: str, lab_id: str | None = None) -> HostHandle:
        self.answer("find", None)
        for lab, name in self.hosts:
            if name == host and lab_id in (None, lab):
                return HostHandle(lab, host, f"id-{host}")
        raise SocklabError(f"no host {host!r}")


class StubNote:
    """A swarm config, as the SDK's model shows one."""

    def __init__(self, notes: StubNotes, name: str, data: bytes, labels: dict[str, str]) -> None:
        self.notes, self.id, self.name, self.labels = notes, f"note-{len(notes.kept)}", name, labels
        self.attrs = {"Spec": {"Name": name, "Data": base64.b64encode(data).decode()}}

    def remove(self) -> None:
        del self.notes.kept[self.name]


class StubNotes:
    """The manager's swarm configs (``client.configs``), where unfinished teardowns are noted."""

    def __init__(self) -> None:
        self.kept: dict[str, StubNote] = {}

    def create(self, name: str, data: bytes, labels: dict[str, str]) -> StubNote:
        if name in self.kept:
            raise APIError("conflict", response=SimpleNamespace(status_code=409, reason="Conflict"))  # type: ignore[arg-type]
        self.kept[name] = StubNote(self, name, data, labels)
        return self.kept[name]

    def list(self, filters: dict[str, str]) -> list[StubNote]:
        return [note for note in self.kept.values() if note.name.startswith(filters["name"])
                and filters["label"] in (f"{key}={value}" for key, value in note.labels.items())]

    def get(self, note_id: str) -> StubNote:
        return next(note for note in self.kept.values() if note.id == note_id)


class StubManager(OverlayNetworks):
    """The manager's networks: removing them fails while a host of an absent node is attached (``held``)."""

    def __init__(self) -> None:
        # its client: the notes, and a listing of the swarm's networks (none: the labs are known by their hosts)
        super().__init__(cast(Any, SimpleNamespace(configs=StubNotes(),
                                                   api=SimpleNamespace(networks=lambda filters=None: []))))
        self.held: set[str] = set()  # labels whose networks a host of an absent node still holds
        self.removed: list[str] = []
        self.sweeps: list[int | None] = []  # how many rounds each removal was allowed (None: the overlays' own)

    @property
    def notes(self) -> StubNotes:
        return cast(StubNotes, self.client.configs)

    def remove_labelled(self, label: str, *, networks: bool = True, sweeps: int | None = None) -> int:
        self.sweeps.append(sweeps)
        if label in self.held:
            raise EnvironmentProblem("The Docker engine refused a request while tearing down: rpc error: code = "
                                     "FailedPrecondition desc = network n1 is in use by task t1")
        self.removed.append(label)
        return 1


def swarm(*engines: StubEngine, unreachable: dict[str, str] | None = None) -> tuple[SwarmBackend, StubManager]:
    """A SwarmBackend over stub engines, one node each (the first the manager's)."""
    nodes = [Node(f"id-{e.name}", e.name, f"unix:///{e.name}.sock", manager=i == 0) for i, e in enumerate(engines)]
    cluster = Cluster(engines[0], nodes, unreachable or {}, {f"id-{e.name}": e for e in engines})
    backend, manager = SwarmBackend("unix:///stub.sock"), StubManager()
    backend._cluster, backend._networks = cluster, manager
    return backend, manager


@pytest.mark.parametrize("state", [DEAD, HUNG])
def test_a_lab_with_no_host_on_the_silent_node_is_torn_down_without_error(state: str) -> None:
    a, b, c = StubEngine("a", hosts=(("lab1", "server"),)), StubEngine("b", hosts=(("lab1", "client"),)), \
        StubEngine("c", state)
    backend, manager = swarm(a, b, c)
    assert backend.destroy_lab("lab1") == 3
    assert not a.hosts and not b.hosts and manager.removed == [f"{LABEL_LAB}=lab1"]
    assert [what for what, _ in c.asked] == ["http+docker://stub/_ping"]  # asked once, and not waited for after


@pytest.mark.parametrize("state", [DEAD, HUNG])
def test_a_lab_with_a_host_on_the_silent_node_fails_its_teardown_naming_the_node_and_the_fix(state: str) -> None:
    a, b = StubEngine("a", hosts=(("lab1", "server"),)), StubEngine("b", state, hosts=(("lab1", "client"),))
    backend, manager = swarm(a, b)
    manager.held.add(f"{LABEL_LAB}=lab1")
    with pytest.raises(NodeLost) as caught:
        backend.destroy_lab("lab1")
    message = str(caught.value)
    assert "swarm node(s) b did not answer" in message and f"{LABEL_LAB}=lab1" in message
    assert "invoke clean --backend swarm" in message and "in use by task" in message
    assert not a.hosts  # the rest of the lab went


def test_a_node_the_manager_sees_down_is_named_when_its_hosts_hold_the_networks() -> None:
    backend, manager = swarm(StubEngine("a"), unreachable={"c": "its state is down", "d": "it has no label"})
    manager.held.add(f"{LABEL_OWNER}=me")
    with pytest.raises(NodeLost, match=r"swarm node\(s\) c did not answer.*c: its state is down"):
        backend.destroy_owned("me")


def test_a_failure_to_remove_networks_with_every_node_answering_is_the_environment_as_before() -> None:
    backend, manager = swarm(StubEngine("a"), StubEngine("b"))
    manager.held.add(f"{LABEL_LAB}=lab1")
    with pytest.raises(EnvironmentProblem, match="in use by task") as caught:
        backend.destroy_lab("lab1")
    assert not isinstance(caught.value, NodeLost)


def test_a_ping_before_listing_or_teardown_waits_seconds_not_the_sdk_timeout() -> None:
    hung = StubEngine("b", HUNG)
    backend, _ = swarm(StubEngine("a"), hung)
    backend.labs()
    backend.destroy_lab("lab1")
    assert hung.asked and all(timeout == ANSWER_WAIT for _, timeout in hung.asked)
    assert ANSWER_WAIT < REQUEST_WAIT


def test_labs_list_the_nodes_that_answer_and_the_silent_one_does_not_fail_them() -> None:
    backend, _ = swarm(StubEngine("a", hosts=(("lab1", "server"),)), StubEngine("b", DEAD, hosts=(("lab1", "x"),)),
                       StubEngine("c", HUNG))
    (lab,) = backend.labs()
    assert (lab.lab_id, lab.hosts) == ("lab1", ("server",))


def test_a_host_is_found_on_a_node_that_answers_while_another_is_silent() -> None:
    backend, _ = swarm(StubEngine("a"), StubEngine("b", DEAD), StubEngine("c", hosts=(("lab1", "client"),)))
    handle = backend.find_host("client", "lab1")
    assert (handle.lab_id, handle.node) == ("lab1", "id-c")


def test_a_host_found_nowhere_while_a_node_is_silent_names_that_node() -> None:
    backend, _ = swarm(StubEngine("a"), StubEngine("b", HUNG, hosts=(("lab1", "client"),)))
    with pytest.raises(NodeLost, match=r"swarm node\(s\) b did not answer and may hold it"):
        backend.find_host("client", "lab1")


def test_a_host_found_nowhere_with_every_node_answering_is_plainly_absent() -> None:
    backend, _ = swarm(StubEngine("a"), StubEngine("b"))
    with pytest.raises(SocklabError, match="no host 'client' in lab lab1") as caught:
        backend.find_host("client", "lab1")
    assert not isinstance(caught.value, NodeLost)


class TimingOut(StubEngine):
    """Its exec is never answered (the SDK's read timeout), whatever its ping does."""

    def exec(self, *args: Any, **kwargs: Any) -> Any:
        raise requests.ReadTimeout("Read timed out. (read timeout=120)")


def test_an_exec_never_answered_by_a_node_that_no_longer_pings_is_the_node_lost() -> None:
    node = TimingOut("b", HUNG)
    backend, _ = swarm(StubEngine("a"), node)
    with pytest.raises(NodeLost, match="swarm node b stopped answering while running a command on client"):
        backend.exec(HostHandle("lab1", "client", "id-client", "id-b"), ["true"], user="lab")


def test_an_exec_never_answered_by_a_node_that_still_pings_is_passed_on_as_it_is() -> None:
    backend, _ = swarm(StubEngine("a"), TimingOut("b"))
    with pytest.raises(requests.ReadTimeout):
        backend.exec(HostHandle("lab1", "client", "id-client", "id-b"), ["true"], user="lab")


def test_a_node_engine_is_first_reached_with_a_short_wait_then_given_the_usual_request_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[int, str | None]] = []

    class Client:
        api = type("API", (), {"timeout": ANSWER_WAIT})()

    def connect(timeout: int = 120, base_url: str | None = None) -> Any:
        asked.append((timeout, base_url))
        return Client()

    monkeypatch.setattr(cluster_module, "connect", connect)
    node = Node("id-b", "b", "unix:///b.sock")
    engine = Cluster(StubEngine("a"), [node], {}).engine("id-b")
    assert asked == [(ANSWER_WAIT, "unix:///b.sock")]
    assert engine.api.timeout == REQUEST_WAIT


def test_a_teardown_a_lost_node_cut_short_is_finished_by_the_owners_next_command_once_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOCKLAB_OWNER", "me")
    a, b = StubEngine("a", hosts=(("lab1", "server"),)), StubEngine("b", DEAD, hosts=(("lab1", "client"),))
    backend, manager = swarm(a, b)
    manager.held.add(f"{LABEL_LAB}=lab1")
    with pytest.raises(NodeLost):
        backend.destroy_lab("lab1")
    assert len(manager.notes.kept) == 1  # noted on the manager, for whoever of the owner's comes next

    # still away: the next process's command leaves the note where it is
    later, _ = swarm(a, b)
    later._networks = manager
    later.labs()
    assert len(manager.notes.kept) == 1 and b.hosts

    # back: the next process's command, whatever it is, finishes the teardown and removes the note
    b.state, manager.held = UP, set()
    back, _ = swarm(a, b)
    back._networks = manager
    back.labs()
    assert not b.hosts and f"{LABEL_LAB}=lab1" in manager.removed and not manager.notes.kept


def test_another_owners_unfinished_teardown_is_left_to_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKLAB_OWNER", "them")
    a, b = StubEngine("a"), StubEngine("b", DEAD, hosts=(("lab1", "client"),))
    backend, manager = swarm(a, b)
    manager.held.add(f"{LABEL_LAB}=lab1")
    with pytest.raises(NodeLost):
        backend.destroy_lab("lab1")
    monkeypatch.setenv("SOCKLAB_OWNER", "me")
    b.state, manager.held = UP, set()
    mine, _ = swarm(a, b)
    mine._networks = manager
    mine.labs()
    assert b.hosts and len(manager.notes.kept) == 1


class BusyNetworkAPI:
    """An engine with one network of the lab, still in use by a removed host's task for ``busy`` more rounds."""

    def __init__(self, busy: int) -> None:
        self.busy, self.rounds, self.removed = busy, 0, False

    def containers(self, all: bool, filters: dict[str, str]) -> list[Any]:
        return []

    def networks(self, filters: dict[str, str]) -> list[dict[str, str]]:
        return [] if self.removed else [{"Id": "n1"}]

    def remove_network(self, network_id: str) -> None:
        self.rounds += 1
        if self.rounds <= self.busy:
            raise APIError("rpc error: code = FailedPrecondition desc = network n1 is in use by task t1")
        self.removed = True

    def volumes(self, filters: dict[str, str]) -> dict[str, list[Any]]:
        return {"Volumes": []}

    def tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        assert filters == {"id": "t1"}
        return [{"NodeID": "id-e3", "DesiredState": "shutdown", "Status": {"State": "running", "Message": "started"}}]

    def inspect_node(self, node_id: str) -> dict[str, Any]:
        return {"Description": {"Hostname": "e3"}}


@pytest.mark.parametrize("busy", [DockerBackend.REMOVAL_SWEEPS, OverlayNetworks.REMOVAL_SWEEPS - 1])
def test_an_overlay_still_in_use_by_a_removed_hosts_task_is_waited_for_far_longer_than_a_bridge(
    monkeypatch: pytest.MonkeyPatch, busy: int,
) -> None:
    """The manager lets go of a removed host's attachment once its node has said so: under load, seconds."""
    monkeypatch.setattr("socklab.backend.docker.backend.time.sleep", lambda seconds: None)
    bridge_api, overlay_api = BusyNetworkAPI(busy), BusyNetworkAPI(busy)
    with pytest.raises(EnvironmentProblem, match="in use by task"):
        DockerBackend(cast(Any, SimpleNamespace(api=bridge_api))).remove_labelled("socklab.lab=lab1")
    assert OverlayNetworks(cast(Any, SimpleNamespace(api=overlay_api))).remove_labelled("socklab.lab=lab1") == 1
    assert overlay_api.removed and overlay_api.rounds == busy + 1


def test_an_overlay_held_to_the_end_names_the_task_that_holds_it_its_node_and_its_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("socklab.backend.docker.backend.time.sleep", lambda seconds: None)
    api = BusyNetworkAPI(OverlayNetworks.REMOVAL_SWEEPS)
    with pytest.raises(EnvironmentProblem) as caught:
        OverlayNetworks(cast(Any, SimpleNamespace(api=api))).remove_labelled("socklab.lab=lab1")
    assert str(caught.value).endswith("in use by task t1 (task t1: on node e3, running (desired: shutdown): started)")


def test_with_a_node_away_the_overlays_are_waited_for_no_longer_than_a_bridge() -> None:
    """Its hosts' attachments never go while it is away: waiting a minute for them would only delay NodeLost."""
    away, away_manager = swarm(StubEngine("a"), StubEngine("b", DEAD))
    away.destroy_lab("lab1")
    answering, answering_manager = swarm(StubEngine("a"), StubEngine("b"))
    answering.destroy_lab("lab1")
    assert (away_manager.sweeps, answering_manager.sweeps) == ([DockerBackend.REMOVAL_SWEEPS], [None])
