"""Backends realise a lab (networks and hosts) on some engine.

The rest of socklab sees only the small interface in ``base``: create a lab,
exec on a host, copy files in and out, tear down, find what is running. Docker is
the backend; the swarm backend spreads a lab over a swarm's engines
(``socklab.backend.swarm``), and network namespaces would slot in beside
them.
"""

from socklab.backend.base import (
    Backend,
    Channel,
    ExecResult,
    HostHandle,
    HostInfo,
    ImageProblem,
    Interface,
    LabSummary,
    MissingPath,
    PathInfo,
)

__all__ = ["Backend", "Channel", "ExecResult", "HostHandle", "HostInfo", "ImageProblem", "Interface", "LabSummary",
           "MissingPath", "PathInfo"]
