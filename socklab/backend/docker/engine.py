"""Connecting to the Docker engine, and turning its failures into plain messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import requests
from docker.errors import APIError, DockerException

import docker
from socklab.errors import EnvironmentProblem

START_HINT = (
    "Start the engine (`sudo systemctl start docker`, or install Debian's docker.io), "
    "check DOCKER_HOST, and make sure this user may use the engine's socket"
)


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (the local socket by default)."""
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=64)
        client.ping()
    except (DockerException, requests.RequestException) as exc:
        raise EnvironmentProblem(f"No Docker engine answers: {exc}. {START_HINT}.") from None
    return client


@contextlib.contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Report an engine that stops answering, or refuses a request, as an environment problem.

    The SDK lets ``requests`` connection errors through unwrapped. A refusal
    mid-run usually means something else removed the lab (``invoke clean``
    from another terminal, say); either way the run cannot go on, and the
    user needs a sentence, not a traceback.
    """
    try:
        yield
    except requests.ConnectionError as exc:
        raise EnvironmentProblem(f"The Docker engine stopped answering while {doing}: {exc}. {START_HINT}.") from None
    except APIError as exc:
        gone = " (was the lab removed meanwhile, by `invoke clean` or `invoke down`?)" if exc.status_code == 404 else ""
        raise EnvironmentProblem(f"The Docker engine refused a request while {doing}: "
                                 f"{exc.explanation or exc}{gone}") from None
