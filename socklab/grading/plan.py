"""What a grade counts: which checks exercise a submission, and what each is worth.

A grade counts only the checks that exercise the graded program: a check
that talks to the port of a service the submission plays (to that service's
host, or over loopback from the host itself), a check a scenario marks with
``grades = ["echo"]``, or, for a client submission, a check the client
makes itself. Kernel rules (a bind), other services and routing checks
still run, for the report, but are not in the grade. Each counted check is
worth its ``points`` (1 by default; a rubric may say otherwise).

``apply`` turns a scenario into the one a submission is graded in: its
services and client checks run the submission instead of socklab's program,
as the graded user, from the submission's folder.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from socklab.constants import GRADED_USER
from socklab.errors import UsageError
from socklab.grading.submission import CLIENT_MODE, Submission
from socklab.model import Argv, Check, Command, CommandEnd, Outcome, Probe, Scenario, Service
from socklab.refs import Ref, find_refs

_READY_PORT = re.compile(r"^(?:tcp|udp)://(?:\[[^\]]*\]|[^:/]*):(\d+)$")
_ENDPOINT = re.compile(r"(\{[^}\s]+\}|\[[0-9A-Fa-f:.%\w]+\]|[\w.-]+):(\d+)\b")
_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", ""}
SUCCESS = (Outcome.OK, Outcome.ECHOED)  # a client submission is graded where socklab's client succeeds


@dataclass(frozen=True)
class Counted:
    """A check that counts in a grade: for which roles, for how many points."""

    check: str
    roles: tuple[str, ...]
    points: float
    server: str = ""  # for a client submission's check: the service it talks to, whose log tells what it saw


@dataclass(frozen=True)
class Plan:
    """How one scenario grades its submissions."""

    scenario: str
    submissions: tuple[Submission, ...]
    services: dict[str, str] = field(default_factory=dict)  # service name -> role it plays
    counted: tuple[Counted, ...] = ()

    def counts(self, check: str) -> Counted | None:
        return next((c for c in self.counted if c.check == check), None)

    def source(self, role: str) -> str:
        return next(s.source for s in self.submissions if s.role == role)


def loosened(ready: str | None) -> str | None:
    """``tcp://127.0.0.1:65432`` -> ``tcp://*:65432``: where it binds is for the checks to judge."""
    return re.sub(r"^(tcp|udp)://(\[[^\]]*\]|[^:/]*)(:\d+)$", r"\1://*\3", ready) if ready else ready


def port(service: Service) -> str | None:
    """The port a service serves, from its readiness condition or its ``--port`` option."""
    if service.ready and (found := _READY_PORT.match(service.ready)):
        return found.group(1)
    if isinstance(service.command, Command) and "--port" in service.command.args[:-1]:
        return service.command.args[service.command.args.index("--port") + 1]
    return None


def endpoints(check: Check) -> list[tuple[str, str]]:
    """Every HOST:PORT the check's attempt talks to, as written (references unresolved)."""
    action = check.action
    if isinstance(action, Probe):
        text = action.to or ""
    elif isinstance(action, Command):
        text = " ".join(action.args)
    elif isinstance(action, Argv):
        text = " ".join(action.words)
    else:
        text = action.text
    return [(host, number) for host, number in _ENDPOINT.findall(text)]


def talks_to(check: Check, service: Service) -> bool:
    """The check's attempt goes to the service's port, on the service's host."""
    served = port(service)
    for host, number in endpoints(check):
        if number != served:
            continue
        refs = [ref for ref in find_refs(host) if isinstance(ref, Ref)]
        if refs:
            if refs[0].host == service.host:
                return True
        elif host.strip("[]") in _LOOPBACK:
            if service.host in check.hosts:
                return True
        elif host in (service.host, service.name) or _literal(host):
            return True  # the host by name, or an address written out (which may well be its)
    return False


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return False
    return True


def client_role(check: Check) -> str | None:
    """``app-client`` for ``app client ...``: the role a client submission plays in this check."""
    run = check.run
    if isinstance(run, Command) and run.args[:1] == (CLIENT_MODE,):
        return f"{run.program}-{CLIENT_MODE}"
    return None


def plays(service: Service, role: str) -> bool:
    program = service.command.program if isinstance(service.command, Command) else None
    mode = f"{program}-{service.command.args[0]}" if isinstance(service.command, Command) and \
        service.command.args else None
    return role in (program, mode, service.name)


