"""Connecting to the Docker engine, and turning its failures into plain messages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import requests
from docker.errors import APIError, DockerException
from docker.utils import kwargs_from_env

import docker
from socklab.errors import EnvironmentProblem

START_HINT = (
    "Start the engine (`sudo systemctl start docker`, or install Debian's docker.io), "
    "check DOCKER_HOST, and make sure this user may use the engine's socket"
)


class EngineUnreachable(EnvironmentProblem):
    """No engine answers at an endpoint, or one stopped answering: the one problem a swarm node's loss shows as."""


# The engine API version of a client that verifies an engine's certificate against a CA of its own: Docker
# 20.10's, which has everything socklab asks for (see ``connect``).
TLS_API_VERSION = "1.41"


def connect(timeout: int = 120, base_url: str | None = None) -> docker.DockerClient:
    """A client for the engine at ``base_url``, else the one DOCKER_HOST names (the local socket by default).

    Either way the environment's TLS settings (DOCKER_TLS_VERIFY,
    DOCKER_CERT_PATH) apply to a ``tcp://`` endpoint, as they do for the
    docker command. Such a client is kept from ``requests``' own reading
    of the environment: there REQUESTS_CA_BUNDLE (set on many machines for
    other services) would replace the engine's CA and fail every request
    (docker-py issue 2433). It cannot ask the engine for its API version
    before that is done, so it speaks ``TLS_API_VERSION``.
    """
    environment = dict(os.environ) | ({"DOCKER_HOST": base_url} if base_url else {})
    try:
        settings = kwargs_from_env(environment=environment)
        tls = settings.get("tls")
        own_ca = bool(tls and getattr(tls, "ca_cert", None) and getattr(tls, "verify", False))
        client = docker.DockerClient(timeout=timeout, max_pool_size=64,
                                     version=TLS_API_VERSION if own_ca else None, **settings)
        if own_ca:
            client.api.trust_env = False  # the engine's CA, its address as given: no bundle, no proxy from the env
        client.ping()
    except (DockerException, requests.RequestException) as exc:
        where = f"at {base_url}" if base_url else "answers"
        if tls_refusal := _tls_refusal(str(exc)):
            address = base_url or environment.get("DOCKER_HOST", "")
            raise EnvironmentProblem(f"The Docker engine at {address} answered, but {tls_refusal} ({exc})") from None
        raise EngineUnreachable(f"No Docker engine {where}: {exc}. {START_HINT}.") from None
    return client


def _tls_refusal(error: str) -> str:
    """What is wrong with this client's TLS, and the fix, if the engine refused it for that (not an absent one)."""
    if "HTTP request to an HTTPS server" in error:
        return ("it speaks TLS. Fix: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the folder of the client's "
                "ca.pem, cert.pem and key.pem, as for the docker command")
    if "CERTIFICATE_VERIFY_FAILED" in error or "certificate" in error.lower() or "SSLError" in error:
        return ("the TLS connection failed. Fix: DOCKER_CERT_PATH must hold the ca.pem that signed the engine's "
                "certificate, and a cert.pem and key.pem it accepts; the address must be one its certificate names")
    return ""


@contextlib.contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Report an engine that stops answering, or refuses a request, as an environment problem.

    The SDK lets ``requests`` connection errors through unwrapped. A refusal
    mid-run usually means something else removed the lab (``invoke clean``
    from another terminal, say); one that says the disk or the memory ran
    out is named so, with what to free. Either way the run cannot go on, and
    the user needs a sentence, not a traceback. Whatever was made of a lab
    before the failure is torn down by ``Lab.open``, as on any failure.
    """
    try:
        yield
    except requests.ConnectionError as exc:
        raise EngineUnreachable(f"The Docker engine stopped answering while {doing}: {exc}. {START_HINT}.") from None
    except APIError as exc:
        why = str(exc.explanation or exc)
        short = exhausted(why)
        if short:
            raise EnvironmentProblem(f"The Docker engine ran out of {short} while {doing}: {why}. "
                                     f"{EXHAUSTED_FIX[short]}") from None
        gone = " (was the lab removed meanwhile, by `invoke clean` or `invoke down`?)" if exc.status_code == 404 else ""
        raise EnvironmentProblem(f"The Docker engine refused a request while {doing}: {why}{gone}") from None


# What the engine (or the kernel under it) says when a machine's resource runs out, by the resource.
EXHAUSTED = {
    "disk space": ("no space left on device", "disk quota exceeded"),
    "memory": ("cannot allocate memory", "out of memory"),
}
EXHAUSTED_FIX = {
    "disk space": "Fix: free space where the engine keeps its data (`docker system df` shows what it holds; "
                  "`invoke clean` removes labs of yours left behind), then run again",
    "memory": "Fix: run fewer labs at once (`--jobs 1`), stop other containers, or free memory on the engine's "
              "machine, then run again",
}


def exhausted(message: str) -> str:
    """Which of the machine's resources the engine's message says ran out ("disk space", "memory"), or ""."""
    lowered = message.lower()
    for resource, phrases in EXHAUSTED.items():
        if any(phrase in lowered for phrase in phrases):
            return resource
    return ""
