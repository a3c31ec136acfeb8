"""Fixtures for the node programs' tests; the helpers they use live in ``nodetest``.

Each test module runs in a network namespace of its own where it can (root,
Linux; ``tests.netns``): the node tests open over 10,000 loopback
connections, which would otherwise swell the host's connection-tracking
table and slow every lab's teardown after them. Elsewhere they run as
before.
"""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that test modules can `import nodetest` in any import mode
    sys.path.insert(0, str(HERE))

Lab = importlib.import_module("nodetest").Lab  # importable only now that HERE is on the path


@pytest.fixture(scope="module", autouse=True)
def _own_network_namespace() -> Iterator[bool]:
    """The module's loopback traffic in a namespace of its own (True), or the host's where that cannot be (False).

    Module-scoped and autouse, so it comes before the module's other fixtures
    (``module_lab``'s servers start inside) and goes after them; not
    session-wide, so the tests of other folders run where they always did.
    """
    with netns.private_network() as moved:
        yield moved


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    started = Lab(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab shared by a module's tests: one server can take every test's abuse in turn."""
    started = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield started
    finally:
        started.cleanup()


@pytest.fixture
def free_port() -> int:
    """A TCP and UDP port free on 127.0.0.1 right now (for tests that need to name one)."""
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        return port
