"""The Docker backend: the only part of socklab that talks to Docker (through its SDK)."""

from socklab.backend.docker.backend import DockerBackend

__all__ = ["DockerBackend"]
