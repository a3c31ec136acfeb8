"""The scenario model: plain, frozen data, parsed and validated once.

Nothing here knows about TOML or Docker. ``socklab.scenario`` builds these
objects from a file (and refuses bad ones); the runner and the backend only
ever read them. Strings that may hold symbolic addresses such as
``{server.lan.ipv4}`` stay templates until a lab is up (``socklab.refs``).
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from nodes.outcomes import Outcome


@dataclass(frozen=True)
class LinkConditions:
    """Impairments on a network, applied as each packet arrives at a host."""

    loss: float = 0.0  # share of packets dropped, 0 <= loss < 1
    delay_ms: float = 0.0  # one-way delay added
    rate: str | None = None  # bandwidth cap in tc's units, e.g. "10mbit"

    def __bool__(self) -> bool:
        return bool(self.loss or self.delay_ms or self.rate)


@dataclass(frozen=True)
class Network:
    name: str
    ipv6: bool = True
    subnet4: ipaddress.IPv4Network | None = None  # None: allocated from the lab pool
    subnet6: ipaddress.IPv6Network | None = None
    conditions: LinkConditions = field(default_factory=LinkConditions)


@dataclass(frozen=True)
class Host:
    name: str
    networks: tuple[str, ...] = ()  # none: the host has only its loopback
    setup: tuple[str, ...] = ()  # shell commands run as root once the host is up


@dataclass(frozen=True)
class Command:
    """A node program and its arguments, as in ``echo serve --port 65432``."""

    program: str
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Command:
        program, *args = shlex.split(text)
        return cls(program, tuple(args))

    def __str__(self) -> str:
        return shlex.join([self.program, *self.args])


@dataclass(frozen=True)
class Implementation:
    """Somebody's own program, standing in for one of nodes/ (grading mode)."""

    role: str  # the program it replaces (echo), or a service's name
    source: str  # the path it was read from, for the report
    code: bytes = field(repr=False, default=b"")

    @property
    def filename(self) -> str:
        return f"impl/{self.role.replace('/', '_')}.py"


@dataclass(frozen=True)
class Service:
    """A program left running in the background on a host, e.g. a server."""

    name: str
    host: str
    command: Command
    ready: str | None = None  # tcp://ADDR:PORT, udp://ADDR:PORT or unix:///PATH (ADDR * for any)
    user: str = "lab"
    impl: Implementation | None = None  # run this instead of nodes/<program>


@dataclass(frozen=True)
class Probe:
    """One client attempt; the fields mirror ``python -m nodes.probe``'s options."""

    proto: str = "tcp"
    to: str | None = None
    bind: str | None = None
    send: str | None = None
    size: int | None = None  # send this many pattern bytes instead of text
    timeout: float = 2.0
    source: str | None = None  # the TOML key is ``from``
    family: str = "any"
    connected: bool = False
    bufsize: int | None = None
    reuse_addr: bool = False
    v6only: bool | None = None

    @property
    def target(self) -> str:
        return self.to or self.bind or ""


Action = Probe | Command
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Expectation:
    """One claim about a field of the client's JSON result: a value, or a range for a number."""

    key: str
    equals: Scalar | None = None  # strings may hold references such as {client.lan.ipv4}
    low: float | None = None
    high: float | None = None

    def __str__(self) -> str:
        if self.low is not None or self.high is not None:
            return f"{self.low} <= {self.key} <= {self.high}"
        return f"{self.key} == {self.equals!r}"


@dataclass(frozen=True)
class Check:
    """A claim the scenario makes: this attempt, from these hosts, ends so."""

    name: str
    hosts: tuple[str, ...]  # one attempt from each, all at the same time
    action: Action
    expect: Outcome
    evidence: tuple[Expectation, ...] = ()  # more claims about the client's own result
    user: str = "lab"
    limit: float | None = None  # seconds a program may take (default: commands.COMMAND_LIMIT)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    topic: str
    explains: str
    path: Path
    networks: dict[str, Network]
    hosts: dict[str, Host]
    services: tuple[Service, ...] = ()
    checks: tuple[Check, ...] = ()
    try_next: str = ""
    parallel_checks: bool = False  # checks do not depend on each other: make them side by side
