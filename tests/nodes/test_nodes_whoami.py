"""The whoami server tells each client the addresses it saw; the client prints them."""

from __future__ import annotations

import socket
import threading

import pytest
from nodetest import Lab, Server, call_client

KEYS = {"outcome", "errno", "detail", "proto", "target", "peer", "local", "seen_as", "seen_port", "server_local",
        "server_family", "tcp", "udp", "udp_seen_as", "udp_server_local", "elapsed_ms",
        "attempts", "udp_attempts"}


@pytest.fixture(scope="module")
def dual(module_lab: Lab) -> Server:
    return module_lab.start("whoami", "--proto", "both", "--bind", "::", "--dual-stack", "--port", "0")


@pytest.fixture(scope="module")
def ipv4(module_lab: Lab) -> Server:
    return module_lab.start("whoami", "--proto", "both", "--bind", "0.0.0.0", "--port", "0")


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_an_ipv4_client_of_a_dual_stack_server_is_seen_ipv4_mapped(lab: Lab, dual: Server, proto: str) -> None:
    result = lab.client("whoami", "--proto", proto, "--to", f"127.0.0.1:{dual.port}")
    assert set(result) == KEYS
    assert result["outcome"] == "ok" and result["proto"] == proto and result["server_family"] == "ipv6"
    assert result["seen_as"] == result["server_local"] == "::ffff:127.0.0.1"
    assert result["seen_port"] == int(result["local"].rpartition(":")[2])
    assert result["peer"] == f"127.0.0.1:{dual.port}"
    dual.wait_for_log(rf"answered \[::ffff:127\.0\.0\.1\]:{result['seen_port']} over {proto}")


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_an_ipv6_client_is_seen_as_itself(dual: Server, proto: str) -> None:
    result = call_client("whoami", "--proto", proto, "--to", f"[::1]:{dual.port}")
    assert (result["outcome"], result["seen_as"], result["server_local"]) == ("ok", "::1", "::1")


def test_a_wildcard_udp_server_knows_and_answers_from_the_address_a_datagram_was_sent_to(ipv4: Server) -> None:
    result = call_client("whoami", "--proto", "udp", "--to", f"127.0.0.2:{ipv4.port}")
    assert result["outcome"] == "ok" and result["server_family"] == "ipv4"
    assert result["server_local"] == "127.0.0.2"
    assert result["peer"] == f"127.0.0.2:{ipv4.port}", "the answer must come from where the question went"


def test_connected_udp_is_refused_where_nobody_listens_unconnected_waits(free_port: int) -> None:
    refused = call_client("whoami", "--proto", "udp", "--connected", "--to", f"127.0.0.1:{free_port}")
    assert refused["outcome"] == "refused" and refused["errno"] == "ECONNREFUSED"
    silent = call_client("whoami", "--proto", "udp", "--to", f"127.0.0.1:{free_port}", "--timeout", "0.3")
    assert silent["outcome"] == "timeout" and silent["seen_as"] is None


def test_an_answer_that_is_not_whoami_json_is_a_mismatch() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hello\n")

        threading.Thread(target=answer, daemon=True).start()
        result = call_client("whoami", "--to", f"127.0.0.1:{port}")
    assert result["outcome"] == "mismatch" and "not a whoami answer" in result["detail"]


def test_tcp_only_and_udp_only_servers(lab: Lab) -> None:
    tcp = lab.start("whoami", "--bind", "127.0.0.1", "--port", "0")
    udp = lab.start("whoami", "--proto", "udp", "--bind", "127.0.0.1", "--port", "0")
    assert call_client("whoami", "--to", tcp.endpoint())["outcome"] == "ok"
    assert call_client("whoami", "--proto", "udp", "--to", udp.endpoint())["outcome"] == "ok"
    assert call_client("whoami", "--proto", "udp", "--to", tcp.endpoint(), "--timeout", "0.3",
                       "--connected")["outcome"] == "refused"


def test_both_asks_over_tcp_and_connected_udp_in_one_run(lab: Lab, dual: Server, free_port: int) -> None:
    both = lab.client("whoami", "--proto", "both", "--to", f"127.0.0.1:{dual.port}")
    assert set(both) == KEYS and list(both)[0] == "outcome"
    assert (both["outcome"], both["tcp"], both["udp"]) == ("ok", "ok", "ok")
    assert both["server_local"] == both["udp_server_local"] == "::ffff:127.0.0.1"
    assert both["seen_as"] == both["udp_seen_as"] == "::ffff:127.0.0.1"
    refused = call_client("whoami", "--proto", "both", "--to", f"127.0.0.1:{free_port}")
    assert (refused["outcome"], refused["tcp"], refused["udp"]) == ("refused", "refused", "refused")


def test_both_reports_udp_failing_alone(lab: Lab) -> None:
    tcp_only = lab.start("whoami", "--bind", "127.0.0.1", "--port", "0")
    result = call_client("whoami", "--proto", "both", "--to", tcp_only.endpoint())
    assert (result["outcome"], result["tcp"], result["udp"]) == ("refused", "ok", "refused")
    assert result["detail"].startswith("UDP: ") and result["server_local"] == "127.0.0.1"
