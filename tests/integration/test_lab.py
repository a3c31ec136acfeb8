"""The Docker backend and the lab on a real engine: what gets created, how, and that it all goes."""

from __future__ import annotations

import ipaddress
import shutil
import threading
import time
from pathlib import Path

import pytest

from socklab import programs
from socklab.backend.docker.backend import SCRATCH
from socklab.constants import GRADED_USER, IPV4_POOL, IPV6_POOL, LABEL_HOST, LABEL_LAB, LABEL_OWNER, owner
from socklab.errors import LabError
from socklab.lab import Lab
from socklab.model import Argv, Command, Host, Network, Service
from tests.helpers import labelled

# For answers that come at once (refused, unreachable): the timeout is only room for a loaded machine, and costs
# nothing when the answer comes; an outcome of "timeout" would fail the test either way.
AT_ONCE = 10.0
TWO_HOSTS = {"server": Host("server", ("lan",)), "client": Host("client", ("lan",))}
LAN = {"lan": Network("lan")}


def test_networks_are_internal_dual_stack_labelled_and_in_the_lab_pools(backend) -> None:
    networks = {"lan": Network("lan"), "v4only": Network("v4only", ipv6=False)}
    hosts = {"a": Host("a", ("lan", "v4only"))}
    with Lab.open(backend, "net-props", networks, hosts) as lab:
        found = backend.api.networks(filters={"label": f"{LABEL_LAB}={lab.id}"})
        assert len(found) == 2
        for summary in found:
            net = backend.api.inspect_network(summary["Id"])
            assert net["Internal"] is True and net["Driver"] == "bridge"
            assert net["Labels"][LABEL_OWNER] == owner(), "a network carries who made it"
            subnets = [ipaddress.ip_network(c["Subnet"]) for c in net["IPAM"]["Config"]]
            assert any(s.version == 4 and s.subnet_of(IPV4_POOL) for s in subnets)
            if net["Labels"]["socklab.network"] == "lan":
                assert net["EnableIPv6"] and any(s.version == 6 and s.subnet_of(IPV6_POOL) for s in subnets)
            else:
                assert not net["EnableIPv6"] and all(s.version == 4 for s in subnets)


def test_hosts_are_hardened_labelled_containers(backend) -> None:
    with Lab.open(backend, "host-props", LAN, TWO_HOSTS) as lab:
        container = backend.api.inspect_container(lab.infos["server"].handle.ref)
        config, host = container["Config"], container["HostConfig"]
        assert container["Name"] == f"/socklab-{lab.id}-server" and config["Hostname"] == "server"
        assert config["Labels"][LABEL_LAB] == lab.id and config["Labels"][LABEL_HOST] == "server"
        assert config["Labels"][LABEL_OWNER] == owner(), "a host carries who made it"
        assert host["Privileged"] is False and host["Init"] is True
        assert sorted(host["CapAdd"]) == ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"] and host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] > 0 and host["PidsLimit"] > 0
        assert not any("docker.sock" in m.get("Source", "") for m in container["Mounts"])
        assert lab.exec("server", ["id", "-un"]).stdout.strip() == "lab"