def apply(scenario: Scenario, submissions: Sequence[Submission],
          points: Mapping[str, float] | None = None) -> tuple[Scenario, Plan] | None:
    """The scenario with the submissions in place, and how it grades them; None if it exercises none of them.

    ``points`` overrides a check's worth, by ``"scenario / check"`` (a rubric's).
    """
    services, plan_services = [], {}
    originals = {service.name: service for service in scenario.services}
    for service in scenario.services:
        submission = next((s for s in submissions if not s.is_client and plays(service, s.role)), None)
        if submission and isinstance(service.command, Command):
            submission.check_placeholders(service.command, _address(scenario, service.host))
            service = dataclasses.replace(
                service, command=submission.command(service.command, _address(scenario, service.host)),
                ready=loosened(service.ready), user=GRADED_USER, cwd=submission.folder, env={})
            plan_services[service.name] = submission.role
        services.append(service)
    checks, counted = [], []
    for check in scenario.checks:
        worth = (points or {}).get(f"{scenario.name} / {check.name}", check.points)
        # which service a check talks to is read from the scenario's own services (their ports, their options)
        roles = tuple(role for name, role in plan_services.items() if _counts(check, originals[name], role))
        client = next((s for s in submissions if s.is_client and s.role == client_role(check)), None)
        if client and check.expect in SUCCESS and isinstance(check.run, Command) and client.fits(check.run):
            server = next((s.name for s in scenario.services if talks_to(check, s)), "")
            check = _client_check(check, client)
            counted.append(Counted(check.name, (client.role,), worth, server))
        elif roles:
            counted.append(Counted(check.name, roles, worth))
        checks.append(check)
    if not counted:
        return None
    graded = dataclasses.replace(scenario, services=tuple(services), checks=tuple(checks), parallel_checks=False,
                                 files=(*scenario.files, *(s.copy() for s in submissions)))
    return graded, Plan(scenario.name, tuple(submissions), plan_services, tuple(counted))


def select(scenarios: Sequence[Scenario], submissions: Sequence[Submission],
           points: Mapping[str, float] | None = None) -> list[tuple[Scenario, Plan]]:
    """The scenarios that exercise the submissions, each ready to grade them; a role none plays is exit 2."""
    graded = [pair for pair in (apply(s, submissions, points) for s in scenarios) if pair]
    for submission in submissions:
        if not any(submission.role in counted.roles for _, plan in graded for counted in plan.counted):
            raise UsageError(f"--impl {submission.role}={submission.source}",
                             f"no selected scenario has a check of a program named {submission.role!r}",
                             f"use one of: {', '.join(roles(scenarios)) or 'none (pick other scenarios)'}")
    return graded


def roles(scenarios: Sequence[Scenario]) -> list[str]:
    """Every role a submission could play in these scenarios: servers, services, and clients."""
    found = set()
    for scenario in scenarios:
        for service in scenario.services:
            if isinstance(service.command, Command):
                found |= {service.command.program, service.name}
        found |= {role for check in scenario.checks if (role := client_role(check)) and check.expect in SUCCESS}
    return sorted(found)


def _counts(check: Check, service: Service, role: str) -> bool:
    if check.grades:
        return role in check.grades or service.name in check.grades
    return talks_to(check, service)


def _client_check(check: Check, client: Submission) -> Check:
    """The check made by the submitted client: judged by its exit status and by what it prints.

    It must exit 0, and print the result socklab's client would have found
    (the ``result`` or ``content`` the scenario expects), if it names one.
    """
    assert isinstance(check.run, Command)
    shown = next((str(e.equals) for e in check.evidence if e.key in ("result", "content") and e.equals), None)
    return dataclasses.replace(check, run=client.command(check.run, ""), shell=None,
                               expect=CommandEnd(0, re.escape(shown) if shown else None), evidence=(),
                               user=GRADED_USER, cwd=client.folder)


def _address(scenario: Scenario, host: str) -> str:
    """The address a client of ``host`` uses: its IPv4 address on its first network, as a reference."""
    networks = scenario.hosts[host].networks
    if not networks:
        return "127.0.0.1"
    return f"{{{host}.{networks[0]}.ipv4}}"  # every lab network has IPv4
