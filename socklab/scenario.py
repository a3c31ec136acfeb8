"""Read a scenario file into the model, or say exactly what is wrong with it.

Every problem names the file, the line where it can be found, the key, what
is wrong and how to fix it; all problems of a file are reported at once, and
nothing is created before a file has passed. Validation covers the topology
too: a reference such as ``{server.lan.ipv6}`` must name a declared host, on
a network it is attached to, that has IPv6.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nodes.endpoints import parse_endpoint
from nodes.outcomes import Outcome
from socklab import programs, refs
from socklab.constants import IPV4_POOL, IPV6_POOL, LAB_USER
from socklab.errors import Problem, ScenarioError
from socklab.model import Check, Command, Expectation, Host, LinkConditions, Network, Probe, Scenario, Service

TOPICS = (
    "Binding and interfaces",
    "IPv4 and IPv6",
    "TCP versus UDP",
    "Failures a client sees",
    "Servers for many clients",
    "Same host only",
)
USERS = (LAB_USER, "root")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
NAME_RULE = "use 1-31 lowercase letters, digits and '-', starting with a letter"
KeyPath = tuple[str | int, ...]


def load(path: Path | str) -> Scenario:
    """Parse and validate one scenario file; raise ScenarioError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(path, "", "no such file", "check the path, or run `invoke list`")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(path, "", f"cannot be read: {exc}", "save it as UTF-8 text")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(
            [Problem(path, "", f"is not valid TOML: {exc}", "correct the syntax at that line and column")]
        ) from None
    reader = _Reader(path, text)
    scenario = reader.scenario(data)
    if reader.problems:
        raise ScenarioError(reader.problems)
    return scenario


def load_all(paths: Iterable[Path]) -> list[Scenario]:
    """Load several files, reporting the problems of all of them together."""
    scenarios, problems = [], []
    for path in paths:
        try:
            scenarios.append(load(path))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def suggest(value: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=1)
    listed = ", ".join(choices)
    return f"did you mean {close[0]!r}? (one of: {listed})" if close else f"use one of: {listed}"


_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
               dict: "a table"}


