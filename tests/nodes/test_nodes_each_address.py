"""Clients try each address a name resolves to, in order, and say what came of each (``attempts``).

A lab's host name resolves to its IPv6 address first, while many servers
listen on IPv4 only: a client that used the first address alone would be
refused by a server it can reach. Here a name, ``twofaced``, resolves to
``::1`` and then ``127.0.0.1`` (getaddrinfo is replaced in this process,
and the clients run in it), and the servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from nodetest import Lab, call_client

from nodes.endpoints import try_each

NAME = "twofaced"
real_getaddrinfo = socket.getaddrinfo


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not ipv6_loopback(), reason="needs ::1")


@pytest.fixture
def resolving(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make ``twofaced`` resolve to the addresses in the list yielded (::1, then 127.0.0.1, unless changed)."""
    order = ["::1", "127.0.0.1"]

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> list:
        if host != NAME:
            return real_getaddrinfo(host, port, family, type, proto, flags)
        found: list = []
        for address in order:
            found += real_getaddrinfo(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        return found

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield order


# program, server options, client options, the outcome of success, what the refusing ::1 comes to
CASES = [
    ("app", (), ("--value", "ring"), "ok", "refused"),
    ("app", (), ("--value", "ring", "--requests", "20", "--concurrency", "5"), "ok", "refused"),
    ("app", (), ("--value", "ring", "--split", "prefix", "--pause", "0"), "ok", "refused"),
    ("multiconn", (), ("--connections", "5"), "echoed", "refused"),
    ("asyncecho", (), ("--connections", "5", "--concurrency", "2"), "echoed", "refused"),
    ("bulk", (), ("--bytes", "100000"), "ok", "refused"),
    ("bulk", ("--proto", "udp"), ("--proto", "udp", "--count", "10"), "ok", "refused"),  # a connected socket
    ("whoami", (), (), "ok", "refused"),
    ("whoami", ("--proto", "udp"), ("--proto", "udp", "--connected"), "ok", "refused"),
    ("whoami", ("--proto", "udp"), ("--proto", "udp", "--timeout", "0.3"), "ok", "timeout"),  # unconnected: no ICMP
    ("boundaries", (), ("--count", "3"), "ok", "refused"),
    ("boundaries", ("--proto", "udp"), ("--proto", "udp", "--count", "3", "--timeout", "0.3"), "ok", "timeout"),
    ("udpecho", (), ("--connected",), "echoed", "refused"),
    ("udpecho", (), ("--timeout", "0.3"), "echoed", "timeout"),
    ("udpecho", (), ("--count", "20", "--connected"), "echoed", "refused"),
]
MANY = {"app", "multiconn", "asyncecho"}  # clients of many connections: the address is chosen once, before them


def case_id(case: tuple) -> str:
    return " ".join((case[0], *case[2]))


@pytest.mark.parametrize("program, serve, args, success, first", CASES, ids=map(case_id, CASES))
def test_a_refusing_first_address_is_passed_over_for_the_next(
    lab: Lab, resolving: list[str], program: str, serve: tuple[str, ...], args: tuple[str, ...], success: str,
    first: str,
) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0", *serve)
    result = call_client(program, "--to", f"{NAME}:{server.port}", *args)
    assert result["outcome"] == success, result
    assert result["peer"] == f"127.0.0.1:{server.port}", result
    tried = [(a["peer"], a["outcome"]) for a in result["attempts"]]
    assert tried == [(f"[::1]:{server.port}", first), (f"127.0.0.1:{server.port}", "ok")], result
    refused, used = result["attempts"]
    assert set(refused) == set(used) == {"peer", "outcome", "errno", "detail", "elapsed_ms"}  # the probe's keys
    assert refused["errno"] == ("ECONNREFUSED" if first == "refused" else None) and refused["detail"]
    assert used["errno"] is None and used["detail"] is None and used["elapsed_ms"] >= 0
    if first == "timeout":
        assert refused["elapsed_ms"] >= 250  # the address was given its whole --timeout


@pytest.mark.parametrize("program, serve, args, success, first", CASES, ids=map(case_id, CASES))
def test_when_every_address_fails_the_last_failure_is_the_result(
    free_port: int, resolving: list[str], program: str, serve: tuple[str, ...], args: tuple[str, ...],
    success: str, first: str,
) -> None:
    result = call_client(program, "--to", f"{NAME}:{free_port}", *args)
    assert result["outcome"] == first, result
    tried = [(a["peer"], a["outcome"]) for a in result["attempts"]]
    assert tried == [(f"[::1]:{free_port}", first), (f"127.0.0.1:{free_port}", first)], result
    if first == "refused":
        assert result["errno"] == "ECONNREFUSED"
    if program in MANY:  # no address to use: every connection failed so, none was made
        asked = result["requests"] if program == "app" else result["connections"]
        assert result["peer"] is None and result["errors"] == {first: asked}, result


def test_the_first_address_that_answers_is_the_only_one_tried(lab: Lab, resolving: list[str]) -> None:
    resolving.reverse()  # 127.0.0.1 first
    server = lab.start("whoami", "--bind", "127.0.0.1", "--port", "0")
    result = call_client("whoami", "--to", f"{NAME}:{server.port}")
    assert result["outcome"] == "ok"
    assert [(a["peer"], a["outcome"]) for a in result["attempts"]] == [(f"127.0.0.1:{server.port}", "ok")]


def test_with_proto_both_each_transport_lists_its_own_attempts(lab: Lab, resolving: list[str]) -> None:
    server = lab.start("whoami", "--proto", "both", "--bind", "127.0.0.1", "--port", "0")
    result = call_client("whoami", "--proto", "both", "--to", f"{NAME}:{server.port}")
    assert (result["outcome"], result["tcp"], result["udp"]) == ("ok", "ok", "ok")
    for key in ("attempts", "udp_attempts"):
        assert [a["outcome"] for a in result[key]] == ["refused", "ok"], result[key]


def accepted(log: str) -> int:
    return len(re.findall(r"\baccepted ", log))


def test_many_connections_choose_the_address_once_with_one_connection_of_their_own(
    lab: Lab, resolving: list[str]
) -> None:
    """Each of the counted connections goes to the chosen address; the choice costs one more, unused."""
    server = lab.start("multiconn", "--bind", "127.0.0.1", "--port", "0")
    result = call_client("multiconn", "--to", f"{NAME}:{server.port}", "--connections", "4")
    assert (result["outcome"], result["opened"], result["completed"]) == ("echoed", 4, 4)
    server.wait_for_log(r"(?s)(closed .*){5}")
    assert accepted(server.log()) == 5, server.log()  # 4 counted, and the one that chose 127.0.0.1


@pytest.mark.parametrize("program, args", [("multiconn", ("--connections", "4")),
                                           ("asyncecho", ("--connections", "4"))])
def test_an_ip_address_is_used_as_before_with_no_extra_connection(
    lab: Lab, program: str, args: tuple[str, ...]
) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0")
    result = call_client(program, "--to", server.endpoint(), *args)
    assert (result["outcome"], result["peer"], result["attempts"]) == ("echoed", server.endpoint(), [])
    server.wait_for_log(r"(?s)(closed .*){4}")
    assert accepted(server.log()) == 4, server.log()


@pytest.mark.parametrize("program, args", [("whoami", ()), ("bulk", ("--bytes", "10")), ("boundaries", ()),
                                           ("udpecho", ())])
def test_an_ip_address_is_one_attempt(lab: Lab, program: str, args: tuple[str, ...]) -> None:
    server = lab.start(program, "--bind", "127.0.0.1", "--port", "0")
    result = call_client(program, "--to", server.endpoint(), *args)
    assert [(a["peer"], a["outcome"]) for a in result["attempts"]] == [(server.endpoint(), "ok")], result


def test_an_unresolvable_name_has_no_attempts() -> None:
    for program, args in [("whoami", ()), ("udpecho", ()), ("multiconn", ())]:
        result = call_client(program, "--to", "no-such-host.invalid:9", *args)
        assert (result["outcome"], result["attempts"]) == ("unresolved", []), result


# -- the helper itself ---------------------------------------------------------------------------------

ADDRESSES = [(socket.AF_INET6, ("::1", 9, 0, 0)), (socket.AF_INET, ("127.0.0.1", 9))]


def test_try_each_returns_the_first_success_and_notes_each_try() -> None:
    attempts: list[dict[str, Any]] = []

    def attempt(family: int, sockaddr: tuple) -> str:
        if family == socket.AF_INET6:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return f"connected to {sockaddr[0]}"

    assert try_each(ADDRESSES, attempt, attempts) == "connected to 127.0.0.1"
    assert [(a["peer"], a["outcome"], a["errno"]) for a in attempts] == [
        ("[::1]:9", "refused", "ECONNREFUSED"), ("127.0.0.1:9", "ok", None)]


def test_try_each_raises_the_last_error_when_all_fail() -> None:
    attempts: list[dict[str, Any]] = []
    errors = iter([TimeoutError("timed out"), OSError(errno.ENETUNREACH, "Network is unreachable")])

    def attempt(family: int, sockaddr: tuple) -> None:
        raise next(errors)

    with pytest.raises(OSError) as raised:
        try_each(ADDRESSES, attempt, attempts)
    assert raised.value.errno == errno.ENETUNREACH
    assert [(a["outcome"], a["errno"], a["detail"]) for a in attempts] == [
        ("timeout", None, "timed out"), ("net-unreachable", "ENETUNREACH", "Network is unreachable")]


def test_try_each_lets_anything_but_a_socket_error_through_at_once() -> None:
    """A bug, or a reply that is not what the protocol says, is no reason to try another address."""
    attempts: list[dict[str, Any]] = []

    def attempt(family: int, sockaddr: tuple) -> None:
        raise ValueError("not JSON")

    with pytest.raises(ValueError):
        try_each(ADDRESSES, attempt, attempts)
    assert len(attempts) == 1


def test_try_each_with_no_address_raises() -> None:
    with pytest.raises(OSError, match="no address"):
        try_each([], lambda family, sockaddr: None, [])
