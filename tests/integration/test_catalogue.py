"""Every scenario of the catalogue passes on a real engine, check by check."""

from __future__ import annotations

from pathlib import Path

import pytest

from socklab import catalogue, runner, scenario
from socklab.results import Status


@pytest.mark.parametrize("path", catalogue.paths(), ids=lambda p: p.stem)
def test_scenario_passes_on_docker(path: Path, backend) -> None:
    result = runner.run_scenario(scenario.load(path), backend)
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.passed]
    assert not result.error, result.error
    assert not failed, failed
    assert result.status == Status.PASSED
