"""The broadcast receiver and sender, on loopback's own broadcast address (127.255.255.255)."""

from __future__ import annotations

from nodetest import Lab, call_client

KEYS = {"outcome", "errno", "detail", "target", "local", "so_broadcast", "sent", "answered", "hosts", "to", "peers",
        "elapsed_ms"}
LOOPBACK_BROADCAST = "127.255.255.255"


def test_without_so_broadcast_sendto_is_denied(free_port: int) -> None:
    result = call_client("broadcast", "--to", f"{LOOPBACK_BROADCAST}:{free_port}", "--no-so-broadcast")
    assert set(result) == KEYS
    assert (result["outcome"], result["errno"], result["sent"], result["so_broadcast"]) == (
        "denied", "EACCES", 0, False), result


def test_a_wildcard_receiver_gets_the_broadcast_and_one_bound_to_its_address_does_not(lab: Lab) -> None:
    wildcard = lab.start("broadcast", "--bind", "0.0.0.0", "--port", "0")
    bound = lab.start("broadcast", "--bind", "127.0.0.1", "--port", str(wildcard.port))  # SO_REUSEADDR: both bind
    result = lab.client("broadcast", "--to", f"{LOOPBACK_BROADCAST}:{wildcard.port}", "--wait", "0.5")
    assert (result["outcome"], result["sent"], result["answered"], result["to"]) == (
        "ok", 1, 1, LOOPBACK_BROADCAST), result
    assert result["peers"] == [f"127.0.0.1:{wildcard.port}"]
    wildcard.wait_for_log(rf"received 12 bytes from 127\.0\.0\.1:\d+, sent to {LOOPBACK_BROADCAST}")
    assert "received" not in bound.log()
    unicast = call_client("broadcast", "--to", f"127.0.0.1:{wildcard.port}", "--wait", "0.5", "--send", "hi")
    assert unicast["outcome"] == "ok" and unicast["to"] == "127.0.0.1", unicast  # the more specific socket
    bound.wait_for_log(r"received 2 bytes from 127\.0\.0\.1:\d+, sent to 127\.0\.0\.1")


def test_nobody_there_is_a_timeout_for_a_broadcast(free_port: int) -> None:
    result = call_client("broadcast", "--to", f"{LOOPBACK_BROADCAST}:{free_port}", "--wait", "0.3")
    assert (result["outcome"], result["sent"], result["answered"], result["hosts"]) == ("timeout", 1, 0, ""), result


def test_bad_wait_exits_2(lab: Lab) -> None:
    assert lab.run("broadcast", "client", "--to", "127.0.0.1:9", "--wait", "0").returncode == 2
