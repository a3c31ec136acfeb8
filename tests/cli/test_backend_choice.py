"""Choosing where labs run: --backend or $SOCKLAB_BACKEND; a wrong choice, or a swarm that is not there, is exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

import docker
from socklab.errors import EXIT_BAD_INPUT
from tests.helpers import invoke


def test_an_unknown_backend_is_named_with_the_choices() -> None:
    result = invoke("labs", "--backend", "kubernetes")
    assert result.returncode == EXIT_BAD_INPUT
    assert "--backend: 'kubernetes' is not a backend" in result.stderr and "docker" in result.stderr
    assert "swarm" in result.stderr


def test_an_unknown_backend_in_the_environment_names_the_variable() -> None:
    result = invoke("labs", env={"SOCKLAB_BACKEND": "k8s"})
    assert result.returncode == EXIT_BAD_INPUT
    assert "SOCKLAB_BACKEND: 'k8s' is not a backend" in result.stderr


def test_no_swarm_manager_is_exit_2_with_advice() -> None:
    if (docker.from_env().info().get("Swarm") or {}).get("LocalNodeState") == "active":
        pytest.skip("this engine is part of a swarm: the advice for a missing one cannot be shown here")
    result = invoke("run", "tcp-echo", "--backend", "swarm")
    assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
    assert "is not a manager of a Docker swarm" in result.stderr
    assert "docker swarm init" in result.stderr and "SOCKLAB_SWARM_MANAGER" in result.stderr


def test_a_manager_that_does_not_answer_is_exit_2_naming_it(tmp_path: Path) -> None:
    nowhere = f"unix://{tmp_path}/no-engine.sock"
    result = invoke("labs", "--backend", "swarm", env={"SOCKLAB_SWARM_MANAGER": nowhere})
    assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
    assert f"No Docker engine at {nowhere}" in result.stderr
