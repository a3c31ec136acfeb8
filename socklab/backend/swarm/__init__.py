"""The swarm backend: one lab's hosts on several machines' engines, joined by overlay networks (see backend)."""

from socklab.backend.swarm.backend import NodeLost, SwarmBackend

__all__ = ["NodeLost", "SwarmBackend"]