def _declare(table: str, value: str, choices: Iterable[str]) -> str:
    """The fix for a name nobody declared: declare it, or pick a declared one if there are any."""
    choices = list(choices)
    return f"declare [{table}.{value}]" + (f" or {suggest(value, choices)}" if choices else "")


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Table:
    """A TOML table being read: typed getters that record problems, not raise."""

    def __init__(self, reader: _Reader, data: Any, keypath: KeyPath) -> None:
        self.reader, self.keypath = reader, keypath
        if not isinstance(data, dict):
            reader.problem(keypath, f"must be a table, not {_type_name(data)}", "see the scenario format in README.md")
            data = {}
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any = None, *, required: bool = False,
            example: str = "") -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                self.reader.problem(self.keypath + (key,), "is missing", f"add {key} = {example or '...'}")
            return default
        value = self.data[key]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(dict.fromkeys(_TYPE_NAMES[k] for k in kinds))
            self.reader.problem(self.keypath + (key,), f"must be {wanted}, not {_type_name(value)}",
                                f"write it as {example}" if example else "")
            return default
        return value

    def strings(self, key: str, *, example: str) -> tuple[str, ...]:
        values = self.get(key, list, [], example=example)
        if not all(isinstance(v, str) for v in values):
            self.reader.problem(self.keypath + (key,), "must be an array of strings", f"write it as {example}")
            return ()
        return tuple(values)

    def number(self, key: str, default: float, *, low: float, high: float, example: str,
               high_inclusive: bool = True) -> float:
        value = self.get(key, (int, float), default, example=example)
        too_high = value > high if high_inclusive else value >= high
        if value < low or too_high:
            bound = "<=" if high_inclusive else "<"
            self.reader.problem(self.keypath + (key,), f"{value} is out of range",
                                f"use a value with {low} <= {key} {bound} {high}")
            return default
        return value

    def table(self, key: str) -> _Table:
        return _Table(self.reader, self.get(key, dict, {}), self.keypath + (key,))

    def done(self) -> None:
        """Every key the reader did not ask for is a typo or a misplaced key."""
        for key in self.data:
            if key not in self.used:
                self.reader.problem(self.keypath + (key,), "is not a known key",
                                    f"remove it, or {suggest(key, sorted(self.used))}")


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()
        self.problems: list[Problem] = []
        self.pending_setup: list[tuple[KeyPath, tuple[str, ...]]] = []

    # -- reporting ---------------------------------------------------------

    def problem(self, keypath: KeyPath, problem: str, fix: str = "") -> None:
        self.problems.append(Problem(self.where(keypath), _render_keypath(keypath), problem, fix))

    def where(self, keypath: KeyPath) -> str:
        line = _locate(self.lines, keypath)
        return f"{self.path}:{line}" if line else str(self.path)

    # -- reading -----------------------------------------------------------

    def scenario(self, data: dict[str, Any]) -> Scenario:
        top = _Table(self, data, ())
        meta = top.table("scenario")
        if "scenario" not in data:
            self.problem(("scenario",), "is missing", 'start the file with [scenario] and name = "..."')
        name = meta.get("name", str, "", required=True, example=f'"{self.path.stem}"')
        if name and not NAME.match(name):
            self.problem(("scenario", "name"), f"{name!r} is not a valid name", NAME_RULE)
        elif name and name != self.path.stem:
            self.problem(("scenario", "name"), f"{name!r} differs from the file name",
                         f"rename the file to {name}.toml or set name = {self.path.stem!r}")
        title = meta.get("title", str, "", required=True, example='"What the scenario shows, in one line"')
        topic = meta.get("topic", str, "", required=True, example=f'"{TOPICS[0]}"')
        if topic and topic not in TOPICS:
            self.problem(("scenario", "topic"), f"{topic!r} is not a topic of the catalogue", suggest(topic, TOPICS))
        explains = meta.get("explains", str, "", required=True,
                            example='"""What happens, and why the kernel does it."""')
        try_next = meta.get("try", str, "", example='"""What to change and watch next."""')
        parallel_checks = meta.get("parallel_checks", bool, False, example="true")
        meta.done()

        networks = {n: self.network(n, raw) for n, raw in top.table("networks").data.items()}
        hosts = {h: self.host(h, raw, networks) for h, raw in top.table("hosts").data.items()}
        for keypath, lines in self.pending_setup:  # references need every host declared first
            for line in lines:
                self.references(keypath, line, hosts, networks)
        if not hosts:
            self.problem(("hosts",), "declares no host", 'add at least one [hosts.NAME] table')
        self.check_subnets(networks)
        services = tuple(self.service(i, raw, hosts, networks) for i, raw in enumerate(self.array(top, "services")))
        checks = tuple(self.check(i, raw, hosts, networks) for i, raw in enumerate(self.array(top, "checks")))
        if not checks:
            self.problem(("checks",), "declares no check", "add a [[checks]] with a probe and an expected outcome")
        self.unique("services", [s.name for s in services], "give each service its own name")
        self.unique("checks", [c.name for c in checks], "give each check its own name")
        top.done()
        return Scenario(name=name, title=title, topic=topic, explains=explains.strip(), try_next=try_next.strip(),
                        path=self.path, networks=networks, hosts=hosts, services=services, checks=checks,
                        parallel_checks=parallel_checks)

    def array(self, top: _Table, key: str) -> list[Any]:
        return top.get(key, list, [], example=f"[[{key}]] tables")

    def network(self, name: str, raw: Any) -> Network:
        keypath: KeyPath = ("networks", name)
        self.valid_name(keypath, name, "network")
        table = _Table(self, raw, keypath)
        ipv6 = table.get("ipv6", bool, True, example="false")
        subnet4 = self.subnet(table, "subnet", IPV4_POOL, ipaddress.IPv4Network)
        subnet6 = self.subnet(table, "subnet6", IPV6_POOL, ipaddress.IPv6Network)
        if subnet6 and not ipv6:
            self.problem(keypath + ("subnet6",), "is set on a network without IPv6", "remove subnet6 or ipv6 = false")
        conditions = LinkConditions(
            loss=table.number("loss", 0.0, low=0.0, high=1.0, high_inclusive=False, example="0.2"),
            delay_ms=table.number("delay_ms", 0.0, low=0.0, high=10_000.0, example="50"),
            rate=table.get("rate", str, None, example='"10mbit"'),
        )
        if conditions.rate and not re.fullmatch(r"\d+(\.\d+)?(bit|kbit|mbit|gbit)", conditions.rate):
            self.problem(keypath + ("rate",), f"{conditions.rate!r} is not a rate", 'write it as "10mbit" or "512kbit"')
        table.done()
        return Network(name, ipv6=ipv6, subnet4=subnet4, subnet6=subnet6, conditions=conditions)

    def subnet(self, table: _Table, key: str, pool: Any, kind: type) -> Any:
        text = table.get(key, str, None, example=f'"{next(pool.subnets(new_prefix=pool.prefixlen + 8))}"')
        if text is None:
            return None
        try:
            subnet = kind(text)
        except ValueError as exc:
            self.problem(table.keypath + (key,), f"{text!r} is not a subnet ({exc})", "write it as ADDRESS/PREFIX")
            return None
        if not subnet.subnet_of(pool):
            self.problem(table.keypath + (key,), f"{subnet} is outside the lab pool {pool}",
                         f"pick a subnet inside {pool}, or leave {key} out to have one allocated")
            return None
        return subnet

    def check_subnets(self, networks: dict[str, Network]) -> None:
        declared = [(n.name, s) for n in networks.values() for s in (n.subnet4, n.subnet6) if s]
        for i, (name, subnet) in enumerate(declared):
            for other, other_subnet in declared[:i]:
                if subnet.version == other_subnet.version and subnet.overlaps(other_subnet):
                    key = "subnet" if subnet.version == 4 else "subnet6"
                    self.problem(("networks", name, key), f"{subnet} overlaps {other_subnet} of network {other!r}",
                                 "give each network its own subnet")

    def host(self, name: str, raw: Any, networks: dict[str, Network]) -> Host:
        keypath: KeyPath = ("hosts", name)
        self.valid_name(keypath, name, "host")
        table = _Table(self, raw, keypath)
        attached = table.strings("networks", example='["lan"]')
        for net in attached:
            if net not in networks:
                self.problem(keypath + ("networks",), f"network {net!r} is not declared",
                             _declare("networks", net, networks))
        if len(set(attached)) != len(attached):
            self.problem(keypath + ("networks",), "lists a network twice", "list each network once")
        setup = table.strings("setup", example='["iptables -A INPUT -p tcp --dport 65432 -j DROP"]')
        table.done()
        self.pending_setup.append((keypath + ("setup",), setup))
        return Host(name, networks=attached, setup=setup)

    def service(self, index: int, raw: Any, hosts: dict[str, Host], networks: dict[str, Network]) -> Service:
        keypath: KeyPath = ("services", index)
        table = _Table(self, raw, keypath)
        host = self.host_ref(table, hosts)
        command = self.command(table, "run", hosts, networks, required=True)
        default_name = f"{host}-{command.program}" if command else f"service-{index + 1}"
        name = table.get("name", str, default_name, example='"echo-server"')
        ready = table.get("ready", str, None, example='"tcp://127.0.0.1:65432"')
        if ready is not None:
            self.ready_url(keypath + ("ready",), ready, hosts, networks)
        user = self.user(table)
        table.done()
        return Service(name=name, host=host, command=command or Command("?"), ready=ready, user=user)

    def check(self, index: int, raw: Any, hosts: dict[str, Host], networks: dict[str, Network]) -> Check:
        keypath: KeyPath = ("checks", index)
        table = _Table(self, raw, keypath)
        name = table.get("name", str, f"check {index + 1}", required=True, example='"another host is refused"')
        from_hosts = self.check_hosts(table, hosts)
        action: Probe | Command | None = None
        if "probe" in table.data and "run" in table.data:
            self.problem(keypath, "has both probe and run", "keep one: a check makes a single attempt")
        if "run" in table.data:
            action = self.command(table, "run", hosts, networks, required=True)
        else:
            action = self.probe(table, hosts, networks)
        expect_text = table.get("expect", str, "", required=True, example='"echoed"')
        try:
            expect = Outcome(expect_text)
        except ValueError:
            expect = Outcome.ERROR
            if expect_text:
                self.problem(keypath + ("expect",), f"{expect_text!r} is not an outcome",
                             suggest(expect_text, [o.value for o in Outcome]))
        evidence = self.evidence(table.table("evidence"), hosts, networks)
        user = self.user(table)
        limit = table.number("limit", 0.0, low=1.0, high=600.0, example="60") if "limit" in table.data else None
        table.used.add("limit")
        table.done()
        return Check(name=name, hosts=from_hosts, action=action or Probe(), expect=expect, evidence=evidence,
                     user=user, limit=limit)

    def check_hosts(self, table: _Table, hosts: dict[str, Host]) -> tuple[str, ...]:
        """``host = "client"``, or ``hosts = [...]`` for the same attempt from several hosts at once."""
        if "hosts" not in table.data:
            return (self.host_ref(table, hosts),)
        if "host" in table.data:
            self.problem(table.keypath, "has both host and hosts", "keep one of them")
        names = table.strings("hosts", example='["client1", "client2"]')
        if not names:
            self.problem(table.keypath + ("hosts",), "lists no host", 'name at least one, as in ["client"]')
        for host in names:
            if host not in hosts:
                self.problem(table.keypath + ("hosts",), f"host {host!r} is not declared",
                             _declare("hosts", host, hosts))
        if len(set(names)) != len(names):
            self.problem(table.keypath + ("hosts",), "lists a host twice", "list each host once")
        return names

    def evidence(self, table: _Table, hosts: dict[str, Host], networks: dict[str, Network]) -> tuple[Expectation, ...]:
        """``evidence = { loss_ratio = [0.05, 0.4], seen_as = "::ffff:{client.lan.ipv4}" }``."""
        claims = []
        for key, value in table.data.items():
            table.used.add(key)
            keypath = table.keypath + (key,)
            if isinstance(value, list):
                numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
                if len(value) != 2 or len(numbers) != 2 or numbers[0] > numbers[1]:
                    self.problem(keypath, f"{value!r} is not a range", "write [LOW, HIGH] with LOW <= HIGH")
                    continue
                claims.append(Expectation(key, low=numbers[0], high=numbers[1]))
            elif isinstance(value, str | int | float | bool):
                if isinstance(value, str):
                    self.references(keypath, value, hosts, networks)
                claims.append(Expectation(key, equals=value))
            else:
                self.problem(keypath, f"must be a value or a [LOW, HIGH] range, not {_type_name(value)}",
                             "write key = VALUE or key = [LOW, HIGH]")
        return tuple(claims)

    def probe(self, parent: _Table, hosts: dict[str, Host], networks: dict[str, Network]) -> Probe | None:
        if "probe" not in parent.data:
            self.problem(parent.keypath + ("probe",), "is missing",
                         'add probe = { proto = "tcp", to = "{server.lan.ipv4}:65432" } (or run = "...")')
            parent.used.add("probe")
            return None
        table = parent.table("probe")
        proto = table.get("proto", str, "tcp", example='"udp"')
        if proto not in ("tcp", "udp"):
            self.problem(table.keypath + ("proto",), f"{proto!r} is not a protocol", 'use "tcp" or "udp"')
        to = table.get("to", str, None, example='"{server.lan.ipv4}:65432"')
        bind = table.get("bind", str, None, example='"0.0.0.0:65432"')
        if (to is None) == (bind is None):
            self.problem(table.keypath, "needs exactly one of 'to' and 'bind'",
                         'connect with to = "HOST:PORT", or only bind with bind = "ADDR:PORT"')
        for key, value in (("to", to), ("bind", bind)):
            if value is not None:
                self.endpoint(table.keypath + (key,), value, hosts, networks)
        family = table.get("family", str, "any", example='"ipv6"')
        if family not in ("any", "ipv4", "ipv6"):
            self.problem(table.keypath + ("family",), f"{family!r} is not a family", 'use "any", "ipv4" or "ipv6"')
        send = table.get("send", str, None, example='"Hello, world"')
        size = table.get("size", int, None, example="1048576")
        if size is not None and send is not None:
            self.problem(table.keypath, "has both send and size", "send either a text or SIZE pattern bytes")
        if size is not None and not 1 <= size <= 64 * 2**20:
            self.problem(table.keypath + ("size",), f"{size} is out of range", "use 1 to 67108864 bytes")
        source = table.get("from", str, None, example='"{client.lan.ipv4}"')
        for key, value in (("send", send), ("from", source)):
            if value is not None:
                self.references(table.keypath + (key,), value, hosts, networks)
        probe = Probe(
            proto=proto, to=to, bind=bind, send=send, size=size, source=source, family=family,
            timeout=table.number("timeout", 2.0, low=0.05, high=60.0, example="2.0"),
            connected=table.get("connected", bool, False, example="true"),
            bufsize=self.bufsize(table),
            reuse_addr=table.get("reuse_addr", bool, False, example="true"),
            v6only=table.get("v6only", bool, None, example="true"),
        )
        table.done()
        return probe

    def bufsize(self, table: _Table) -> int | None:
        if "bufsize" not in table.data:
            table.used.add("bufsize")
            return None
        return int(table.number("bufsize", 65535, low=1, high=65535, example="8"))

    # -- shared checks -----------------------------------------------------

    def valid_name(self, keypath: KeyPath, name: str, what: str) -> None:
        if not NAME.match(name):
            self.problem(keypath, f"{name!r} is not a valid {what} name", NAME_RULE)

    def host_ref(self, table: _Table, hosts: dict[str, Host]) -> str:
        host = table.get("host", str, "", required=True, example=f'"{next(iter(hosts), "server")}"')
        if host and host not in hosts:
            self.problem(table.keypath + ("host",), f"host {host!r} is not declared", _declare("hosts", host, hosts))
        return host

    def user(self, table: _Table) -> str:
        user = table.get("user", str, LAB_USER, example='"root"')
        if user not in USERS:
            self.problem(table.keypath + ("user",), f"{user!r} is not a lab user", suggest(user, USERS))
        return user

    def command(self, table: _Table, key: str, hosts: dict[str, Host], networks: dict[str, Network],
                *, required: bool) -> Command | None:
        text = table.get(key, str, None, required=required, example='"echo serve --bind 0.0.0.0 --port 65432"')
        if not text:
            return None
        keypath = table.keypath + (key,)
        try:
            command = Command.parse(text)
        except ValueError as exc:
            self.problem(keypath, f"cannot be split into arguments ({exc})", "balance the quotes")
            return None
        known = programs.available()
        if command.program not in known:
            self.problem(keypath, f"{command.program!r} is not a node program", suggest(command.program, known))
        for flag, value in zip(command.args, command.args[1:], strict=False):
            if flag == "--port" and not _is_port(value):
                self.problem(keypath, f"port {value!r} is out of range", "use a port from 0 to 65535")
        self.references(keypath, text, hosts, networks)
        return command

    def endpoint(self, keypath: KeyPath, text: str, hosts: dict[str, Host], networks: dict[str, Network]) -> None:
        if not self.references(keypath, text, hosts, networks):
            return
        placeholder = refs.render(text, _placeholder)
        try:
            parse_endpoint(placeholder)
        except ValueError as exc:
            self.problem(keypath, str(exc), "write HOST:PORT, with IPv6 addresses as [ADDRESS]:PORT")

    def ready_url(self, keypath: KeyPath, url: str, hosts: dict[str, Host], networks: dict[str, Network]) -> None:
        if not self.references(keypath, url, hosts, networks):
            return
        fix = 'write "tcp://ADDR:PORT", "udp://ADDR:PORT" or "unix:///PATH", with IPv6 addresses in brackets'
        try:
            parts = urlsplit(refs.render(url, _placeholder))
        except ValueError as exc:
            self.problem(keypath, f"{url!r} is not a readiness URL ({exc})", fix)
            return
        if parts.scheme not in ("tcp", "udp", "unix"):
            self.problem(keypath, f"{url!r} is not a readiness URL", fix)
            return
        try:
            port = parts.port
        except ValueError:
            self.problem(keypath, f"{url!r} has a port out of range", "use a port from 0 to 65535")
            return
        if parts.scheme != "unix" and not port:
            self.problem(keypath, f"{url!r} has no port", fix)

    def references(self, keypath: KeyPath, text: str, hosts: dict[str, Host], networks: dict[str, Network]) -> bool:
        """Check every {host.network.attribute} in ``text``; False if one is wrong."""
        fine = True
        for ref in refs.find_refs(text):
            problem, fix = _reference_problem(ref, hosts, networks)
            if problem:
                self.problem(keypath, problem, fix)
                fine = False
        return fine

    def unique(self, key: str, names: list[str], fix: str) -> None:
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                self.problem((key, index, "name"), f"{name!r} is used twice", fix)
            seen.add(name)


