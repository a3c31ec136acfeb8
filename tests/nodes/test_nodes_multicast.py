"""The multicast receiver and sender, on this machine's loopback interface (IPv4 groups)."""

from __future__ import annotations

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "target", "local", "family", "ttl", "loop", "sent", "answered", "hosts", "to",
        "ttls", "elapsed_ms"}
GROUP = "239.255.42.99"


@pytest.fixture(scope="module")
def member(module_lab: Lab) -> Server:
    return module_lab.start("multicast", "--bind", "0.0.0.0", "--port", "0", "--group", GROUP, "--interface", "lo")


def test_a_member_gets_the_group_datagram_with_the_default_ttl_1(lab: Lab, member: Server) -> None:
    member.wait_for_log(f"joined {GROUP} on lo")
    result = lab.client("multicast", "--to", f"{GROUP}:{member.port}", "--interface", "lo", "--wait", "0.5")
    assert set(result) == KEYS
    assert (result["outcome"], result["family"], result["ttl"], result["loop"]) == ("ok", "ipv4", 1, True), result
    assert (result["answered"], result["to"], result["ttls"]) == (1, GROUP, "1"), result
    member.wait_for_log(rf"sent to {GROUP}, TTL 1")


def test_the_ttl_set_is_the_ttl_received(member: Server) -> None:
    result = call_client("multicast", "--to", f"{GROUP}:{member.port}", "--interface", "lo", "--ttl", "7",
                         "--wait", "0.5")
    assert (result["outcome"], result["ttl"], result["ttls"]) == ("ok", 7, "7"), result


def test_unicast_arrives_with_ttl_64(member: Server) -> None:
    result = call_client("multicast", "--to", f"127.0.0.1:{member.port}", "--wait", "0.5")
    assert (result["outcome"], result["to"], result["ttls"]) == ("ok", "127.0.0.1", "64"), result


def test_a_receiver_that_joined_nothing_gets_nothing(lab: Lab) -> None:
    # Another group: on one host, a socket bound to the port gets every group some socket of the host joined
    # (IP_MULTICAST_ALL, on by default), so the lab shows this across hosts.
    outsider = lab.start("multicast", "--bind", "0.0.0.0", "--port", "0")
    result = call_client("multicast", "--to", f"239.255.42.100:{outsider.port}", "--interface", "lo", "--wait", "0.5")
    assert (result["outcome"], result["sent"], result["answered"]) == ("timeout", 1, 0), result
    assert "received" not in outsider.log()


@pytest.mark.parametrize("args, message", [
    (["--group", "198.18.0.1"], "a group is an address of 224.0.0.0/4 or ff00::/8"),
    (["--group", GROUP, "--interface", "no-such-if0"], "is not an interface of this host"),
])
def test_bad_server_arguments_exit_2(lab: Lab, args: list[str], message: str) -> None:
    done = lab.run("multicast", "serve", "--bind", "0.0.0.0", "--port", "0", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_group_of_the_other_family_than_the_socket_exits_2(lab: Lab) -> None:
    done = lab.run("multicast", "serve", "--bind", "::", "--port", "0", "--group", GROUP)
    assert done.returncode == 2 and "to join 239.255.42.99, bind 0.0.0.0" in done.stderr, done.stderr


def test_bad_ttl_exits_2(lab: Lab) -> None:
    assert lab.run("multicast", "client", "--to", f"{GROUP}:9", "--ttl", "256").returncode == 2
