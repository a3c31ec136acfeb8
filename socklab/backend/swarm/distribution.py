"""The node image on every node: saved on the manager's engine, loaded on each node that lacks it.

No registry is needed (an offline lab room has none). Images are named by
their recipe's digest (``socklab-node:<digest>``, ``socklab-own:<digest>``),
so a node that has the name has the content: sending costs one lookup per
node once it is there, and a new recipe is sent once. The save streams from
one engine into the other's load, never whole in memory; nodes are served
side by side.
"""

from __future__ import annotations

from collections.abc import Mapping

from docker.errors import ImageLoadError, ImageNotFound

from socklab.backend.base import Progress
from socklab.backend.docker.backend import DockerBackend
from socklab.backend.docker.engine import engine_errors
from socklab.concurrency import parallel_map
from socklab.errors import EnvironmentProblem


def send(name: str, source: DockerBackend, nodes: Mapping[str, DockerBackend], progress: Progress) -> list[str]:
    """Load image ``name`` from ``source`` onto every node (by hostname) that lacks it; return those it went to."""

    def one(item: tuple[str, DockerBackend]) -> str:
        hostname, engine = item
        if engine is source or _has(engine, name):
            return ""
        progress(f"sending {name} to swarm node {hostname}")
        with engine_errors(f"sending {name} to swarm node {hostname}"):
            try:
                engine.client.images.load(source.api.get_image(name))  # a stream into a stream, chunk by chunk
            except ImageLoadError as exc:
                raise EnvironmentProblem(f"swarm node {hostname} could not load {name}: {exc}") from None
        if not _has(engine, name):
            raise EnvironmentProblem(f"swarm node {hostname} loaded the archive of {name} but has no such image")
        return hostname

    return [hostname for hostname in parallel_map(one, sorted(nodes.items())) if hostname]


def _has(engine: DockerBackend, name: str) -> bool:
    try:
        engine.client.images.get(name)
    except ImageNotFound:
        return False
    return True