def _reference_problem(ref: refs.Ref | str, hosts: dict[str, Host], networks: dict[str, Network]) -> tuple[str, str]:
    if isinstance(ref, str):
        return (f"{ref} is not a reference",
                f"write {{HOST.NETWORK.ATTRIBUTE}} with ATTRIBUTE one of {', '.join(refs.ATTRIBUTES)}, "
                f"or {{NETWORK.ATTRIBUTE}} with ATTRIBUTE one of {', '.join(refs.NETWORK_ATTRIBUTES)}")
    if ref.host is None:
        return _network_reference_problem(ref, hosts, networks)
    if ref.host not in hosts:
        return f"{ref} names host {ref.host!r}, which is not declared", _declare("hosts", ref.host, hosts)
    if ref.network not in networks:
        return (f"{ref} names network {ref.network!r}, which is not declared",
                _declare("networks", ref.network, networks))
    if ref.network not in hosts[ref.host].networks:
        on = ", ".join(hosts[ref.host].networks) or "no network"
        return (f"{ref}: host {ref.host!r} is not on network {ref.network!r} (it is on {on})",
                f"add {ref.network!r} to hosts.{ref.host}.networks, or refer to a network it is on")
    if ref.attribute in refs.NEEDS_IPV6 and not networks[ref.network].ipv6:
        return (f"{ref}: network {ref.network!r} has no IPv6 (ipv6 = false)",
                f"remove ipv6 = false from [networks.{ref.network}], or use {{{ref.host}.{ref.network}.ipv4}}")
    return "", ""


