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
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodes.outcomes import Outcome
from socklab.constants import GRADED_USER, IPV4_POOL, IPV6_POOL, LAB_USER
from socklab.keys import Invalid, key

TOPICS = (
    "Binding and interfaces",
    "IPv4 and IPv6",
    "TCP versus UDP",
    "Inside a TCP connection",
    "Datagrams: limits, broadcast, multicast",
    "Failures a client sees",
    "Servers for many clients",
    "Application protocols",
    "Same host only",
)
USERS = (LAB_USER, "root", GRADED_USER)  # the graded user: a submission's, confined (socklab.commands)
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
NAME_RULE = "use 1-31 lowercase letters, digits and '-', starting with a letter"
FILES_LIMIT = 64 * 2**20  # bytes that one files entry may hold (a file, or a folder and all it contains)


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
    ipv6: bool = key("dual-stack (true) or IPv4 only (false); left out, dual-stack only if the scenario may use IPv6 "
                     "on it (an IPv6 or link-local reference to it, an IPv6 address written out, a host name resolved "
                     "in any family, IPv6 named in a command or the try text, files or an image of its own), "
                     "IPv4 only otherwise, which starts faster (a Network made in Python: dual-stack)", True,
                     example="false", default_text="where used")
    subnet4: ipaddress.IPv4Network | None = key(
        "the network's IPv4 subnet (default: one allocated so that labs never collide)", None, name="subnet",
        takes=str, parse=_subnet(IPV4_POOL, "subnet"), example='"198.18.7.0/24"')
    subnet6: ipaddress.IPv6Network | None = key(
        "the network's IPv6 subnet (default: allocated)", None, takes=str,
        parse=_subnet(IPV6_POOL, "subnet6"), example='"fd50:c1ab:0:7::/64"')
    conditions: LinkConditions = key("link conditions", default_factory=LinkConditions, flatten=True)


@dataclass(frozen=True)
class FileCopy:
    """A file or folder of yours, put on a host at start, through the engine (an archive, not a bind mount)."""

    target: str  # an absolute path on the host
    source: Path | bytes  # on this machine (relative: to the scenario file's folder), or one file's content
    read_only: bool = False
    user: str = LAB_USER  # who owns it on the host (a graded submission's files belong to the graded user)


def _files(table: dict[str, Any]) -> tuple[FileCopy, ...]:
    """``{ "/lab/app" = "app/" }``, or ``{ "/lab/app" = { from = "app/", read_only = true } }``."""
    copies = []
    for target, value in table.items():
        if not target.startswith("/"):
            raise Invalid(f"{target!r} is not an absolute path on the host", 'write it as "/lab/NAME"')
        if isinstance(value, dict):
            unknown = set(value) - {"from", "read_only"}
            if unknown or not isinstance(value.get("from"), str) or not isinstance(value.get("read_only", False),
                                                                                    bool):
                raise Invalid(f"{target}: {value!r} is not a copy",
                              'write "/lab/app" = "app/" or "/lab/app" = { from = "app/", read_only = true }')
            copies.append(FileCopy(target, Path(value["from"]), value.get("read_only", False)))
        elif isinstance(value, str):
            copies.append(FileCopy(target, Path(value)))
        else:
            raise Invalid(f"{target}: must name a file or folder, not {type(value).__name__}",
                          'write "/lab/app" = "app/" (a path relative to the scenario file)')
    return tuple(copies)


PLACE_PATTERN = r"apart|together|[A-Za-z0-9][A-Za-z0-9_.-]*=[^\s=]*"  # a node label as KEY=VALUE
SYSCTL_PATTERN = re.compile(r"net(\.[A-Za-z0-9_-]+)+")


