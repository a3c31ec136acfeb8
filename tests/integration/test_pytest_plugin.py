"""The pytest plugin, used as an engineer would: in a test session of its own.

Each inner session inherits this test's owner (tests/conftest.py
``lab_owner``), so "it leaves nothing" means nothing of that owner: every
lab the session made, and no lab of a concurrent test of the same name.
"""

from __future__ import annotations

import pytest

from tests.helpers import ROOT, owned


def readme_example() -> str:
    block = (ROOT / "README.md").read_text().split("<!-- pytest-example:start -->")[1]
    return block.split("<!-- pytest-example:end -->")[0].strip().removeprefix("```python").removesuffix("```")


def runs_as(pytester: pytest.Pytester, owner: str) -> None:
    """The inner session makes its labs as ``owner`` (or refuses to start): so "nothing of it left" means something."""
    pytester.makeconftest(f"""
import os

def pytest_configure(config):
    assert os.environ.get("SOCKLAB_OWNER") == {owner!r}, "the session does not run as the test's owner"
""")


def test_the_readme_example_passes_and_leaves_nothing(
        pytester: pytest.Pytester, engine, lab_owner: str) -> None:
    runs_as(pytester, lab_owner)
    pytester.makepyfile(test_readme=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert owned(lab_owner) == []


def test_a_failing_or_erroring_test_still_tears_its_labs_down(
        pytester: pytest.Pytester, engine, lab_owner: str) -> None:
    runs_as(pytester, lab_owner)
    pytester.makepyfile(test_broken='''
def test_fails_inside_a_lab(socklab_lab):
    lab = socklab_lab(hosts={"a": ["lan"], "b": ["lan", "wan"]})
    assert lab.probe("a", to="{b.lan.ipv4}:1").outcome == "echoed"

def test_raises_inside_a_lab(socklab_lab):
    socklab_lab(hosts={"a": ["lan"], "b": ["lan"]})
    raise RuntimeError("boom")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*assert 'refused' == 'echoed'*"])
    assert owned(lab_owner) == []


def test_labs_side_by_side_under_xdist(
        pytester: pytest.Pytester, engine, lab_owner: str) -> None:
    runs_as(pytester, lab_owner)
    pytester.makepyfile(test_parallel='''
import pytest

@pytest.mark.parametrize("n", range(4))
def test_each_worker_its_own_lab(socklab_lab, n):
    lab = socklab_lab(hosts={"server": ["lan"], "client": ["lan"]})
    lab.start("server", f"echo serve --port {7000 + n}", ready=f"tcp://0.0.0.0:{7000 + n}")
    assert lab.probe("client", to=f"{{server.lan.ipv4}}:{7000 + n}", send=str(n)).outcome == "echoed"
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    assert owned(lab_owner) == []