def _network_reference_problem(ref: refs.Ref, hosts: dict[str, Host], networks: dict[str, Network]
                               ) -> tuple[str, str]:
    if ref.network not in networks:
        return (f"{ref} names network {ref.network!r}, which is not declared",
                _declare("networks", ref.network, networks))
    if not any(ref.network in host.networks for host in hosts.values()):
        return (f"{ref}: no host is on network {ref.network!r}, so it has no subnet yet",
                f"attach a host to {ref.network!r}")
    if ref.attribute in refs.NEEDS_IPV6 and not networks[ref.network].ipv6:
        return (f"{ref}: network {ref.network!r} has no IPv6 (ipv6 = false)",
                f"remove ipv6 = false from [networks.{ref.network}], or use the IPv4 attribute")
    return "", ""


def _placeholder(ref: refs.Ref) -> str:
    """An address of the reference's family, to check the shape of a text before any lab exists."""
    return "192.0.2.1" if ref.attribute.endswith("4") else "2001:db8::1"


def _is_port(text: str) -> bool:
    return text.isdigit() and 0 <= int(text) <= 65535


def _render_keypath(keypath: KeyPath) -> str:
    """``("checks", 1, "expect")`` -> ``checks[2].expect``: entries count from 1, like lines."""
    out = ""
    for part in keypath:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_HEADER = re.compile(r"^\[\s*([^\[\]]+?)\s*\]")