def _sysctls(table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``{ "net.core.somaxconn" = 8 }``: settings of the host's own network namespace, as text for the engine.

    Only ``net.*`` settings belong to a network namespace; the engine refuses
    the others (they would change the whole machine).
    """
    settings = []
    for name, value in table.items():
        if not SYSCTL_PATTERN.fullmatch(name):
            raise Invalid(f"{name!r} is not a setting of a host's own network namespace",
                          'name one under net., as sysctl -a writes it: "net.core.somaxconn" = 8')
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Invalid(f"{name}: {value!r} is not a setting's value", f'write "{name}" = 1 or "{name}" = "1"')
        settings.append((name, str(value)))
    return tuple(settings)


@dataclass(frozen=True)
class Image:
    """A host's own image: one already on the engine, or one built from a folder with a Dockerfile."""

    name: str = ""
    build: Path | None = None  # relative to the scenario file's folder; built and cached by content digest

    def __str__(self) -> str:
        return self.name or f"built from {self.build}"


def _image(raw: str | dict[str, Any]) -> Image:
    if isinstance(raw, str):
        if not raw or any(c.isspace() for c in raw):
            raise Invalid(f"{raw!r} is not an image name", 'write image = "name:tag", or image = { build = "dir" }')
        return Image(name=raw)
    if set(raw) != {"build"} or not isinstance(raw["build"], str):
        raise Invalid(f"{raw!r} is not an image to build", 'write image = { build = "folder-with-a-Dockerfile" }')
    return Image(build=Path(raw["build"]))


@dataclass(frozen=True)
class Host:
    name: str
    networks: tuple[str, ...] = key("the networks it is attached to: none, loopback only; two, multi-homed", (),
                                    declared="networks", example='["lan"]')
    setup: tuple[str, ...] = key("shell commands run as root once the host is up, before services start", (),
                                 refs="text", example='["iptables -A INPUT -p tcp --dport 65432 -j DROP"]')
    files: tuple[FileCopy, ...] = key(
        "files and folders of yours to put on it: HOST-PATH = PATH (relative to the scenario file), or "
        "HOST-PATH = { from = PATH, read_only = true }", (), takes=dict, parse=_files,
        example='{ "/lab/app" = "app/" }')
    image: Image | None = key("an image of its own: a name already on the engine, or { build = FOLDER } with a "
                              "Dockerfile (FROM the node image works with no registry)", None, takes=(str, dict),
                              parse=_image, example='"socklab-node:latest"')
    sysctls: tuple[tuple[str, str], ...] = key(
        "kernel settings of its own network namespace, set as it is made: { SETTING = VALUE }", (), takes=dict,
        parse=_sysctls, example='{ "net.core.somaxconn" = 8 }')
    place: str = key(
        "on a swarm (--backend swarm), the node it runs on: apart, on a node with no other host of the lab where "
        "there are enough; together, with the lab's other hosts placed together; LABEL=VALUE, on a node with that "
        "node label. One engine has one place for all", "apart", pattern=PLACE_PATTERN, what="a place",
        fix='write "apart", "together", or a node label as "zone=b" (set with `docker node update --label-add`)',
        example='"apart"')


@dataclass(frozen=True)
class Command:
    """A node program and its arguments, as in ``echo serve --port 65432`` (``run = "..."``)."""

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
class Argv:
    """Any program with its arguments, no shell (``run = ["python3", "server.py", "{server.lan.ipv4}"]``)."""

    words: tuple[str, ...]

    def __str__(self) -> str:
        return shlex.join(self.words)


@dataclass(frozen=True)
class ShellLine:
    """A command line for ``sh -c`` (``shell = "nc -l 7 < /lab/greeting"``)."""

    text: str

    def __str__(self) -> str:
        return self.text


Run = Command | Argv | ShellLine


def _run(raw: str | list[Any]) -> Command | Argv:
    """A text names a node program (``"echo serve ..."``); an array is any program's argv."""
    if isinstance(raw, str):
        return Command.parse(raw)
    if not raw or not all(isinstance(word, str) for word in raw):
        raise Invalid("must be an array of one or more strings", 'write run = ["python3", "server.py", "65432"]')
    return Argv(tuple(raw))


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise Invalid(f"{text!r} is not a regular expression ({exc})", "escape special characters with \\") from None
    return text


READY_DOC = ("wait until it is ready: a socket listens (tcp://ADDR:PORT, udp://ADDR:PORT, unix:///PATH, ADDR * for "
             "any), a line of its log matches (log:REGEX), or a command exits 0 (command:LINE)")


@dataclass(frozen=True)
class Service:
    """A program left running in the background on a host, e.g. a server."""

    name: str = key("what the report calls it (default: HOST-PROGRAM)", example='"echo-server"')
    host: str = key("the host it runs on", required=True, declared="hosts", example='"server"')
    command: Run = key("a program of nodes/ and its arguments (a text), or any program's argv (an array)",
                       name="run", takes=(str, list), parse=_run, refs="text",
                       example='"echo serve --bind 0.0.0.0 --port 65432"')
    ready: str | None = key(READY_DOC, None, refs="ready", example='"tcp://127.0.0.1:65432"')
    user: str = key("who runs it", LAB_USER, choices=USERS, what="a lab user", example='"root"')
    shell: str | None = key("instead of run: a command line for sh -c", None, refs="text",
                            example='"nc -lk 7000 < /lab/greeting"')
    cwd: str | None = key("the folder it runs in (default: the lab user's home, /lab)", None, refs="text",
                          example='"/lab/app"')
    env: dict[str, str] = key("environment variables to set", default_factory=dict, refs="text",
                              example='{ PYTHONUNBUFFERED = "1" }')


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
    rcvbuf: int | None = key("TCP: set SO_RCVBUF to this many bytes before connecting (Linux doubles it): a small "
                             "window, so that the echo piles up in the server's send buffer", None, low=1,
                             high=64 * 2**20, flag="--rcvbuf", example="4096")
    read_delay: float = key("TCP: pause this many seconds before each recv of the echo: a slow reader", 0.0,
                            low=0.0, high=10.0, flag="--read-delay", example="0.01")
    hold_other: bool = key("TCP: first open another connection, have it echoed, and keep it open and silent during "
                           "the attempt (a server that serves one client at a time never gets to this one)", False,
                           flag="--hold-other", example="true")
    reuse_addr: bool = key("with bind: set SO_REUSEADDR first", False, flag="--reuse-addr", example="true")
    v6only: bool | None = key("with bind on an IPv6 address: IPV6_V6ONLY on (true) or off (false)", None,
                              flag="--v6only", flag_off="--dual-stack", example="true")

    @property
    def target(self) -> str:
        return self.to or self.bind or ""


Action = Probe | Run
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
class CommandEnd:
    """What a command of your own must end with: its exit status, and what it prints."""

    exit: int = key("its exit status", 0, low=0, high=255, example="0")
    stdout: str | None = key("a regular expression its standard output must contain (Python's re.search)", None,
                             parse=_regex, takes=str, example='"Hello, world"')
    stderr: str | None = key("a regular expression its standard error must contain", None, parse=_regex, takes=str,
                             example='"refused"')

    def __str__(self) -> str:
        claims = [f"exit {self.exit}"]
        claims += [f"{name} ~ /{pattern}/" for name, pattern in (("stdout", self.stdout), ("stderr", self.stderr))
                   if pattern is not None]
        return ", ".join(claims)


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
    run: Run | None = key("instead of a probe: a node program that prints a JSON result (a text), or any "
                          "program's argv (an array)", None, takes=(str, list), parse=_run, refs="text",
                          example='"udpecho client --to {server.lan.ipv4}:7"')
    shell: str | None = key("instead of a probe: a command line for sh -c", None, refs="text",
                            example='"echo hi | nc -N {server.lan.ipv4} 7000"')
    cwd: str | None = key("the folder the command runs in (default: /lab)", None, refs="text", example='"/lab/app"')
    env: dict[str, str] = key("environment variables to set for the command", default_factory=dict, refs="text",
                              example='{ LANG = "C.UTF-8" }')
    expect: Outcome | CommandEnd = key("the outcome the attempt must end in (a word), or what a command must end with "
                                 "({ exit = 0, stdout = REGEX })", Outcome.ERROR, required=True,
                                 what="an outcome", example='"echoed"')
    evidence: tuple[Expectation, ...] = key(
        "more claims about the client's JSON result: KEY = VALUE, or KEY = [LOW, HIGH] for a number", (),
        takes=dict, refs="text", example='{ loss_ratio = [0.05, 0.4] }')
    user: str = key("who makes the attempt", LAB_USER, choices=USERS, what="a lab user", example='"root"')
    limit: float | None = key("seconds a program may take (default 120)", None, low=1.0, high=600.0, example="60")
    grades: tuple[str, ...] = key("when grading: the programs (or services) this check grades, if not those whose "
                                  "port it talks to", (), example='["echo"]')
    points: float = key("when grading: what the check is worth", 1.0, low=0.0, high=1000.0, example="2")

    @property
    def action(self) -> Action:
        return self.run or self.probe or Probe()

    @property
    def judged_by_exit(self) -> bool:
        """A command of the user's own, judged by its exit status and output rather than a JSON result."""
        return isinstance(self.expect, CommandEnd)


@dataclass(frozen=True)
class Scenario:
    name: str = key("the scenario's name: the file's name without .toml", required=True, section="scenario",
                    pattern=NAME_PATTERN, what="a valid name", fix=NAME_RULE, example='"tcp-echo"')
    title: str = key("what it shows, in one line", required=True, section="scenario",
                     example='"What the scenario shows, in one line"')
    topic: str = key("where it sits in a catalogue: one of socklab's topics, or one of your own", required=True,
                     section="scenario", example=f'"{TOPICS[0]}"')
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
    files: tuple[FileCopy, ...] = key("files and folders of yours to put on every host (as in [hosts.NAME])", (),
                                      section="scenario", takes=dict, parse=_files,
                                      example='{ "/lab/app" = "app/" }')
