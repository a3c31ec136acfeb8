"""Read a scenario file into the model, or say exactly what is wrong with it.

Which keys exist, their types, defaults, ranges and choices are declared
once, on the model's fields (``socklab.model``, ``socklab.keys``); one
generic reader (``_Reader.fields``) derives every check from those
declarations, and a few small rules per table check what spans several
keys (``probe`` needs exactly one of ``to`` and ``bind``, say). Every
problem names the file, the line where it can be found, the key, what is
wrong and how to fix it; all problems of a file are reported at once, and
nothing is created before a file has passed. Validation covers the topology
too: a reference such as ``{server.lan.ipv6}`` must name a declared host, on
a network it is attached to, that has IPv6.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import MISSING
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nodes.endpoints import parse_endpoint
from socklab import families, keys, programs, refs
from socklab.errors import Problem, ScenarioError
from socklab.model import (
    FILES_LIMIT,
    NAME_PATTERN,
    NAME_RULE,
    TOPICS,
    Argv,
    Check,
    Command,
    Expectation,
    FileCopy,
    Host,
    Image,
    Network,
    Probe,
    Run,
    Scenario,
    Service,
    ShellLine,
)

__all__ = ["TOPICS", "load", "load_all", "suggest"]

NAME = re.compile(NAME_PATTERN)
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
_WANTED: dict[keys.Kind, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "boolean": ((bool,), "a boolean"),
    "integer": ((int,), "a whole number"),
    "number": ((int, float), "a number"),
    "strings": ((list,), "an array"),
    "table": ((dict,), "a table"),
    "tables": ((list,), "an array of tables"),
    "named-tables": ((dict,), "a table of tables"),
    "free-table": ((dict,), "a table"),
    "string-table": ((dict,), "a table of strings"),
    "string-or-array": ((str, list), "a string or an array"),
    "string-or-table": ((str, dict), "a string or a table"),
    "word-or-table": ((str, dict), "a string or a table"),
}


def _declare(table: str, value: str, choices: Iterable[str]) -> str:
    """The fix for a name nobody declared: declare it, or pick a declared one if there are any."""
    choices = list(choices)
    return f"declare [{table}.{value}]" + (f" or {suggest(value, choices)}" if choices else "")


def _holds(raw: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a TOML value is of one of ``kinds`` (a boolean is not a number, whatever Python says)."""
    return isinstance(raw, kinds) and not (isinstance(raw, bool) and bool not in kinds)


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Table:
    """A TOML table being read, and the keys its model declares (the rest are typos or misplaced)."""

    def __init__(self, reader: _Reader, data: Any, keypath: KeyPath) -> None:
        self.reader, self.keypath = reader, keypath
        if not isinstance(data, dict):
            reader.problem(keypath, f"must be a table, not {_type_name(data)}", "see the scenario format in README.md")
            data = {}
        self.data: dict[str, Any] = data
        self.known: list[str] = []

    def reject_unknown(self) -> None:
        for key in self.data:
            if key not in self.known:
                self.reader.problem(self.keypath + (key,), "is not a known key",
                                    f"remove it, or {suggest(key, self.known)}")


