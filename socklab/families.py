"""Which networks of a scenario need IPv6: the others are made IPv4 only.

Why: a dual-stack network costs time at every start (measured on this
engine: five containers started at once took 0.9 s on an IPv4 bridge, 1.15 s
dual-stack; a 2-host socklab lab up and down 1.02 s IPv4-only against
1.14 s dual-stack, ``invoke bench --only lifecycle``), and most lessons
never touch IPv6 on their network. Every host keeps ``::1`` either way.
So a network that a scenario file leaves ``ipv6`` out of gets IPv6 only
when something in the scenario may use it there:

- a reference to an IPv6 attribute of the network (``refs.NEEDS_IPV6``:
  ``{server.lan.ipv6}``, ``{server.lan.link_local}``, ``{lan.subnet6}`` ...),
  or a ``subnet6`` of its own;
- a host name that something resolves in any family (or IPv6): the name's
  host's networks, where the engine's resolver would answer AAAA too
  (``--to server:65432``, ``probe = { to = "server:65432" }``; ``localhost``
  is loopback and counts for no network);

and every network of the scenario gets IPv6 when the scenario shows any
sign of IPv6 that cannot be tied to one network: an IPv6 literal anywhere
(``::``, ``::1``, ``[::]:65432``, ``ff15::1:2:3``, ``::ffff:...``), a word
of IPv6 in a command, a setting or the ``try`` text (``ipv6``, ``inet6``,
``-6``, ``AAAA``, ``v6only``, ``dual-stack`` ...), a probe with
``family = "ipv6"`` or a ``v6only`` choice, or programs nobody can read
here (files of the user's own, an image of a host's own): a program of
one's own may use IPv6 in ways no text shows. The ``try`` text counts
because a student types its commands into the lab the scenario makes.

The rules are deliberately coarse and err towards IPv6: a scenario that
keeps IPv6 it did not need only starts a little slower, while one that
loses IPv6 it needed fails its checks. An explicit ``ipv6 = true`` or
``ipv6 = false`` always wins. Only scenario files are decided here
(``socklab.scenario`` calls ``lean``); a ``Network`` made in Python (the
API, the pytest plugin's inline labs) keeps the model's default,
dual-stack, since the caller's own code may use IPv6 in ways no scenario
text shows.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from nodes.endpoints import parse_endpoint
from socklab import programs, refs
from socklab.model import Argv, Command, CommandEnd, Probe, Run, Scenario, ShellLine

EVERY = "*"  # a reason that holds for every network of the scenario

# Words that show a text means IPv6 (case-insensitive): a family, a tool, an
# option, a record type. References are taken out of a text before this is
# applied, so {server.lan.ipv6} counts for its own network only.
_WORDS = re.compile(r"ipv6|inet6|icmp6|icmpv6|ip6tables|ping6|ip6-|v6only|dual-?stack|\baaaa\b|"
                    r"(?<![\w-])-[a-z]*6[a-z]*(?![\w-])|--family[= ]+6\b", re.IGNORECASE)
# Something shaped like an IPv6 address (hex groups with two or more colons), to be confirmed by ipaddress.
_LITERAL = re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
_IPV4_PLACEHOLDER = "192.0.2.1"  # what an IPv4 reference stands for while a text is scanned for IPv6


def needs(scenario: Scenario) -> dict[str, str]:
    """Each network that may need IPv6, with the first reason found (``EVERY`` stands for all of them)."""
    found: dict[str, str] = {}
    for network, reason in _reasons(scenario):
        for name in scenario.networks if network == EVERY else (network,):
            found.setdefault(name, reason)
    return {name: found[name] for name in scenario.networks if name in found}


def explicit(data: Mapping[str, Any]) -> frozenset[str]:
    """The networks whose own table in the file sets ``ipv6`` (either way): those the file decides."""
    networks = data.get("networks")
    if not isinstance(networks, dict):
        return frozenset()
    return frozenset(name for name, table in networks.items() if isinstance(table, dict) and "ipv6" in table)


def lean(scenario: Scenario, decided: Collection[str]) -> Scenario:
    """The scenario with IPv6 off on each network that does not need it, unless the file decided (``decided``)."""
    needed = needs(scenario)
    networks = {name: net if name in decided or name in needed or not net.ipv6 else dataclasses.replace(net,
                                                                                                         ipv6=False)
                for name, net in scenario.networks.items()}
    if networks == scenario.networks:
        return scenario
    return dataclasses.replace(scenario, networks=networks)


# -- where the reasons are found ------------------------------------------------

def _reasons(scenario: Scenario) -> Iterator[tuple[str, str]]:
    """(network or EVERY, why) for every sign of IPv6 in the scenario."""
    for network in scenario.networks.values():
        if network.subnet6 is not None:
            yield network.name, f"networks.{network.name}.subnet6 is set"
    if scenario.files or any(host.files or host.image for host in scenario.hosts.values()):
        yield EVERY, "programs of its own that cannot be read here (files, an image)"
    for where, text in _texts(scenario):
        yield from _text_reasons(where, text)
    for where, run in _runs(scenario):
        yield from _name_reasons(scenario, where, run)
    for index, check in enumerate(scenario.checks, 1):
        if isinstance(check.action, Probe):
            yield from _probe_reasons(scenario, f"checks[{index}].probe", check.action)
    for index, service in enumerate(scenario.services, 1):
        if service.ready and "://" in service.ready:
            host = service.ready.split("://", 1)[1].rpartition(":")[0]
            yield from _name(scenario, host, f"services[{index}].ready")
    yield from _try_names(scenario)


def _texts(scenario: Scenario) -> Iterator[tuple[str, str]]:
    """Every text of the scenario that a program, a setting or a student acts on, with where it is."""
    for host in scenario.hosts.values():
        for line in host.setup:
            yield f"hosts.{host.name}.setup", line
        for name, value in host.sysctls:
            yield f"hosts.{host.name}.sysctls", f"{name} = {value}"
    for index, service in enumerate(scenario.services, 1):
        where = f"services[{index}]"
        yield where, str(service.command)
        yield from ((where, text) for text in (service.ready, service.cwd, *service.env.values()) if text)
    for index, check in enumerate(scenario.checks, 1):
        where, action = f"checks[{index}]", check.action
        if isinstance(action, Probe):
            yield from ((where, text) for text in (action.to, action.bind, action.source, action.send) if text)
        else:
            yield where, str(action)
        yield from ((where, text) for text in (check.cwd, *check.env.values()) if text)
        yield from ((where, str(claim.equals)) for claim in check.evidence if isinstance(claim.equals, str))
        if isinstance(check.expect, CommandEnd):
            yield from ((where, text) for text in (check.expect.stdout, check.expect.stderr) if text)
    yield "try", scenario.try_next


def _text_reasons(where: str, text: str) -> Iterator[tuple[str, str]]:
    for ref in refs.find_refs(text):
        if isinstance(ref, refs.Ref) and ref.attribute in refs.NEEDS_IPV6:
            yield ref.network, f"{where}: {ref}"
    plain = refs.render(text, lambda ref: "REF" if ref.attribute in refs.NEEDS_IPV6 else _IPV4_PLACEHOLDER)
    if word := _WORDS.search(plain):
        yield EVERY, f"{where}: {word.group(0)!r}"
    elif literal := _ipv6_literal(plain):
        yield EVERY, f"{where}: {literal!r}"


def _ipv6_literal(text: str) -> str | None:
    """The first IPv6 address written out in ``text`` (any ``::`` counts: it is one, or part of one)."""
    if "::" in text:
        return "::"
    for match in _LITERAL.finditer(text):
        try:
            ipaddress.IPv6Address(match.group(0))
        except ValueError:
            continue
        return match.group(0)
    return None


# -- names that are resolved ------------------------------------------------------

def _runs(scenario: Scenario) -> Iterator[tuple[str, Run]]:
    for index, service in enumerate(scenario.services, 1):
        yield f"services[{index}]", service.command
    for index, check in enumerate(scenario.checks, 1):
        if not isinstance(check.action, Probe):
            yield f"checks[{index}]", check.action


def _name_reasons(scenario: Scenario, where: str, run: Run) -> Iterator[tuple[str, str]]:
    """Host names a program is given: as an argument, or as the host of HOST:PORT or a URL."""
    if isinstance(run, Command):
        words = list(run.args)
        if "--family" in words and words[words.index("--family") + 1:][:1] == ["ipv4"] or "--family=ipv4" in words:
            return  # a name resolved in IPv4 only
        if words and not words[0].startswith("-"):
            words = words[1:]  # the program's mode (``client``, ``serve``), not a host
    elif isinstance(run, Argv):
        words = list(run.words[1:])
    else:
        words = _shell_words(run)
    for word in words:
        for name in _hosts_in(word):
            yield from _name(scenario, name, where, declared_only=True)


def _shell_words(line: ShellLine) -> list[str]:
    """A command line's words, without the mode that follows a node program's name (``nodes.echo client``)."""
    try:
        words = shlex.split(line.text)
    except ValueError:
        words = line.text.split()
    node_programs = set(programs.available()) | {f"nodes.{name}" for name in programs.available()}
    return [word for previous, word in zip(["", *words], words, strict=False) if previous not in node_programs]


def _hosts_in(word: str) -> Iterator[str]:
    """The word itself, the host of HOST:PORT, and the host of a URL."""
    word = refs.render(word, lambda ref: _IPV4_PLACEHOLDER)
    yield word
    if "://" in word:
        word = word.split("://", 1)[1].split("/", 1)[0]
        yield word
    if _is_endpoint(word):
        yield parse_endpoint(word).host


def _is_endpoint(word: str) -> bool:
    try:
        parse_endpoint(word)
    except ValueError:
        return False
    return True


def _probe_reasons(scenario: Scenario, where: str, probe: Probe) -> Iterator[tuple[str, str]]:
    if probe.family == "ipv6":
        yield EVERY, f"{where}: family = \"ipv6\""
    if probe.v6only is not None:
        yield EVERY, f"{where}: v6only = {str(probe.v6only).lower()}"
    if probe.family == "ipv4":
        return  # a name resolved in IPv4 only
    for text in (probe.to, probe.bind):
        if text:
            try:
                host = parse_endpoint(refs.render(text, lambda ref: _IPV4_PLACEHOLDER)).host
            except ValueError:
                continue
            yield from _name(scenario, host, where)
    if probe.source:
        yield from _name(scenario, refs.render(probe.source, lambda ref: _IPV4_PLACEHOLDER), where)


def _try_names(scenario: Scenario) -> Iterator[tuple[str, str]]:
    """HOST:PORT in the commands the ``try`` text suggests: a student's client resolves the name."""
    for word in re.split(r"[\s`'\"]+", scenario.try_next):
        try:
            host = parse_endpoint(word.rstrip(".,;)")).host
        except ValueError:
            continue
        yield from _name(scenario, host, "try", declared_only=True)


def _name(scenario: Scenario, host: str, where: str, *, declared_only: bool = False) -> Iterator[tuple[str, str]]:
    """The networks on which resolving ``host`` may give an IPv6 address: its host's, or all for a name unknown."""
    host = host.strip("[]")
    if not host or host.lower() in _LOOPBACK_NAMES or _is_address(host):
        return
    if host in scenario.hosts:
        for network in scenario.hosts[host].networks:
            yield network, f"{where}: the name {host!r}, resolved in any family"
    elif not declared_only and re.fullmatch(r"[A-Za-z0-9.-]+", host):
        yield EVERY, f"{where}: the name {host!r}, resolved in any family"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    return True
