"""bindname binds as the standard library's servers do: asyncio.start_server every address, create_server one."""

from __future__ import annotations

import re
import signal
import socket

import pytest
from nodetest import Lab, call_client


def sockets(log: str) -> list[str]:
    """The 'listening on tcp ADDR (...)' lines a server logged, without the time."""
    return sorted(re.findall(r"listening on (tcp \S+(?: \([^)]*\))?)", log))


def test_asyncio_binds_every_interface_for_an_empty_host_each_ipv6_socket_ipv6_only(lab: Lab, free_port: int) -> None:
    server = lab.start("bindname", "--api", "asyncio", "--bind", "", "--port", str(free_port))
    server.wait_for_log(r"2 sockets for ''")
    assert sockets(server.log()) == [f"tcp 0.0.0.0:{free_port}", f"tcp [::]:{free_port} (IPv6 only)"]
    for to in (f"127.0.0.1:{free_port}", f"[::1]:{free_port}"):
        result = call_client("bindname", "--to", to, "--send", "hi")
        assert result["outcome"] == "echoed" and result["peer"] == to, result


def test_asyncio_binds_a_socket_for_each_address_the_name_resolves_to(lab: Lab, free_port: int) -> None:
    found = {info[4][0] for info in socket.getaddrinfo("localhost", free_port, socket.AF_UNSPEC,
                                                       socket.SOCK_STREAM, 0, socket.AI_PASSIVE)}
    server = lab.start("bindname", "--api", "asyncio", "--bind", "localhost", "--port", str(free_port))
    count = len(found)
    server.wait_for_log(rf"{count} socket{'' if count == 1 else 's'} for 'localhost'")
    bound = {re.sub(r"^tcp \[?(.*?)\]?:\d+.*$", r"\1", line) for line in sockets(server.log())}
    assert bound == found, server.log()


def test_create_server_binds_one_socket_of_its_family_ipv4_by_default(lab: Lab, free_port: int) -> None:
    server = lab.start("bindname", "--bind", "", "--port", str(free_port))
    server.wait_for_log(r"1 socket for ''")
    assert sockets(server.log()) == [f"tcp 0.0.0.0:{free_port}"]
    assert call_client("bindname", "--to", f"127.0.0.1:{free_port}")["outcome"] == "echoed"
    assert call_client("bindname", "--to", f"[::1]:{free_port}")["outcome"] == "refused"


def test_create_server_with_a_name_binds_its_first_ipv4_address_only(lab: Lab, free_port: int) -> None:
    first = socket.getaddrinfo("localhost", free_port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    server = lab.start("bindname", "--bind", "localhost", "--port", str(free_port))
    server.wait_for_log(r"1 socket for 'localhost'")
    assert sockets(server.log()) == [f"tcp {first}:{free_port}"]


def test_create_server_ipv6_is_ipv6_only_unless_dualstack_ipv6(lab: Lab, free_port: int) -> None:
    """create_server sets IPV6_V6ONLY itself, either way: the kernel's default does not decide."""
    only = lab.start("bindname", "--family", "ipv6", "--bind", "::", "--port", str(free_port))
    assert sockets(only.log()) == [f"tcp [::]:{free_port} (IPv6 only)"]
    assert call_client("bindname", "--to", f"[::1]:{free_port}")["outcome"] == "echoed"
    assert call_client("bindname", "--to", f"127.0.0.1:{free_port}")["outcome"] == "refused"
    only.stop()
    dual = lab.start("bindname", "--family", "ipv6", "--dualstack-ipv6", "--bind", "::", "--port", str(free_port))
    assert "socket.has_dualstack_ipv6() = True" in dual.log()
    assert sockets(dual.log()) == [f"tcp [::]:{free_port} (dual-stack)"]
    result = call_client("bindname", "--to", f"127.0.0.1:{free_port}")
    assert result["outcome"] == "echoed" and result["peer"] == f"127.0.0.1:{free_port}", result
    dual.wait_for_log(rf"echoed 12 bytes to \[::ffff:127\.0\.0\.1\]:\d+ at \[::ffff:127\.0\.0\.1\]:{free_port}")


@pytest.mark.parametrize("args", [("--dualstack-ipv6",), ("--api", "asyncio", "--bind", "198.51.100.7")])
def test_what_cannot_be_bound_exits_2_with_one_line(lab: Lab, args: tuple[str, ...]) -> None:
    done = lab.run("bindname", "serve", "--port", "0", *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot bind "), done.stderr


def test_the_client_reports_what_came_back_and_from_where(lab: Lab) -> None:
    server = lab.start("bindname", "--bind", "127.0.0.1", "--port", "0")
    result = lab.client("bindname", "--to", f"localhost:{server.port}", "--send", "Hello, world")
    assert (result["outcome"], result["reply"], result["peer"]) == ("echoed", "Hello, world",
                                                                   f"127.0.0.1:{server.port}")
    assert result["local"].startswith("127.0.0.1:") and result["errno"] is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_asyncio_server_stops_cleanly_on_signals(lab: Lab, signum: int) -> None:
    server = lab.start("bindname", "--api", "asyncio", "--bind", "127.0.0.1", "--port", "0")
    assert call_client("bindname", "--to", server.endpoint())["outcome"] == "echoed"
    server.wait_for_log(r"echoed 12 bytes")
    assert server.stop(signum) == 0, server.log()
    assert server.log().splitlines()[-1].endswith(" stopped"), server.log()
    assert "Traceback" not in server.log(), server.log()
