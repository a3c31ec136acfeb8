"""Outcomes come from what the socket API really raises: each case provokes the real error."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from nodes.outcomes import Outcome, classify


def raised(action) -> BaseException:
    with pytest.raises(OSError) as caught:
        action()
    return caught.value


def closed_port() -> int:
    """A port nobody listens on: bind, note it, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connecting_to_a_closed_port_is_refused() -> None:
    with socket.socket() as sock:
        exc = raised(lambda: sock.connect(("127.0.0.1", closed_port())))
    assert classify(exc) == (Outcome.REFUSED, "ECONNREFUSED")


def test_a_connected_udp_socket_hears_port_unreachable_as_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect(("127.0.0.1", closed_port()))
        sock.send(b"anyone?")
        exc = raised(lambda: sock.recv(100))
    assert classify(exc) == (Outcome.REFUSED, "ECONNREFUSED")


def test_no_answer_in_time_is_a_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        exc = raised(lambda: sock.recv(100))
    assert classify(exc) == (Outcome.TIMEOUT, None)


def test_an_abortive_close_is_a_reset() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        peer, _ = server.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # linger 0: RST instead of FIN
        client.settimeout(2)
        exc = raised(lambda: client.recv(100))
    assert classify(exc) == (Outcome.RESET, "ECONNRESET")


def test_writing_to_a_reset_connection_is_a_broken_pipe() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        peer, _ = server.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        with pytest.raises(OSError):  # the first write after the RST reports the reset
            client.recv(1)

        def write_again() -> None:
            for _ in range(10):
                client.send(b"still there?")

        exc = raised(write_again)
    assert classify(exc) == (Outcome.BROKEN_PIPE, "EPIPE")


def test_binding_a_taken_port_is_addr_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as first, socket.socket() as second:
        exc = raised(lambda: second.bind(first.getsockname()))
    assert classify(exc) == (Outcome.ADDR_IN_USE, "EADDRINUSE")


def test_binding_an_address_not_on_this_host_is_addr_unavailable() -> None:
    with socket.socket() as sock:
        exc = raised(lambda: sock.bind(("192.0.2.1", 0)))  # TEST-NET-1: never a local address
    assert classify(exc) == (Outcome.ADDR_UNAVAILABLE, "EADDRNOTAVAIL")


def test_a_name_that_does_not_resolve_is_unresolved() -> None:
    exc = raised(lambda: socket.getaddrinfo("no-such-host.invalid", 80))
    outcome, name = classify(exc)
    assert outcome == Outcome.UNRESOLVED and name and name.startswith("EAI_")


@pytest.mark.parametrize(("code", "expected"), [
    (errno.EHOSTUNREACH, Outcome.HOST_UNREACHABLE),
    (errno.ENETUNREACH, Outcome.NET_UNREACHABLE),
    (errno.ETIMEDOUT, Outcome.TIMEOUT),
    (errno.EPERM, Outcome.DENIED),
    (errno.EMFILE, Outcome.ERROR),
])
def test_the_errno_table(code: int, expected: Outcome) -> None:
    """The kernel raises these only across hosts (see the Docker tests); the table maps them."""
    assert classify(OSError(code, "x")) == (expected, errno.errorcode[code])


def test_outcome_words_are_stable() -> None:
    """Scenario files are written in these words: renaming one breaks every file that uses it."""
    assert {o.value for o in Outcome} >= {"echoed", "ok", "refused", "timeout", "reset", "host-unreachable",
                                          "net-unreachable", "addr-unavailable", "addr-in-use", "mismatch"}
