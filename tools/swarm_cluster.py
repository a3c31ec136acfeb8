#!/usr/bin/env python3
"""A Docker Swarm cluster of several engines on this one machine, and its complete removal.

socklab's swarm backend needs a real multi-engine swarm to be tested against, and people who want to try
``--backend swarm`` rarely have three machines. This script makes one on a single machine: each engine is a
dockerd of its own (with the containerd it starts itself), with its own data-root, exec-root, pidfile and unix
socket, living in a network namespace of its own; the engines are cabled by veth links to a bridge in yet another
namespace. The swarm's ports (2377, 7946, 4789) therefore exist only inside those namespaces: nothing of the
cluster is reachable from the machine's real interfaces, and the machine's own Docker engine is never touched.

Usage (root): ``python tools/swarm_cluster.py up|down|status [--name NAME]``; see ``--help``. As a library
(the backend's tests): ``up(name, engines) -> Cluster``, ``load_image(cluster, image)``,
``restart_engine(cluster, engine)``, ``down(name)``, ``status(name)``. docs/swarm-cluster.md tells the recipe and why
each step is there.

Only the standard library is used, so that the script runs before socklab is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_NAME = "socklab-cluster"
DEFAULT_ENGINES = 3
MAX_ENGINES = 9

# Everything of a cluster lives beneath these (one folder per cluster name beneath a fixed parent), so that no
# cluster name, whatever it is, can ever designate a folder or cgroup of somebody else (say "docker").
RUN_BASE = Path("/run/socklab-swarm")
LIB_BASE = Path("/var/lib/socklab-swarm")
CGROUP_BASE = "socklab-swarm"
NETNS_DIR = Path("/run/netns")
CGROUP_FS = Path("/sys/fs/cgroup")

# The cluster's own link: inside 198.18.0.0/15 (benchmarking range, never routed) and a ULA /64. The links live
# only in the cluster's namespaces, so two clusters may use the same addresses without meeting.
LINK4 = ipaddress.IPv4Network("198.19.255.0/24")
LINK6 = ipaddress.IPv6Network("fd00:5c:1a:b::/64")
HOST_BASE = 10  # engine i (1-based) is 198.19.255.1i and fd00:5c:1a:b::1i: the same digits in both families

ENDPOINT_LABEL = "socklab.endpoint"
MANAGER_ENV = "SOCKLAB_SWARM_MANAGER"
# With --tls, each engine also listens on its link address at this port, TLS with client certificates (as a
# remote engine would, docs.docker.com "Protect the Docker daemon socket"), and its node label names that; a
# client then reaches the workers from the bridge's namespace, at the link's first host address.
TLS_PORT = 2376
CLIENT_ADDRESS = LINK4[HOST_BASE]  # 198.19.255.10, on the bridge, only with --tls

START_TIMEOUT = 90.0  # seconds for a dockerd to answer; two shared cores and three engines starting at once
STOP_TIMEOUT = 25.0  # seconds a dockerd gets to stop its containers and unmount before it is killed

# The links carry VXLAN packets of a full 1500-byte inner frame (50 bytes more), as socklab's overlays keep a
# 1500-byte MTU inside: the lessons on datagram sizes then hold across engines, with nothing fragmented.
LINK_MTU = 1550
# How long a restarted engine's node may take to be Ready again: the manager first has to see it gone (its
# heartbeats missed), then take its new session; on two busy cores that took over a minute once.
REJOIN_TIMEOUT = 180.0

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

# Each tool the script runs, and the Debian package that brings it.
TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "umount": "mount",
    "hostname": "hostname",
    "dockerd": "docker.io",
    "containerd": "containerd",
    "docker": "docker.io",
    "iptables": "iptables",
}
TLS_TOOLS: dict[str, str] = {"openssl": "openssl"}  # with --tls


class ClusterError(Exception):
    """Something the user must hear about, in words: the cluster could not be made, or is in the way."""


class PrerequisiteError(ClusterError):
    """Not root, or a needed tool is missing (the message names the Debian package): exit status 2."""


@dataclass(frozen=True)
class Engine:
    """One dockerd of the cluster: where it lives, and how to reach it."""

    name: str  # e1, e2 ... (also the node's hostname suffix)
    netns: str  # its network namespace (ip netns name)
    endpoint: str  # unix:///.../docker.sock: DOCKER_HOST for this engine
    address4: str  # its address on the cluster link: swarm's advertise, listen and data-path address
    address6: str
    run_dir: str  # socket, pidfile, daemon.json, log, exec-root
    data_root: str
    hostname: str

    @property
    def socket_path(self) -> str:
        return self.endpoint.removeprefix("unix://")

    @property
    def tcp_endpoint(self) -> str:
        """Where it listens with TLS, in a cluster made with ``tls`` (reached as ``Cluster.client_argv`` runs)."""
        return f"tcp://{self.address4}:{TLS_PORT}"


@dataclass(frozen=True)
class Cluster:
    """A cluster as ``up`` made it: the first engine is the swarm manager, the others workers."""

    name: str
    engines: tuple[Engine, ...]
    bridge_netns: str  # the namespace holding the bridge every engine's link is plugged into
    storage_driver: str
    link4: str = str(LINK4)
    link6: str = str(LINK6)
    tls: bool = False  # the workers are reached over TCP with TLS, as remote engines are (``up``'s ``tls``)

    @property
    def manager(self) -> Engine:
        return self.engines[0]

    @property
    def certificates(self) -> Path:
        """The client's ca.pem, cert.pem and key.pem (DOCKER_CERT_PATH), with ``tls``; the engines' beside them."""
        return run_dir(self.name) / "tls"

    def environment(self) -> dict[str, str]:
        """What the swarm backend reads to find the manager (each node's own endpoint is a node label), and with
        ``tls`` the client certificate the Docker SDK presents to the workers, as the docker command would."""
        found = {MANAGER_ENV: self.manager.endpoint}
        if self.tls:
            found |= {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.certificates)}
        return found

    def client_argv(self) -> list[str]:
        """The prefix that runs a command where it can reach every engine's endpoint: with ``tls``, in the
        bridge's namespace (the engines' TCP ports exist only on the cluster's link); else as it is."""
        return ["nsenter", f"--net={NETNS_DIR / self.bridge_netns}", "--"] if self.tls else []

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Cluster:
        raw = json.loads(text)
        engines = tuple(Engine(**engine) for engine in raw.pop("engines"))
        return cls(engines=engines, **raw)


@dataclass(frozen=True)
class EngineStatus:
    """What ``status`` found of one engine."""

    engine: str
    endpoint: str
    netns: bool  # its namespace exists
    pid: int | None  # the dockerd of its pidfile, when alive
    answers: bool  # the socket answers /_ping
    swarm: str  # the engine's own view: active, pending, inactive ... or "" when it does not answer
    role: str  # manager or worker, "" when unknown


@dataclass(frozen=True)
class ClusterStatus:
    """What ``status`` found of a cluster: nothing at all, a part, or every engine up and in the swarm."""

    name: str
    exists: bool
    engines: tuple[EngineStatus, ...] = field(default_factory=tuple)
    leftovers: tuple[str, ...] = field(default_factory=tuple)  # what else of the cluster remains (down removes it)

    @property
    def healthy(self) -> bool:
        return bool(self.engines) and all(e.answers and e.swarm == "active" for e in self.engines)


# --- names and places ------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """A cluster name is used in namespace names, hostnames and paths: keep it short and plain."""
    if not NAME_PATTERN.match(name):
        raise ClusterError(f"cluster name {name!r}: use 1-31 lowercase letters, digits and '-', starting with a letter")
    return name


def run_dir(name: str) -> Path:
    return RUN_BASE / name


def lib_dir(name: str) -> Path:
    return LIB_BASE / name


def state_file(name: str) -> Path:
    return run_dir(name) / "cluster.json"


def bridge_netns(name: str) -> str:
    return f"{name}-net"


def engine_netns(name: str, index: int) -> str:
    return f"{name}-e{index}"


def cgroup_parent(name: str, engine: str) -> str:
    return f"/{CGROUP_BASE}/{name}/{engine}"


def plan(name: str, engines: int, storage_driver: str, tls: bool = False) -> Cluster:
    """The cluster's layout, before anything is made: names, paths, addresses."""
    if not 1 <= engines <= MAX_ENGINES:
        raise ClusterError(f"engines: between 1 and {MAX_ENGINES}, not {engines}")
    members = []
    for index in range(1, engines + 1):
        engine = f"e{index}"
        run = run_dir(name) / engine
        members.append(Engine(
            name=engine,
            netns=engine_netns(name, index),
            endpoint=f"unix://{run / 'docker.sock'}",
            address4=str(LINK4[HOST_BASE + index]),
            address6=str(LINK6[int(str(HOST_BASE + index), 16)]),
            run_dir=str(run),
            data_root=str(lib_dir(name) / engine),
            hostname=f"{name}-{engine}",
        ))
    return Cluster(name=name, engines=tuple(members), bridge_netns=bridge_netns(name), storage_driver=storage_driver,
                   tls=tls)


# --- small helpers ---------------------------------------------------------------------------------------------


def _run(*argv: str, check: bool = True, input_bytes: bytes | None = None, timeout: float = 120.0) -> str:
    """Run a command; on failure raise ClusterError with the command and what it said."""
    try:
        done = subprocess.run(argv, input=input_bytes, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{' '.join(argv)}: no answer within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise ClusterError(f"{' '.join(argv)} failed ({done.returncode}): {said}")
    return done.stdout.decode(errors="replace")


def _docker(engine: Engine, *args: str, check: bool = True, timeout: float = 120.0) -> str:
    """The docker CLI aimed at one engine of the cluster (never the machine's own engine)."""
    return _run("docker", "-H", engine.endpoint, *args, check=check, timeout=timeout)


def _ip(*args: str, check: bool = True) -> str:
    return _run("ip", *args, check=check)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ping(socket_path: str, timeout: float = 2.0) -> bool:
    """Whether a dockerd answers on this unix socket (GET /_ping), without the docker CLI's start-up cost."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        connection = http.client.HTTPConnection("localhost", timeout=timeout)
        connection.sock = sock
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        sock.close()


def check_prerequisites(tls: bool = False) -> None:
    """Root, and every tool the script runs: else a PrerequisiteError naming what to install."""
    if os.geteuid() != 0:
        raise PrerequisiteError("swarm_cluster needs root (network namespaces, mounts, dockerd): run it with sudo")
    tools = TOOLS | (TLS_TOOLS if tls else {})
    missing = sorted({package for tool, package in tools.items() if shutil.which(tool) is None})
    if missing:
        raise PrerequisiteError(f"missing tools: apt-get install -y {' '.join(missing)}")


def pick_storage_driver(requested: str = "auto") -> str:
    """The nested engines' storage driver: overlay2 where the data folder's filesystem takes an overlay mount,
    else fuse-overlayfs when installed, else vfs (a full copy of every layer: slow and big, but works anywhere).

    Measured on the development machine (ext4 under a Docker 20.10 whose own engine uses fuse-overlayfs), loading
    the 222 MB node image into a nested engine: see docs/swarm-cluster.md.
    """
    if requested != "auto":
        return requested
    LIB_BASE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=LIB_BASE, prefix=".probe-") as probe:
        parts = {part: Path(probe) / part for part in ("lower", "upper", "work", "merged")}
        for path in parts.values():
            path.mkdir()
        options = f"lowerdir={parts['lower']},upperdir={parts['upper']},workdir={parts['work']}"
        mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(parts["merged"])],
                                 capture_output=True, check=False).returncode == 0
        if mounted:
            subprocess.run(["umount", str(parts["merged"])], capture_output=True, check=False)
            return "overlay2"
    return "fuse-overlayfs" if shutil.which("fuse-overlayfs") else "vfs"


# --- up ---------------------------------------------------------------------------------------------------------


def exists(name: str) -> bool:
    """Whether anything of a cluster of this name is on the machine (state, namespaces, folders, processes)."""
    return bool(_leftovers(check_name(name)))


def up(name: str = DEFAULT_NAME, engines: int = DEFAULT_ENGINES, storage_driver: str = "auto",
       keep_on_failure: bool = False, tls: bool = False) -> Cluster:
    """Make the cluster: namespaces and links, one dockerd per engine, swarm init on e1, the others join as
    workers, every node labelled with its engine's endpoint. With ``tls``, a certificate authority of the
    cluster's own signs a certificate for each engine and one for the client, each engine also listens on
    TCP with TLS (client certificates required), and the workers' labels name that endpoint.

    A cluster of that name already there (even a part of one) is an error: ``up`` never removes what it did not
    just make; run ``down`` first. On failure everything made so far is removed again, unless keep_on_failure.
    """
    check_prerequisites(tls)
    check_name(name)
    found = _leftovers(name)
    if found:
        raise ClusterError(f"a cluster named {name!r} exists already ({', '.join(found[:4])}): "
                           f"run `python tools/swarm_cluster.py down --name {name}` first")
    cluster = plan(name, engines, pick_storage_driver(storage_driver), tls)
    run_dir(name).mkdir(parents=True)
    state_file(name).write_text(cluster.to_json())  # first, so that down finds even a half-made cluster
    try:
        if tls:
            _make_certificates(cluster)
        _make_links(cluster)
        _start_engines(cluster)
        _form_swarm(cluster)
    except BaseException:
        if not keep_on_failure:
            _say(f"up failed: removing what was made of {name}")
            down(name)
        raise
    return cluster


def _make_links(cluster: Cluster) -> None:
    """A bridge in a namespace of its own, and one veth link from it into each engine's namespace.

    Both ends of every veth are created directly inside the cluster's namespaces, so no interface of the cluster
    ever appears in the machine's root namespace (no name clash, nothing reachable from outside, no iptables rule
    of the machine involved). Each engine's link carries exactly one IPv4 address, its swarm data-path address:
    the kernel then has no other source address to choose for VXLAN packets (see docs/swarm-cluster.md).
    """
    bridge = cluster.bridge_netns
    _ip("netns", "add", bridge)
    _ip("-n", bridge, "link", "set", "lo", "up")
    _ip("-n", bridge, "link", "add", "br0", "type", "bridge")
    _ip("-n", bridge, "link", "set", "br0", "up")
    for index, engine in enumerate(cluster.engines, start=1):
        _ip("netns", "add", engine.netns)
        port = f"v{index}"
        _ip("-n", bridge, "link", "add", port, "mtu", str(LINK_MTU), "type", "veth", "peer", "name", "eth0", "mtu",
            str(LINK_MTU), "netns", engine.netns)
        _ip("-n", bridge, "link", "set", port, "master", "br0", "up")
        _ip("-n", engine.netns, "link", "set", "lo", "up")
        _ip("-n", engine.netns, "addr", "add", f"{engine.address4}/{LINK4.prefixlen}", "dev", "eth0")
        _ip("-n", engine.netns, "addr", "add", f"{engine.address6}/{LINK6.prefixlen}", "dev", "eth0", "nodad")
        _ip("-n", engine.netns, "link", "set", "eth0", "up")
    if cluster.tls:  # the client's place on the link, to reach the engines' TCP endpoints
        _ip("-n", bridge, "addr", "add", f"{CLIENT_ADDRESS}/{LINK4.prefixlen}", "dev", "br0")
    _check_sources(cluster)


def _check_sources(cluster: Cluster) -> None:
    """Each engine must reach each other engine from its own data-path address.

    The overlay driver's VXLAN device learns, and holds a permanent forwarding entry for every remote container
    pointing at that container's engine's data-path address; a VXLAN packet arriving from any other outer source
    address is dropped by the kernel (vxlan_rcv, drop reason VXLAN_ENTRY_EXISTS) before it is decapsulated. So
    the source the kernel picks for each peer is checked here, once, rather than discovered as a silent ping loss.
    """
    for engine in cluster.engines:
        for peer in cluster.engines:
            if peer is engine:
                continue
            route = _ip("-n", engine.netns, "-4", "route", "get", peer.address4).split()
            source = route[route.index("src") + 1] if "src" in route else ""
            if source != engine.address4:
                raise ClusterError(f"{engine.name} would reach {peer.name} from {source or 'no address'}, "
                                   f"not its data-path address {engine.address4}: VXLAN replies would be dropped")


def _daemon_config(cluster: Cluster, engine: Engine) -> dict[str, object]:
    """The engine's daemon.json: every path its own, so nothing is shared with the machine's engine or the others.

    Given with --config-file, which also keeps the machine's /etc/docker/daemon.json (data-root ...) out.
    """
    return {
        "hosts": [engine.endpoint],
        "data-root": engine.data_root,
        "exec-root": str(Path(engine.run_dir) / "exec"),
        "pidfile": str(Path(engine.run_dir) / "dockerd.pid"),
        "storage-driver": cluster.storage_driver,
        "cgroup-parent": cgroup_parent(cluster.name, engine.name),  # its containers' processes: found by down
        "shutdown-timeout": 5,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "2"},
        "labels": [f"socklab.cluster={cluster.name}", f"socklab.engine={engine.name}"],
    } | (_tls_config(cluster, engine) if cluster.tls else {})


def _tls_config(cluster: Cluster, engine: Engine) -> dict[str, object]:
    """Listen on TCP too, with TLS, and take only clients with a certificate of the cluster's authority."""
    own = cluster.certificates / engine.name
    return {"hosts": [engine.endpoint, engine.tcp_endpoint], "tlsverify": True,
            "tlscacert": str(cluster.certificates / "ca.pem"), "tlscert": str(own / "cert.pem"),
            "tlskey": str(own / "key.pem")}


def _make_certificates(cluster: Cluster) -> None:
    """A certificate authority of the cluster's own (gone with it); a certificate for each engine, naming its link
    address, and one for the client, all signed by it. Elliptic-curve keys: made in milliseconds."""
    folder = cluster.certificates
    folder.mkdir(mode=0o700)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run("openssl", "req", "-x509", *key, "-keyout", str(folder / "ca-key.pem"), "-out", str(folder / "ca.pem"),
         "-days", "2", "-subj", f"/CN={cluster.name} test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    signed = [(folder / engine.name, engine.hostname, f"subjectAltName=IP:{engine.address4}\n"
               "extendedKeyUsage=serverAuth\n") for engine in cluster.engines]
    for place, subject, extensions in [*signed, (folder, "client", "extendedKeyUsage=clientAuth\n")]:
        place.mkdir(exist_ok=True, mode=0o700)
        request, options = place / "request.csr", place / "extensions.cnf"
        options.write_text(extensions)
        _run("openssl", "req", "-new", *key, "-keyout", str(place / "key.pem"), "-out", str(request),
             "-subj", f"/CN={subject}")
        _run("openssl", "x509", "-req", "-in", str(request), "-CA", str(folder / "ca.pem"), "-CAkey",
             str(folder / "ca-key.pem"), "-CAcreateserial", "-out", str(place / "cert.pem"), "-days", "2",
             "-extfile", str(options))


