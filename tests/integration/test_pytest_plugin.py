"""The pytest plugin, used as an engineer would: in a test session of its own."""

from __future__ import annotations

import pytest

from socklab.pytest_plugin import _lab_name
from tests.conftest import ROOT, labelled


def readme_example() -> str:
    block = (ROOT / "README.md").read_text().split("<!-- pytest-example:start -->")[1]
    return block.split("<!-- pytest-example:end -->")[0].strip().removeprefix("```python").removesuffix("```")


def labs_of(scenario_names: list[str]) -> list[str]:
    assert all(scenario_names), "every name must be one a lab really gets"
    return [found for name in scenario_names for found in labelled(f"socklab.scenario={name}")]


def test_the_readme_example_passes_and_leaves_nothing(pytester: pytest.Pytester, engine) -> None:  # type: ignore[no-untyped-def]
    pytester.makepyfile(test_readme=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert labs_of([_lab_name("test_echo_across_hosts"), "loopback-only"]) == []


def test_a_failing_or_erroring_test_still_tears_its_labs_down(pytester: pytest.Pytester, engine) -> None:  # type: ignore[no-untyped-def]
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
    assert labs_of([_lab_name("test_fails_inside_a_lab"), _lab_name("test_raises_inside_a_lab")]) == []


def test_labs_side_by_side_under_xdist(pytester: pytest.Pytester, engine) -> None:  # type: ignore[no-untyped-def]
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
    assert labs_of([_lab_name(f"test_each_worker_its_own_lab[{n}]") for n in range(4)]) == []
