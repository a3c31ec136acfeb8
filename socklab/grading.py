"""Grading: the catalogue's checks, run against somebody else's program.

``--impl echo=student/echo_server.py`` puts the student's file in place of
the program ``echo`` in every service that runs it (or of the service named
``echo``), with the same arguments (``serve --bind '' --port 65432``); a
program written for the classic tutorial that ignores its arguments works as
long as it serves the scenario's port. Its readiness only asks that
something listens on that port, wherever: where it bound is for the checks
to judge. Scenarios that run no replaced role have nothing to grade and are
left out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from socklab.errors import UsageError
from socklab.model import Command, Implementation, Scenario, Service

_READY_ADDRESS = re.compile(r"^(tcp|udp)://(\[[^\]]*\]|[^:/]*)(:\d+)$")


def parse(spec: str) -> Implementation:
    """``ROLE=PATH``, read now, so that a wrong path is an error before anything runs."""
    role, sep, path = spec.partition("=")
    if not sep or not role or not path:
        raise UsageError(f"--impl {spec}", "is not ROLE=PATH", "write it as echo=student/echo_server.py")
    try:
        code = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--impl {spec}", f"cannot read {path}: {exc.strerror}",
                         "give the path of a Python file") from None
    return Implementation(role=role, source=path, code=code)


def plays(service: Service, impl: Implementation) -> bool:
    program = service.command.program if isinstance(service.command, Command) else None
    return impl.role in (program, service.name)


def loosened(ready: str | None) -> str | None:
    """``tcp://127.0.0.1:65432`` -> ``tcp://*:65432``: any address will do."""
    return _READY_ADDRESS.sub(r"\1://*\3", ready) if ready else ready


def apply(scenario: Scenario, impls: Sequence[Implementation]) -> Scenario | None:
    """The scenario with every role played by its implementation, or None if it has none of them."""
    services, replaced = [], False
    for service in scenario.services:
        impl = next((i for i in impls if plays(service, i)), None)
        if impl:
            service = dataclasses.replace(service, impl=impl, ready=loosened(service.ready))
            replaced = True
        services.append(service)
    return dataclasses.replace(scenario, services=tuple(services)) if replaced else None


def select(scenarios: Sequence[Scenario], impls: Sequence[Implementation]) -> list[Scenario]:
    graded = [s for s in (apply(s, impls) for s in scenarios) if s is not None]
    for impl in impls:
        if not any(plays(service, impl) for s in graded for service in s.services):
            roles = sorted({svc.command.program for s in scenarios for svc in s.services
                            if isinstance(svc.command, Command)} | {svc.name for s in scenarios for svc in s.services})
            raise UsageError(f"--impl {impl.role}={impl.source}",
                             f"no selected scenario runs a program or service named {impl.role!r}",
                             f"use one of: {', '.join(roles)}")
    return graded


def files(scenario: Scenario) -> dict[str, bytes]:
    """The implementations to copy next to nodes/ on every host of the scenario's lab."""
    return {s.impl.filename: s.impl.code for s in scenario.services if s.impl}
