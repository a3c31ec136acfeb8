"""The scenario model: plain, frozen data, parsed and validated once.

Each field that a scenario file sets declares its key here, once (``key()``,
see ``socklab.keys``): the reader (``socklab.scenario``), the probe's
command line (``socklab.commands``), the JSON Schema and the README's key
list (``socklab.schema``) are all derived from these declarations. Nothing
here reads TOML or knows about Docker. Strings that may hold symbolic
addresses such as ``{server.lan.ipv4}`` stay templates until a lab is up
(``socklab.addressing``).
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nodes.outcomes import Outcome
from socklab.constants import IPV4_POOL, IPV6_POOL, LAB_USER
from socklab.keys import Invalid, key

TOPICS = (
    "Binding and interfaces",
    "IPv4 and IPv6",
    "TCP versus UDP",
    "Failures a client sees",
    "Servers for many clients",
    "Same host only",
)
USERS = (LAB_USER, "root")
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
NAME_RULE = "use 1-31 lowercase letters, digits and '-', starting with a letter"


def _subnet(pool: ipaddress.IPv4Network | ipaddress.IPv6Network,
            key: str) -> Callable[[str], ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A parser for a subnet key: ADDRESS/PREFIX of the pool's family, inside the pool."""

    def parse(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            subnet = ipaddress.ip_network(text)
        except ValueError as exc:
            raise Invalid(f"{text!r} is not a subnet ({exc})", "write it as ADDRESS/PREFIX") from None
        if subnet.version != pool.version or not (subnet.network_address in pool and subnet.broadcast_address in pool):
            raise Invalid(f"{subnet} is outside the lab pool {pool}",
                          f"pick a subnet inside {pool}, or leave {key} out to have one allocated")
        return subnet

    return parse


@dataclass(frozen=True)
class LinkConditions:
    """Impairments on a network, applied as each packet arrives at a host."""

    loss: float = key("share of packets dropped", 0.0, low=0.0, high=1.0, high_open=True, example="0.2")
    delay_ms: float = key("one-way delay added, in milliseconds (needs sch_netem)", 0.0, low=0.0, high=10_000.0,
                          example="50")
    rate: str | None = key("bandwidth cap in tc's units", None, pattern=r"\d+(\.\d+)?(bit|kbit|mbit|gbit)",
                           what="a rate", example='"10mbit"', fix='write it as "10mbit" or "512kbit"')

    def __bool__(self) -> bool:
        return bool(self.loss or self.delay_ms or self.rate)


@dataclass(frozen=True)
class Network:
    name: str
    ipv6: bool = key("dual-stack (true) or IPv4 only (false)", True, example="false")
    subnet4: ipaddress.IPv4Network | None = key(
        "the network's IPv4 subnet (default: one allocated so that labs never collide)", None, name="subnet",
        takes=str, parse=_subnet(IPV4_POOL, "subnet"), example='"198.18.7.0/24"')
    subnet6: ipaddress.IPv6Network | None = key(
        "the network's IPv6 subnet (default: allocated)", None, takes=str,
        parse=_subnet(IPV6_POOL, "subnet6"), example='"fd50:c1ab:0:7::/64"')
    conditions: LinkConditions = key("link conditions", default_factory=LinkConditions, flatten=True)


@dataclass(frozen=True)
class Host:
    name: str
    networks: tuple[str, ...] = key("the networks it is attached to: none, loopback only; two, multi-homed", (),
                                    declared="networks", example='["lan"]')
    setup: tuple[str, ...] = key("shell commands run as root once the host is up, before services start", (),
                                 refs="text", example='["iptables -A INPUT -p tcp --dport 65432 -j DROP"]')


@dataclass(frozen=True)
class Command:
    """A node program and its arguments, as in ``echo serve --port 65432``."""

    program: str
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Command:
        try:
            program, *args = shlex.split(text)
        except ValueError as exc:
            raise Invalid(f"cannot be split into arguments ({exc})", "balance the quotes") from None
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

    name: str = key("what the report calls it (default: HOST-PROGRAM)", example='"echo-server"')
    host: str = key("the host it runs on", required=True, declared="hosts", example='"server"')
    command: Command = key("a program of nodes/ and its arguments", name="run", required=True, takes=str,
                           parse=Command.parse, refs="text", example='"echo serve --bind 0.0.0.0 --port 65432"')
    ready: str | None = key("wait until a socket listens there: tcp://ADDR:PORT, udp://ADDR:PORT or unix:///PATH "
                            "(ADDR * for any)", None, refs="ready", example='"tcp://127.0.0.1:65432"')
    user: str = key("who runs it", LAB_USER, choices=USERS, what="a lab user", example='"root"')
    impl: Implementation | None = None  # run this instead of nodes/<program>


@dataclass(frozen=True)
class Probe:
    """One client attempt; each key becomes an option of ``python -m nodes.probe``, with the same default."""

    proto: str = key("transport", "tcp", choices=("tcp", "udp"), what="a protocol", flag="--proto",
                     example='"udp"')
    to: str | None = key("connect (TCP) or send a datagram (UDP) to HOST:PORT", None, refs="endpoint", flag="--to",
                         example='"{server.lan.ipv4}:65432"')
    bind: str | None = key("only bind there (and listen, for TCP): is ADDR:PORT free and local?", None,
                           refs="endpoint", flag="--bind", example='"0.0.0.0:65432"')
    send: str | None = key("text to send; an echo of it is 'echoed' (UDP sends 'ping' if none)", None, refs="text",
                           flag="--send", example='"Hello, world"')
    size: int | None = key("send this many bytes of a repeating pattern instead of text", None, low=1,
                           high=64 * 2**20, flag="--size", example="1048576")
    timeout: float = key("time budget per address, in seconds", 2.0, low=0.05, high=60.0, flag="--timeout",
                         example="2.0")
    source: str | None = key("bind the client to this local address first", None, name="from", refs="text",
                             flag="--from", example='"{client.lan.ipv4}"')
    family: str = key("address family to resolve names in", "any", choices=("any", "ipv4", "ipv6"),
                      what="a family", flag="--family", example='"ipv6"')
    connected: bool = key("UDP: connect() first, so that ICMP errors are reported", False, flag="--connected",
                          example="true")
    bufsize: int = key("UDP: receive buffer size (a smaller one truncates)", 65535, low=1, high=65535,
                       flag="--bufsize", example="8")
    reuse_addr: bool = key("with bind: set SO_REUSEADDR first", False, flag="--reuse-addr", example="true")
    v6only: bool | None = key("with bind on an IPv6 address: IPV6_V6ONLY on (true) or off (false)", None,
                              flag="--v6only", flag_off="--dual-stack", example="true")

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
    """A claim the scenario makes: this attempt, from these hosts, ends so.

    The file names the attempt's hosts with ``host`` (one) or ``hosts``
    (the same attempt from each, at the same time), and the attempt with
    ``probe`` or ``run``; ``hosts`` and ``action`` are the answer either way.
    """

    name: str = key("what the check claims, in words", required=True, example='"another host is refused"')
    host: str = key("the host the attempt is made from", "", declared="hosts", example='"client"')
    hosts: tuple[str, ...] = key("several hosts making the same attempt at once (instead of host)", (),
                                 declared="hosts", example='["client1", "client2"]')
    probe: Probe | None = key("the client attempt", None)
    run: Command | None = key("instead of a probe: a node program that prints a JSON result", None, takes=str,
                              parse=Command.parse, refs="text", example='"udpecho client --to {server.lan.ipv4}:7"')
    expect: Outcome = key("the outcome the attempt must end in", Outcome.ERROR, required=True, what="an outcome",
                          example='"echoed"')
    evidence: tuple[Expectation, ...] = key(
        "more claims about the client's JSON result: KEY = VALUE, or KEY = [LOW, HIGH] for a number", (),
        takes=dict, refs="text", example='{ loss_ratio = [0.05, 0.4] }')
    user: str = key("who makes the attempt", LAB_USER, choices=USERS, what="a lab user", example='"root"')
    limit: float | None = key("seconds a program may take (default 120)", None, low=1.0, high=600.0, example="60")

    @property
    def action(self) -> Action:
        return self.run or self.probe or Probe()


@dataclass(frozen=True)
class Scenario:
    name: str = key("the scenario's name: the file's name without .toml", required=True, section="scenario",
                    pattern=NAME_PATTERN, what="a valid name", fix=NAME_RULE, example='"tcp-echo"')
    title: str = key("what it shows, in one line", required=True, section="scenario",
                     example='"What the scenario shows, in one line"')
    topic: str = key("where it sits in the catalogue", required=True, section="scenario", choices=TOPICS,
                     what="a topic of the catalogue", example=f'"{TOPICS[0]}"')
    explains: str = key("what happens, and why the kernel does it", required=True, section="scenario",
                        example='"""What happens, and why the kernel does it."""')
    path: Path = Path()
    networks: dict[str, Network] = key("the networks, by name", default_factory=dict)
    hosts: dict[str, Host] = key("the hosts, by name", default_factory=dict)
    services: tuple[Service, ...] = key("background programs started before the checks, in order", ())
    checks: tuple[Check, ...] = key("the claims the scenario makes", ())
    try_next: str = key("what to change and watch next", "", name="try", section="scenario",
                        example='"""What to change and watch next."""')
    parallel_checks: bool = key("the checks do not depend on each other: make them side by side", False,
                                section="scenario", example="true")