@dataclasses.dataclass(frozen=True)
class _Later:
    """A check that needs every host and network declared first: a name, or the references in a text."""

    keypath: KeyPath
    spec: keys.Key
    value: Any


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()
        self.problems: list[Problem] = []
        self.later: list[_Later] = []
        self.hosts: dict[str, Host] = {}
        self.networks: dict[str, Network] = {}
        self.rules: dict[type, Callable[[dict[str, Any], _Table], None]] = {
            Network: self.network_rules, Host: self.host_rules, Service: self.service_rules,
            Check: self.check_rules, Probe: self.probe_rules,
        }

    # -- reporting ---------------------------------------------------------

    def problem(self, keypath: KeyPath, problem: str, fix: str = "") -> None:
        self.problems.append(Problem(self.where(keypath), _render_keypath(keypath), problem, fix))

    def where(self, keypath: KeyPath) -> str:
        line = _locate(self.lines, keypath)
        return f"{self.path}:{line}" if line else str(self.path)

    # -- the generic reader --------------------------------------------------

    def fields(self, model: type, table: _Table) -> dict[str, Any]:
        """Every declared key of ``model`` read from ``table``: checked, converted, or its default.

        A key's value is always filled (with its default when it is wrong),
        so that reading goes on and every problem of the file is found.
        """
        values: dict[str, Any] = {}
        sections: dict[str, _Table] = {}
        for declared in keys.declared(model):
            if declared.key.flatten:
                assert declared.model is not None
                values[declared.field] = declared.model(**self.fields(declared.model, table))
                continue
            where = table
            if declared.key.section:
                if declared.key.section not in sections:
                    table.known.append(declared.key.section)
                    sections[declared.key.section] = _Table(self, table.data.get(declared.key.section, {}),
                                                            table.keypath + (declared.key.section,))
                where = sections[declared.key.section]
            where.known.append(declared.name)
            values[declared.field] = self.value(declared, where)
        for section in sections.values():
            section.reject_unknown()
        if model in self.rules:
            self.rules[model](values, table)
        return values

    def value(self, declared: keys.Declared, table: _Table) -> Any:
        spec, keypath = declared.key, table.keypath + (declared.name,)
        fallback = None if declared.default is MISSING else declared.default
        if declared.name not in table.data:
            if spec.required:
                self.problem(keypath, "is missing", f"add {declared.name} = {spec.example or '...'}")
            return fallback
        raw = table.data[declared.name]
        kinds, wanted = _WANTED[declared.kind]
        if not _holds(raw, kinds):
            self.problem(keypath, f"must be {wanted}, not {_type_name(raw)}",
                         f"write it as {spec.example}" if spec.example else "see the scenario format in README.md")
            return fallback
        if declared.kind == "strings" and not all(isinstance(item, str) for item in raw):
            self.problem(keypath, "must be an array of strings", f"write it as {spec.example}")
            return fallback
        if declared.kind == "string-table" and not all(isinstance(item, str) for item in raw.values()):
            self.problem(keypath, "must be a table of strings", f"write it as {spec.example}")
            return fallback
        if declared.kind in ("table", "tables", "named-tables") or declared.kind == "word-or-table" and isinstance(
                raw, dict):
            return self.tables(declared, raw, keypath)
        if spec.required and isinstance(raw, str) and not raw.strip():
            self.problem(keypath, "is empty", f"write it as {spec.example}")
            return fallback
        if not self.allowed(declared, raw, keypath):
            return fallback
        if spec.refs or spec.declared:
            self.later.append(_Later(keypath, spec, raw))
        value = tuple(raw) if declared.kind == "strings" else raw
        if spec.parse is not None:
            try:
                value = spec.parse(raw)
            except keys.Invalid as exc:
                self.problem(keypath, exc.problem, exc.fix or spec.fix)
                return fallback
            except ValueError as exc:
                self.problem(keypath, str(exc), spec.fix)
                return fallback
        elif declared.enum is not None:
            value = declared.enum(raw)
        if isinstance(value, Command):
            self.node_program(keypath, value)
        return value

    def allowed(self, declared: keys.Declared, raw: Any, keypath: KeyPath) -> bool:
        """Choices, range and pattern: False (with a problem said) if ``raw`` breaks one."""
        spec = declared.key
        if declared.choices and raw not in declared.choices:
            self.problem(keypath, f"{raw!r} is not {spec.what or 'a valid choice'}", suggest(raw, declared.choices))
            return False
        if declared.kind in ("integer", "number"):
            too_low = spec.low is not None and raw < spec.low
            too_high = spec.high is not None and (raw >= spec.high if spec.high_open else raw > spec.high)
            if too_low or too_high:
                low, high = (keys.number_text(bound) if bound is not None else "" for bound in (spec.low, spec.high))
                self.problem(keypath, f"{raw} is out of range",
                             f"use a value with {low} <= {declared.name} {'<' if spec.high_open else '<='} {high}")
                return False
        if spec.pattern and not re.fullmatch(spec.pattern, raw):
            self.problem(keypath, f"{raw!r} is not {spec.what or 'valid'}", spec.fix)
            return False
        return True

    def tables(self, declared: keys.Declared, raw: Any, keypath: KeyPath) -> Any:
        """A table of a model, an array of them, or tables by name (``[hosts.server]``)."""
        model = declared.model
        assert model is not None
        if declared.kind in ("table", "word-or-table"):
            table = _Table(self, raw, keypath)
            made = model(**self.fields(model, table))
            table.reject_unknown()
            return made
        if declared.kind == "tables":
            entries = []
            for index, entry in enumerate(raw):
                table = _Table(self, entry, keypath + (index,))
                entries.append(model(**self.fields(model, table)))
                table.reject_unknown()
            return tuple(entries)
        named = {}
        for name, entry in raw.items():
            if not NAME.match(name):
                self.problem(keypath + (name,), f"{name!r} is not a valid {declared.name.rstrip('s')} name",
                             NAME_RULE)
            table = _Table(self, entry, keypath + (name,))
            named[name] = model(name=name, **self.fields(model, table))
            table.reject_unknown()
        return named

    # -- the whole file ------------------------------------------------------

    def scenario(self, data: dict[str, Any]) -> Scenario:
        top = _Table(self, data, ())
        if "scenario" not in data:
            self.problem(("scenario",), "is missing", 'start the file with [scenario] and name = "..."')
        values = self.fields(Scenario, top)
        top.reject_unknown()
        self.hosts, self.networks = values["hosts"], values["networks"]
        values["files"] = self.local_files(values["files"], ("scenario", "files"))
        for later in self.later:  # every host and network is known now
            self.check_later(later)
        name = values["name"]
        if name and NAME.match(name) and name != self.path.stem:
            self.problem(("scenario", "name"), f"{name!r} differs from the file name",
                         f"rename the file to {name}.toml or set name = {self.path.stem!r}")
        if not values["hosts"]:
            self.problem(("hosts",), "declares no host", "add at least one [hosts.NAME] table")
        if not values["checks"]:
            self.problem(("checks",), "declares no check", "add a [[checks]] with a probe and an expected outcome")
        self.check_subnets(values["networks"])
        self.unique("services", [s.name for s in values["services"]], "give each service its own name")
        self.unique("checks", [c.name for c in values["checks"]], "give each check its own name")
        loaded = Scenario(**values, path=self.path)
        return loaded if self.problems else families.lean(loaded, families.explicit(data))

    # -- rules across keys, one small function per table ---------------------

    def network_rules(self, values: dict[str, Any], table: _Table) -> None:
        if values["subnet6"] and not values["ipv6"]:
            self.problem(table.keypath + ("subnet6",), "is set on a network without IPv6",
                         "remove subnet6 or ipv6 = false")

    def host_rules(self, values: dict[str, Any], table: _Table) -> None:
        if len(set(values["networks"])) != len(values["networks"]):
            self.problem(table.keypath + ("networks",), "lists a network twice", "list each network once")
        values["files"] = self.local_files(values["files"], table.keypath + ("files",))
        image = values["image"]
        if image is not None and image.build is not None:
            folder = self.local(image.build)
            values["image"] = Image(build=folder)
            if not (folder / "Dockerfile").is_file():
                self.problem(table.keypath + ("image",), f"{folder} has no Dockerfile",
                             f"put a Dockerfile in {folder} (FROM socklab-node works with no registry), "
                             "or name the folder that has one")

    def service_rules(self, values: dict[str, Any], table: _Table) -> None:
        self.one_command(values, table)
        if values["name"] is None:
            values["name"] = f"{values['host']}-{_short_name(values['command'])}"
        values["host"] = values["host"] or ""
        values["command"] = values["command"] or Command("?")

    def check_rules(self, values: dict[str, Any], table: _Table) -> None:
        """One of host and hosts; one of probe, run and shell; evidence as claims."""
        keypath = table.keypath
        values["name"] = values["name"] or f"check {_entry(table)}"
        if "host" in table.data and "hosts" in table.data:
            self.problem(keypath, "has both host and hosts", "keep one of them")
        elif "hosts" in table.data:
            if isinstance(table.data["hosts"], list) and not table.data["hosts"]:
                self.problem(keypath + ("hosts",), "lists no host", 'name at least one, as in ["client"]')
            if len(set(values["hosts"])) != len(values["hosts"]):
                self.problem(keypath + ("hosts",), "lists a host twice", "list each host once")
        elif "host" not in table.data:
            self.problem(keypath + ("host",), "is missing", f'add host = "{next(iter(self.hosts), "client")}"')
        values["hosts"] = values["hosts"] or (values["host"],)
        attempts = [key for key in ("probe", "run", "shell") if key in table.data]
        if len(attempts) > 1:
            self.problem(keypath, f"has both {attempts[0]} and {attempts[1]}",
                         "keep one: a check makes a single attempt")
        elif not attempts:
            self.problem(keypath + ("probe",), "is missing",
                         'add probe = { proto = "tcp", to = "{server.lan.ipv4}:65432" } (or run = "...")')
        if values["shell"] is not None:
            values["run"] = ShellLine(values["shell"])
        values["evidence"] = self.evidence(values["evidence"] or {}, keypath + ("evidence",))

    def one_command(self, values: dict[str, Any], table: _Table) -> None:
        """A service runs exactly one of ``run`` (a node program, or an argv) and ``shell`` (a command line)."""
        if "run" in table.data and "shell" in table.data:
            self.problem(table.keypath, "has both run and shell", "keep one of them")
        elif "run" not in table.data and "shell" not in table.data:
            self.problem(table.keypath + ("run",), "is missing",
                         'add run = "echo serve --port 65432" (a node program), run = ["python3", "server.py"] '
                         '(any program), or shell = "..." (a command line)')
        if values["shell"] is not None:
            values["command"] = ShellLine(values["shell"])

    # -- the user's own files ------------------------------------------------

    def local(self, path: Path) -> Path:
        """A path of the scenario's, made absolute: relative ones are relative to the scenario file's folder."""
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    def local_files(self, copies: tuple[FileCopy, ...], keypath: KeyPath) -> tuple[FileCopy, ...]:
        """Each copy's source resolved, there, and within the size limit: checked before anything starts."""
        resolved = []
        for copy in copies:
            assert isinstance(copy.source, Path)  # a file names a path; content as bytes comes from Python only
            source = self.local(copy.source)
            if not source.exists():
                self.problem(keypath, f"{copy.target}: {source} does not exist",
                             f"check the path; a relative one is relative to {self.path.parent.resolve()}")
            elif (size := _size(source)) > FILES_LIMIT:
                self.problem(keypath, f"{copy.target}: {source} holds {size / 2**20:.1f} MiB, more than the "
                                      f"{FILES_LIMIT // 2**20} MiB a files entry may",
                             "copy only what the lab needs, or put it into an image of the host's own "
                             "(image = { build = ... })")
            resolved.append(dataclasses.replace(copy, source=source))
        return tuple(resolved)

    def probe_rules(self, values: dict[str, Any], table: _Table) -> None:
        if (values["to"] is None) == (values["bind"] is None):
            self.problem(table.keypath, "needs exactly one of 'to' and 'bind'",
                         'connect with to = "HOST:PORT", or only bind with bind = "ADDR:PORT"')
        if values["size"] is not None and values["send"] is not None:
            self.problem(table.keypath, "has both send and size", "send either a text or SIZE pattern bytes")

    def evidence(self, claims: dict[str, Any], keypath: KeyPath) -> tuple[Expectation, ...]:
        """``evidence = { loss_ratio = [0.05, 0.4], seen_as = "::ffff:{client.lan.ipv4}" }``."""
        made = []
        for key, value in claims.items():
            if isinstance(value, list):
                numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
                if len(value) != 2 or len(numbers) != 2 or numbers[0] > numbers[1]:
                    self.problem(keypath + (key,), f"{value!r} is not a range", "write [LOW, HIGH] with LOW <= HIGH")
                    continue
                made.append(Expectation(key, low=numbers[0], high=numbers[1]))
            elif isinstance(value, str | int | float | bool):
                made.append(Expectation(key, equals=value))
            else:
                self.problem(keypath + (key,), f"must be a value or a [LOW, HIGH] range, not {_type_name(value)}",
                             "write key = VALUE or key = [LOW, HIGH]")
        return tuple(made)

    def check_subnets(self, networks: dict[str, Network]) -> None:
        declared = [(n.name, s) for n in networks.values() for s in (n.subnet4, n.subnet6) if s]
        for i, (name, subnet) in enumerate(declared):
            for other, other_subnet in declared[:i]:
                if subnet.version == other_subnet.version and subnet.overlaps(other_subnet):
                    key = "subnet" if subnet.version == 4 else "subnet6"
                    self.problem(("networks", name, key), f"{subnet} overlaps {other_subnet} of network {other!r}",
                                 "give each network its own subnet")

    def unique(self, key: str, names: list[str], fix: str) -> None:
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                self.problem((key, index, "name"), f"{name!r} is used twice", fix)
            seen.add(name)

    # -- names and references, once the topology is known ----------------------

    def check_later(self, later: _Later) -> None:
        """A name must be declared; a text's references must resolve (and an endpoint or URL be well formed)."""
        spec, value = later.spec, later.value
        if isinstance(value, dict):  # evidence: each claim's text, under its own key
            texts = [(later.keypath + (key,), text) for key, text in value.items() if isinstance(text, str)]
        else:
            texts = [(later.keypath, text) for text in (value if isinstance(value, list) else [value])]
        for keypath, text in texts:
            if spec.declared:
                self.declared(keypath, spec.declared, text)
            elif spec.refs == "endpoint":
                self.endpoint(keypath, text)
            elif spec.refs == "ready":
                self.ready_url(keypath, text)
            else:
                self.references(keypath, text)

    def declared(self, keypath: KeyPath, kind: str, name: str) -> None:
        names = self.hosts if kind == "hosts" else self.networks
        if name and name not in names:
            self.problem(keypath, f"{kind.rstrip('s')} {name!r} is not declared", _declare(kind, name, names))

    def node_program(self, keypath: KeyPath, command: Command) -> None:
        known = programs.available()
        if command.program not in known:
            self.problem(keypath, f"{command.program!r} is not a node program", suggest(command.program, known))
        for flag, value in zip(command.args, command.args[1:], strict=False):
            if flag == "--port" and not _is_port(value):
                self.problem(keypath, f"port {value!r} is out of range", "use a port from 0 to 65535")

    def endpoint(self, keypath: KeyPath, text: str) -> None:
        if not self.references(keypath, text):
            return
        placeholder = refs.render(text, _placeholder)
        try:
            parse_endpoint(placeholder)
        except ValueError as exc:
            self.problem(keypath, str(exc), "write HOST:PORT, with IPv6 addresses as [ADDRESS]:PORT")

    def ready_url(self, keypath: KeyPath, url: str) -> None:
        if not self.references(keypath, url):
            return
        if url.startswith("log:"):
            try:
                re.compile(url.removeprefix("log:"))
            except re.error as exc:
                self.problem(keypath, f"{url!r} is not a regular expression ({exc})", "escape special characters")
            return
        if url.startswith("command:"):
            if not url.removeprefix("command:").strip():
                self.problem(keypath, "names no command", 'write "command:nc -z 127.0.0.1 65432"')
            return
        fix = ('write "tcp://ADDR:PORT", "udp://ADDR:PORT" or "unix:///PATH" (IPv6 addresses in brackets), '
               '"log:REGEX" or "command:LINE"')
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

    def references(self, keypath: KeyPath, text: str) -> bool:
        """Check every {host.network.attribute} in ``text``; False if one is wrong."""
        fine = True
        for ref in refs.find_refs(text):
            problem, fix = _reference_problem(ref, self.hosts, self.networks)
            if problem:
                self.problem(keypath, problem, fix)
                fine = False
        return fine


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


def _short_name(command: Run | None) -> str:
    """What a service is called by default, after its host: the program it runs."""
    if isinstance(command, Command):
        return command.program
    if isinstance(command, Argv):
        return re.sub(r"[^a-z0-9-]+", "-", Path(command.words[0]).name.lower()).strip("-") or "program"
    return "shell"


def _size(path: Path) -> int:
    """Bytes in a file, or in every file under a folder (links are copied as links, so they count nothing)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _entry(table: _Table) -> int:
    """The number of an array's entry, counting from 1 as people (and the messages) do."""
    index = table.keypath[-1]
    return index + 1 if isinstance(index, int) else 0


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

