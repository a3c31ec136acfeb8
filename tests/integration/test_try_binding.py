"""The `try` texts of the binding lessons, run as written (tests/tries.py)."""

from __future__ import annotations

import re

import pytest

from tests.tries import TrySession


@pytest.mark.tries("lan-interface", "invoke up lan-interface", "invoke exec server -- ss -ltn")
def test_lan_interface_listener_is_tied_to_one_address(try_text: TrySession) -> None:
    up = try_text("invoke up lan-interface")
    assert up.exit == 0, up
    server = re.search(r"│ server\s*│ lan\s*│ (198\.18\.\d+\.\d+)", up.stdout)
    assert server, up
    listening = try_text("invoke exec server -- ss -ltn")
    assert listening.exit == 0, listening
    local = [line.split()[3] for line in listening.stdout.splitlines()[1:] if line.startswith("LISTEN")]
    assert f"{server.group(1)}:65432" in local, listening
    assert not [address for address in local if address.endswith(":65432") and address != f"{server.group(1)}:65432"]
