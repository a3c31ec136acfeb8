"""Fixtures for the node programs' tests; the helpers they use live in ``nodetest``."""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that test modules can `import nodetest` in any import mode
    sys.path.insert(0, str(HERE))

Lab = importlib.import_module("nodetest").Lab  # importable only now that HERE is on the path


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
