"""The lifecycle benchmark's filler of the conntrack table sends only to closed ports of 127.0.0.1, and bounded."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from socklab.benchmarks import lifecycle


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A UDP socket bound to one of the first ports the filler would send to (1024 up)."""
    for port in range(1024, 1064):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.settimeout(0.3)
        yield sock
        sock.close()
        return
    pytest.skip("no free UDP port among 1024-1063")


def test_bound_udp_ports_lists_a_bound_socket(listener: socket.socket) -> None:
    assert listener.getsockname()[1] in lifecycle.bound_udp_ports()


@pytest.mark.skipif(lifecycle.conntrack_count() is None, reason="no connection tracking here")
def test_the_filler_skips_ports_someone_listens_on_and_sends_no_more_than_asked(listener: socket.socket) -> None:
    # ports 1024 up, the listener's among them; fewer if the host's table is already half full
    assert 0 <= lifecycle.fill_conntrack(entries=50) <= 50
    with pytest.raises(TimeoutError):
        listener.recvfrom(1)
