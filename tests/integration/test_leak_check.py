"""The suite's own leak check (tests/conftest.py), in test sessions of their own: it counts what its run made, only.

Each inner session loads tests/conftest.py as a plugin, so it makes its own
run owner (nested under this test's owner) and checks its own leaks when it
ends. A lab of somebody else, brought up while it runs and still up when it
ends, must not count; a lab the run itself left up, from an xdist worker
through an ``invoke`` subprocess, must.
"""

from __future__ import annotations

import secrets

import pytest

from socklab.constants import LABEL_LAB
from tests.helpers import ROOT, foreign_owner, labelled, owned, remove_owned, without_volumes

SOMEONE_ELSES = '''
from socklab.backend.docker import DockerBackend
from socklab.model import Host, Network


def test_someone_else_brings_a_lab_up_meanwhile(monkeypatch):
    monkeypatch.setenv("SOCKLAB_OWNER", "{owner}")
    DockerBackend().create_lab("{lab}", "someone-elses", [Network("lan")], [Host("a", ("lan",))])
'''

LEFT_UP = '''
from tests.helpers import invoke


def test_this_run_leaves_a_lab_up():
    up = invoke("up", "loopback-only")
    assert up.returncode == 0, up.stdout + up.stderr
'''


@pytest.fixture
def someone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Another owner and the id its lab gets; inner sessions can import ``tests`` and load its conftest."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return foreign_owner(), f"foreign-{secrets.token_hex(3)}"


def test_a_lab_of_someone_else_up_at_the_end_is_not_a_leak(
        pytester: pytest.Pytester, someone: tuple[str, str], lab_owner: str) -> None:
    owner, lab = someone
    pytester.makepyfile(test_someone_else=SOMEONE_ELSES.format(owner=owner, lab=lab))
    try:
        result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
        there = without_volumes(labelled(f"{LABEL_LAB}={lab}", owner=owner))
    finally:
        remove_owned(owner)  # this test made that owner up: the lab is its own to remove
    assert len(there) == 2, f"the other owner's lab (a host, a network) was up as the session ended: {there}"
    result.assert_outcomes(passed=1)
    assert "LEAK" not in result.stdout.str(), result.stdout.str()
    assert result.ret == pytest.ExitCode.OK


def test_a_lab_the_run_left_up_is_a_leak_and_fails_the_run(
        pytester: pytest.Pytester, someone: tuple[str, str], lab_owner: str) -> None:
    """Two xdist workers: one leaves a lab up through ``invoke up``, the other's test is somebody else's lab."""
    owner, lab = someone
    pytester.makepyfile(test_someone_else=SOMEONE_ELSES.format(owner=owner, lab=lab), test_left_up=LEFT_UP)
    try:
        result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider", "-n", "2")
        leaked = without_volumes(owned(lab_owner))  # the inner run's owner is under this test's
    finally:
        remove_owned(owner)
        remove_owned(lab_owner)
    assert len(leaked) == 3 and all("socklab-loopback-only-" in found for found in leaked), leaked
    result.assert_outcomes(passed=2)
    (leak,) = [line for line in result.stdout.lines if line.startswith("LEAK:")]
    assert all(found in leak for found in leaked), leak
    assert lab not in leak, f"somebody else's lab counted as this run's: {leak}"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