def test_exec_reports_exit_code_stdout_and_stderr(backend) -> None:
    with Lab.open(backend, "exec", LAN, TWO_HOSTS) as lab:
        result = lab.exec("client", ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_lab_hosts_cannot_reach_outside_the_lab(backend) -> None:
    """No default route: outside addresses fail at once (nothing is sent); the engine's own address is refused."""
    with Lab.open(backend, "isolation", LAN, TWO_HOSTS) as lab:
        outside = lab.probe("client", to="198.51.100.7:80", timeout=AT_ONCE)
        assert (outside.outcome, outside.evidence["errno"]) == ("net-unreachable", "ENETUNREACH")
        engine = lab.infos["client"].interfaces["lan"].engine4
        assert lab.probe("client", to=f"{engine}:22", timeout=AT_ONCE).outcome == "net-unreachable"
        assert lab.probe("client", to="[2001:db8::1]:80", timeout=AT_ONCE).outcome == "net-unreachable"
        peer = lab.probe("client", to="{server.lan.ipv4}:1", timeout=AT_ONCE)
        assert peer.outcome == "refused", "the other lab host is reachable"


def test_every_host_has_both_loopbacks_even_on_no_network(backend) -> None:
    hosts = {"alone": Host("alone"), "other": Host("other")}
    with Lab.open(backend, "loopbacks", {}, hosts) as lab:
        assert lab.probe("alone", bind="[::1]:5000").outcome == "ok"
        assert lab.probe("alone", bind="127.0.0.1:5000").outcome == "ok"
        assert lab.probe("alone", to="198.18.0.1:80", timeout=AT_ONCE).outcome == "net-unreachable"


def test_link_local_references_carry_the_viewers_interface(backend) -> None:
    networks = {"lan": Network("lan"), "wan": Network("wan")}
    hosts = {"server": Host("server", ("lan",)), "client": Host("client", ("wan", "lan"))}
    with Lab.open(backend, "link-local", networks, hosts) as lab:
        address, scope = lab.render("{server.lan.link_local}", on_host="client").split("%")
        assert ipaddress.IPv6Address(address).is_link_local
        assert scope == lab.render("{client.lan.iface}"), "the scope is the client's own lan interface"
        reached = lab.probe("client", to="[{server.lan.link_local}]:1", timeout=AT_ONCE)
        assert (reached.outcome, reached.evidence["peer"]) == ("refused", f"[{address}%{scope}]:1")


def test_a_service_is_ready_when_it_listens_and_its_log_is_kept(backend) -> None:
    service = Service("echo", "server", Command.parse("echo serve --bind '' --port 7"), ready="tcp://0.0.0.0:7")
    with Lab.open(backend, "service", LAN, TWO_HOSTS) as lab:
        assert lab.start_service(service).ready
        assert lab.probe("client", to="{server.lan.ipv4}:7", send="x").outcome == "echoed"
        log = lab.service_logs([service])["echo"]
        assert "listening on tcp 0.0.0.0:7" in log and "accepted" in log


def test_a_crashing_service_fails_fast_with_its_log(backend) -> None:
    crash = Service("bad", "server", Command.parse("echo serve --bind 192.0.2.1"), ready="tcp://192.0.2.1:65432")
    with Lab.open(backend, "crash", LAN, TWO_HOSTS) as lab:
        started = lab.start_service(crash)
    assert not started.ready and "exited before it was ready" in started.detail
    assert "not on this host" in started.log and "[exited with status 2]" in started.log


# A server for one client: it echoes one message and exits with status 1, as a crashing submission would.
ONE_CLIENT = ("import socket; s = socket.create_server(('', 7)); c, _ = s.accept(); c.sendall(c.recv(100)); "
              "raise SystemExit(1)")


@pytest.mark.parametrize("user", ["lab", GRADED_USER])
def test_a_service_that_died_starts_again_every_time(backend, user: str) -> None:
    """What a run that died left (its pid, its exit status) never makes the next start look failed (grading
    restarts a submission that died during a check, and its next checks depend on it)."""
    service = Service("once", "server", Argv(("python3", "-c", ONE_CLIENT)), ready="tcp://0.0.0.0:7", user=user)
    with Lab.open(backend, "restart", LAN, TWO_HOSTS) as lab:
        started = lab.start_service(service)
        for run in range(3):
            assert started.ready, f"start {run + 1}: {started.detail}\n{started.log}"
            assert lab.probe("client", to="{server.lan.ipv4}:7", send="x", timeout=AT_ONCE).outcome == "echoed"
            state = lab.service_state(service)
            for _ in range(100):  # it exits once its answer is sent: a moment after the client has it
                if not state.alive:
                    break
                time.sleep(0.1)
                state = lab.service_state(service)
            assert not state.alive and state.exit_status == 1, state
            # as if its guard had never said it watched: the next start waits for its own guard before its pid is
            # known, and meanwhile the wait for it to be ready finds the pid of the run that died
            lab.exec("server", ["rm", "-f", "/lab/run/once.pid.guard"], user="root")
            started = lab.restart_service(service)
        assert lab.service_state(service).alive
        assert lab.service_logs([service])["once"].count("[exited") == 0, "the exit status of a run before goes"


def test_an_exception_inside_the_lab_still_tears_it_down(backend) -> None:
    with pytest.raises(LabError), Lab.open(backend, "boom", LAN, TWO_HOSTS) as lab:
        made = labelled(f"{LABEL_LAB}={lab.id}")
        assert len(made) == 3 + 2 * len(SCRATCH), f"the lab is up: two hosts, a network, their scratch folders: {made}"
        raise LabError("a test's own failure")
    assert labelled(f"{LABEL_LAB}={lab.id}") == []


def test_a_failing_setup_command_fails_the_lab_naming_the_host(backend) -> None:
    hosts = {"server": Host("server", ("lan",), setup=("false-command-that-does-not-exist",)),
             "client": Host("client", ("lan",))}
    with pytest.raises(LabError, match="the setup of host 'server' failed"), Lab.open(backend, "setup", LAN, hosts):
        pass


def test_edited_node_programs_take_effect_without_a_rebuild(backend, tmp_path: Path, monkeypatch) -> None:
    edited = tmp_path / "nodes"
    shutil.copytree(programs.NODES_DIR, edited, ignore=shutil.ignore_patterns("__pycache__"))
    (edited / "hello.py").write_text('print(\'{"outcome": "ok", "edited": true}\')\n'
                                     'if __name__ == "__main__":\n    pass\n')
    monkeypatch.setattr(programs, "NODES_DIR", edited)
    with Lab.open(backend, "edited", LAN, TWO_HOSTS) as lab:
        seen = lab.run("client", "hello")
    assert seen.outcome == "ok" and seen.evidence["edited"] is True


def test_concurrent_labs_get_disjoint_subnets(backend) -> None:
    """Four labs made at once, and all up at one moment (a barrier, however slow each is to come up)."""
    subnets: list[ipaddress.IPv4Network] = []
    errors: list[BaseException] = []
    all_up = threading.Barrier(4)

    def one_lab(index: int) -> None:
        try:
            with Lab.open(backend, f"concurrent-{index}", LAN, TWO_HOSTS) as lab:
                subnets.append(ipaddress.IPv4Network(lab.infos["server"].interfaces["lan"].subnet4 or ""))
                all_up.wait(timeout=600)  # the bound only stops a hang
                assert lab.probe("client", to="{server.lan.ipv4}:1", timeout=AT_ONCE).outcome == "refused"
        except BaseException as exc:  # noqa: BLE001 - reported below
            all_up.abort()  # the others stop waiting for a lab that will never be up
            errors.append(exc)

    threads = [threading.Thread(target=one_lab, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    overlapping = [(a, b) for i, a in enumerate(subnets) for b in subnets[i + 1:] if a.overlaps(b)]
    assert len(subnets) == 4 and not overlapping, overlapping


def test_the_scratch_folders_are_capped_tmpfs_and_files_put_there_arrive(backend) -> None:
    """/tmp and the graded user's home are tmpfs volumes: size-capped, yet the engine's archive API writes there."""
    with Lab.open(backend, "scratch", LAN, {"server": Host("server", ("lan",))}) as lab:
        lab.put("server", b"hi\n", "/tmp/put.txt")
        lab.put("server", b"yo\n", "/submission/put.txt")
        seen = lab.exec("server", ["sh", "-c", "cat /tmp/put.txt /submission/put.txt; "
                                   "df --output=fstype,size -B1M /tmp /var/tmp /run/lock /submission | tail -n +2; "
                                   "stat -c '%U %a' /tmp /submission"])
        assert seen.stdout.split("\n")[:2] == ["hi", "yo"]
        sizes = [line.split() for line in seen.stdout.split("\n")[2:6]]
        assert sizes == [["tmpfs", size.removesuffix("m")] for size, _, _ in SCRATCH.values()]
        assert seen.stdout.split("\n")[6:8] == ["root 1777", "student 755"]