def _start_engines(cluster: Cluster) -> None:
    """Start every dockerd at once, each in its namespace (and a UTS namespace of its own, so that the swarm
    nodes are named after their engine), then wait until each answers on its socket."""
    started = [(engine, _launch(cluster, engine)) for engine in cluster.engines]
    for engine, process in started:
        _wait_for_engine(engine, process)


def _launch(cluster: Cluster, engine: Engine) -> subprocess.Popen[bytes]:
    """Start one engine's dockerd in its namespaces, its config written afresh, its output appended to its log."""
    run = Path(engine.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    Path(engine.data_root).mkdir(parents=True, exist_ok=True)
    config = run / "daemon.json"
    config.write_text(json.dumps(_daemon_config(cluster, engine), indent=2))
    # nsenter --net, not `ip netns exec`: the latter remounts /sys for the namespace, which hides the cgroup
    # mounts beneath it, and dockerd then refuses to start.
    argv = ["nsenter", f"--net={NETNS_DIR / engine.netns}", "--", "unshare", "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', engine.hostname,
            "dockerd", "--config-file", str(config)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    with (run / "dockerd.log").open("ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)


def restart_engine(cluster: Cluster, engine: Engine) -> None:
    """Start again an engine whose dockerd stopped (killed, say, to test a node that leaves mid-run), as ``up``
    started it, and wait until it answers and the manager sees its node Ready again.

    Its data-root still holds its swarm membership and its containers, so it rejoins the swarm by itself; the
    containers it ran are stopped as it starts (no live-restore), and left for their owner to remove.
    """
    check_prerequisites()
    pid = _pidfile_pid(Path(engine.run_dir) / "dockerd.pid")
    if pid is not None:
        raise ClusterError(f"dockerd of {engine.name} still runs (pid {pid}): stop it first (or SIGCONT it)")
    _wait_for_engine(engine, _launch(cluster, engine))
    try:
        _wait_for_nodes(cluster, REJOIN_TIMEOUT)
    except ClusterError as exc:
        raise ClusterError(f"{exc}; the end of {engine.name}'s log:\n{_log_tail(engine, 40)}") from None


def _wait_for_engine(engine: Engine, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _ping(engine.socket_path):
        if process.poll() is not None:
            raise ClusterError(f"dockerd of {engine.name} exited ({process.returncode}):\n{_log_tail(engine)}")
        if time.monotonic() > deadline:
            raise ClusterError(f"dockerd of {engine.name} did not answer within {START_TIMEOUT:.0f} s:\n"
                               f"{_log_tail(engine)}")
        time.sleep(0.3)


def _log_tail(engine: Engine, lines: int = 15) -> str:
    log = Path(engine.run_dir) / "dockerd.log"
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _form_swarm(cluster: Cluster) -> None:
    """swarm init on the manager, every address pinned to its link address so that all swarm traffic (control,
    gossip, VXLAN) stays on the cluster's link; the others join as workers; then each node gets its label."""
    manager = cluster.manager
    address = manager.address4
    _docker(manager, "swarm", "init", "--advertise-addr", address, "--listen-addr", f"{address}:2377",
            "--data-path-addr", address)
    token = _docker(manager, "swarm", "join-token", "--quiet", "worker").strip()
    for engine in cluster.engines[1:]:
        _docker(engine, "swarm", "join", "--token", token, "--advertise-addr", engine.address4,
                "--listen-addr", f"{engine.address4}:2377", "--data-path-addr", engine.address4,
                f"{address}:2377")
    for engine in cluster.engines:
        node = _docker(engine, "info", "--format", "{{.Swarm.NodeID}}").strip()
        if not node:
            raise ClusterError(f"{engine.name} is not in the swarm after joining")
        endpoint = engine.tcp_endpoint if cluster.tls and engine is not manager else engine.endpoint
        _docker(manager, "node", "update", "--label-add", f"{ENDPOINT_LABEL}={endpoint}", node)
    _wait_for_nodes(cluster)


def _wait_for_nodes(cluster: Cluster, timeout: float = 60.0) -> None:
    """Until the manager sees every node Ready (a worker that joined is not at once schedulable)."""
    deadline = time.monotonic() + timeout
    while True:
        states = _docker(cluster.manager, "node", "ls", "--format", "{{.Status}}").split()
        if len(states) == len(cluster.engines) and all(state == "Ready" for state in states):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"swarm nodes not all Ready after {timeout:.0f} s: {states}")
        time.sleep(0.5)


def load_image(cluster: Cluster, image: str) -> None:
    """Copy an image of the machine's own engine into every engine of the cluster (docker save | docker load).

    Nothing can be pulled here (no registry), and the engines share no storage: each needs its own copy. The
    image is saved once, into the cluster's own folder, and loaded into each engine in turn.
    """
    with tempfile.NamedTemporaryFile(dir=lib_dir(cluster.name), prefix="image-", suffix=".tar") as archive:
        env = {key: value for key, value in os.environ.items() if key != "DOCKER_CONTEXT"}
        saved = subprocess.run(["docker", "save", image], stdout=archive, stderr=subprocess.PIPE, env=env, check=False)
        if saved.returncode != 0:
            raise ClusterError(f"docker save {image} on the machine's engine failed: {saved.stderr.decode().strip()}")
        for engine in cluster.engines:
            archive.seek(0)
            loaded = subprocess.run(["docker", "-H", engine.endpoint, "load", "--quiet"], stdin=archive,
                                    capture_output=True, check=False)
            if loaded.returncode != 0:
                raise ClusterError(f"docker load into {engine.name} failed: {loaded.stderr.decode().strip()}")


def load(name: str) -> Cluster:
    """The cluster ``up`` made under this name, from its state file."""
    try:
        return Cluster.from_json(state_file(check_name(name)).read_text())
    except FileNotFoundError as exc:
        raise ClusterError(f"no cluster named {name!r} (no {state_file(name)})") from exc


# --- down -------------------------------------------------------------------------------------------------------


def _netns_names(name: str) -> list[str]:
    """The cluster's namespaces that exist: <name>-net and <name>-e<digits>."""
    pattern = re.compile(rf"^{re.escape(name)}-(net|e\d+)$")
    try:
        return sorted(entry.name for entry in NETNS_DIR.iterdir() if pattern.match(entry.name))
    except FileNotFoundError:
        return []


def _our_paths(name: str) -> tuple[str, str]:
    return f"{run_dir(name)}/", f"{lib_dir(name)}/"


def _cgroup_dirs(name: str) -> list[Path]:
    """The cluster's cgroup folders, in every hierarchy (v1: one per controller; v2: the unified one)."""
    return sorted({*CGROUP_FS.glob(f"{CGROUP_BASE}/{name}"), *CGROUP_FS.glob(f"*/{CGROUP_BASE}/{name}")})


def _processes(name: str) -> dict[int, str]:
    """Every process of the cluster, whatever state it is in, with its command line.

    A process is the cluster's when its command line names the cluster's folders (dockerd by its config file,
    containerd by its config, shims by containerd's socket, fuse-overlayfs by its layers), when it runs in one of
    the cluster's namespaces, or when it is in the cluster's cgroups (the containers' processes).
    """
    paths = _our_paths(name)
    netns_inodes = set()
    for netns in _netns_names(name):
        with contextlib.suppress(OSError):
            netns_inodes.add(os.stat(NETNS_DIR / netns).st_ino)
    cgroup_marker = f"/{CGROUP_BASE}/{name}/"
    found: dict[int, str] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cgroups = (entry / "cgroup").read_text()
            net = os.readlink(entry / "ns" / "net")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        inode = int(net[net.index("[") + 1:-1]) if "[" in net else -1
        in_cgroup = any(f"{line.split(':', 2)[-1]}/".startswith(cgroup_marker) for line in cgroups.splitlines())
        if any(path in cmdline for path in paths) or inode in netns_inodes or in_cgroup:
            found[pid] = cmdline
    return found


def _mounts(name: str) -> list[str]:
    """Mount points beneath the cluster's folders (the engines' overlay layers, their netns files, shm ...)."""
    roots = tuple(path.rstrip("/") for path in _our_paths(name))
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == root or point.startswith(root + "/") for root in roots):
            points.append(point)
    return points


def _leftovers(name: str) -> list[str]:
    """Everything of the cluster still on the machine, in words (empty: the cluster is gone)."""
    found = [f"netns {netns}" for netns in _netns_names(name)]
    found += [f"process {pid} ({cmdline[:60]})" for pid, cmdline in sorted(_processes(name).items())]
    found += [f"mount {point}" for point in _mounts(name)]
    found += [f"folder {path}" for path in (run_dir(name), lib_dir(name)) if path.exists()]
    found += [f"cgroup {path}" for path in _cgroup_dirs(name)]
    return found


def leftovers(name: str) -> list[str]:
    """What remains of a cluster of this name (after ``down``: nothing)."""
    return _leftovers(check_name(name))


def down(name: str = DEFAULT_NAME) -> None:
    """Remove the cluster completely, whatever state it is in (whole, half-made, engines killed): idempotent.

    Order matters: the dockerds first get the chance to stop their containers and unmount their layers; what is
    still running is then killed; then every mount beneath the cluster's folders is detached (the namespaces'
    files too), the namespaces deleted (their links and bridge go with them), the folders and cgroups removed.
    """
    check_prerequisites()
    check_name(name)
    _stop_engines(name)
    _kill_processes(name)
    for point in sorted(_mounts(name), key=len, reverse=True):
        _run("umount", "--lazy", point, check=False)
    for netns in _netns_names(name):
        _ip("netns", "delete", netns, check=False)
    for path in (run_dir(name), lib_dir(name)):
        shutil.rmtree(path, ignore_errors=True)
    for group in _cgroup_dirs(name):
        for folder in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()
    for base in (RUN_BASE, LIB_BASE, *CGROUP_FS.glob(CGROUP_BASE), *CGROUP_FS.glob(f"*/{CGROUP_BASE}")):
        with contextlib.suppress(OSError):
            base.rmdir()  # only when no other cluster is left in it
    remaining = _leftovers(name)
    if remaining:
        raise ClusterError(f"down {name}: could not remove {', '.join(remaining)}")


def _stop_engines(name: str) -> None:
    """SIGTERM every dockerd of the cluster, and wait for them to stop (they stop containers and unmount)."""
    pids = [pid for pid, cmdline in _processes(name).items()
            if cmdline.split(" ", 1)[0].endswith("dockerd") and any(p in cmdline for p in _our_paths(name))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_processes(name: str) -> None:
    """SIGKILL whatever of the cluster still runs, until nothing does (a shim may start a moment late)."""
    for _ in range(20):
        pids = [pid for pid in _processes(name) if _alive(pid)]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)


# --- status -----------------------------------------------------------------------------------------------------


def status(name: str = DEFAULT_NAME) -> ClusterStatus:
    """What is there of a cluster of this name: each engine's namespace, dockerd, socket and swarm state."""
    check_prerequisites()  # root: the namespaces and processes of the cluster are root's to look at
    check_name(name)
    try:
        cluster = load(name)
    except ClusterError:
        return ClusterStatus(name=name, exists=bool(_leftovers(name)), leftovers=tuple(_leftovers(name)))
    namespaces = set(_netns_names(name))
    engines = []
    for engine in cluster.engines:
        pid = _pidfile_pid(Path(engine.run_dir) / "dockerd.pid")
        answers = _ping(engine.socket_path)
        swarm = role = ""
        if answers:
            info = _docker(engine, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
                           check=False).split()
            if len(info) == 2:
                swarm, role = info[0], ("manager" if info[1] == "true" else "worker")
        engines.append(EngineStatus(engine=engine.name, endpoint=engine.endpoint, netns=engine.netns in namespaces,
                                    pid=pid, answers=answers, swarm=swarm, role=role))
    return ClusterStatus(name=name, exists=True, engines=tuple(engines))


def _pidfile_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


# --- command line -----------------------------------------------------------------------------------------------


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="swarm_cluster", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (("up", "make the cluster (fails if one of that name exists)"),
                          ("down", "remove the cluster completely, whatever state it is in"),
                          ("status", "what is there of the cluster (exit 0 when every engine is up and in the swarm)"),
                          ("load-image", "copy an image of the machine's engine into every engine of the cluster")):
        sub = commands.add_parser(command, help=text, description=text)
        sub.add_argument("--name", default=DEFAULT_NAME, help=f"the cluster's name (default {DEFAULT_NAME})")
        if command == "up":
            sub.add_argument("--engines", type=int, default=DEFAULT_ENGINES, help="how many engines (default 3)")
            sub.add_argument("--storage-driver", default="auto",
                             help="the engines' storage driver: auto (default), overlay2, fuse-overlayfs or vfs")
            sub.add_argument("--keep-on-failure", action="store_true", help="leave a failed cluster to look at")
            sub.add_argument("--tls", action="store_true",
                             help="reach the workers over TCP with TLS, as remote engines (run clients with "
                                  "the printed nsenter prefix and environment)")
        if command in ("up", "load-image"):
            sub.add_argument("--image", action="append", default=[], required=command == "load-image",
                             help="an image of the machine's engine to load into every engine (repeatable)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        if args.command == "up":
            cluster = up(args.name, args.engines, args.storage_driver, args.keep_on_failure, args.tls)
            try:
                for image in args.image:
                    _say(f"loading {image} into {len(cluster.engines)} engines")
                    load_image(cluster, image)
            except BaseException:
                if not args.keep_on_failure:
                    down(args.name)
                raise
            _print_cluster(cluster)
        elif args.command == "down":
            down(args.name)
            _say(f"cluster {args.name}: removed")
        elif args.command == "load-image":
            check_prerequisites()
            cluster = load(args.name)
            for image in args.image:
                load_image(cluster, image)
        else:
            return _print_status(status(args.name))
    except PrerequisiteError as exc:
        _say(f"swarm_cluster: {exc}")
        return 2
    except ClusterError as exc:
        _say(f"swarm_cluster: {exc}")
        return 1
    return 0


def _print_cluster(cluster: Cluster) -> None:
    print(f"cluster {cluster.name}: {len(cluster.engines)} engines, storage {cluster.storage_driver}, "
          f"link {cluster.link4} {cluster.link6}")
    for engine in cluster.engines:
        role = "manager" if engine is cluster.manager else "worker"
        print(f"  {engine.name} {role:8} {engine.address4:15} {engine.address6:20} DOCKER_HOST={engine.endpoint}")
    for key, value in cluster.environment().items():
        print(f"export {key}={value}")
    if cluster.client_argv():
        print(f"# the workers listen on the cluster's link only: run clients as `{' '.join(cluster.client_argv())} "
              "python -m invoke ...`")


def _print_status(found: ClusterStatus) -> int:
    if not found.exists:
        print(f"cluster {found.name}: absent")
        return 1
    if not found.engines:
        print(f"cluster {found.name}: remains of one, without its state file (run down):")
        for item in found.leftovers:
            print(f"  {item}")
        return 1
    print(f"cluster {found.name}: {'up' if found.healthy else 'NOT healthy'}")
    for engine in found.engines:
        print(f"  {engine.engine}: netns {'yes' if engine.netns else 'NO'}, dockerd {engine.pid or 'NOT running'}, "
              f"socket {'answers' if engine.answers else 'silent'}, swarm {engine.swarm or '?'} {engine.role}"
              f"  {engine.endpoint}")
    return 0 if found.healthy else 1


@contextlib.contextmanager
def running(name: str = DEFAULT_NAME, engines: int = DEFAULT_ENGINES, images: Sequence[str] = ()) -> Iterator[Cluster]:
    """A cluster for the length of a with-block (the tests' fixture): up, images loaded, and always down after."""
    cluster = up(name, engines)
    try:
        for image in images:
            load_image(cluster, image)
        yield cluster
    finally:
        down(name)


if __name__ == "__main__":
    sys.exit(main())