_ARRAY_HEADER = re.compile(r"^\[\[\s*([^\[\]]+?)\s*\]\]")


def _headers(lines: list[str]) -> dict[tuple[str, int | None], int]:
    """Line number of every ``[table]`` and of the N-th ``[[array]]`` entry."""
    found: dict[tuple[str, int | None], int] = {}
    counts: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if match := _ARRAY_HEADER.match(line.strip()):
            name = match.group(1)
            found[(name, counts.get(name, 0))] = number
            counts[name] = counts.get(name, 0) + 1
        elif match := _HEADER.match(line.strip()):
            found[(match.group(1), None)] = number
    return found


def _locate(lines: list[str], keypath: KeyPath) -> int | None:
    """Best-effort line number of a key, so that an editor can jump to it.

    tomllib keeps no positions, so this finds the deepest header on the key's
    path (``[hosts.server]``, or the N-th ``[[checks]]``), then the first line
    of that section assigning the next key.
    """
    headers = _headers(lines)
    start, rest = 0, keypath
    for depth in range(len(keypath), 0, -1):
        head = keypath[:depth]
        index = head[-1] if isinstance(head[-1], int) else None
        table = ".".join(str(p) for p in (head[:-1] if index is not None else head))
        if (table, index) in headers:
            start, rest = headers[(table, index)], keypath[depth:]
            break
    key = next((str(p) for p in rest if isinstance(p, str)), None)
    if key is not None:
        assignment = re.compile(rf'^"?{re.escape(key)}"?\s*=')
        for number in range(start + 1, len(lines) + 1):
            line = lines[number - 1].strip()
            if line.startswith("["):
                break
            if assignment.match(line):
                return number
    return start or None

