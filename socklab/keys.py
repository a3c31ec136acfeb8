"""How a scenario key is declared: once, on the model field it fills.

A field of the model (``socklab.model``) that a scenario file can set carries
a ``Key`` in its metadata: its TOML name, what it means, its range or
choices, whether it may hold address references, the ``nodes.probe`` flag it
becomes, an example and the fix for a bad value. Everything else is derived
from that one declaration: the reader's type, range and choice checks and
its "did you mean" for unknown keys (``socklab.scenario``), the probe's
command line (``socklab.commands``), the JSON Schema and the README's list
of keys (``socklab.schema``).

The TOML type comes from the field's annotation (``str``, ``bool``, ``int``,
``float``, ``tuple[str, ...]``, a model dataclass, a tuple or dict of them,
an enum); a field whose Python value is built from another TOML type names
that type (``takes``) and the function that builds it (``parse``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any, Literal

References = Literal["", "text", "endpoint", "ready"]


class Invalid(ValueError):
    """Raised by a key's ``parse`` for a value it cannot take: what is wrong, and the fix."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


@dataclass(frozen=True)
class Key:
    """One scenario key: how it is written, what it means, what it may hold."""

    doc: str  # what it means, in one line (README, schema, editors' hover text)
    name: str = ""  # its TOML name, if not the field's
    example: str = ""  # a value as written in TOML: '"udp"', '2.0', '["lan"]'
    required: bool = False
    low: float | None = None  # numbers: low <= value
    high: float | None = None  # numbers: value <= high (value < high with high_open)
    high_open: bool = False
    choices: tuple[str, ...] = ()  # the only values allowed (enums give theirs)
    what: str = ""  # how a wrong choice or pattern is named: "a protocol" -> "'sctp' is not a protocol"
    pattern: str = ""  # a regular expression the whole text must match
    refs: References = ""  # may hold {host.network.attribute}: in any text, an endpoint, a readiness URL
    declared: Literal["", "hosts", "networks"] = ""  # names a host or network of the scenario
    flag: str = ""  # the nodes.probe option it becomes (a bool: given when true)
    flag_off: str = ""  # for a bool that may also be false on purpose: the option given then
    fix: str = ""  # how to fix a bad value, when the generic advice would not do
    default_text: str = ""  # the default in words, when it depends on the rest of the scenario (no fixed value)
    section: str = ""  # read from this sub-table ([scenario]) instead of the table itself
    flatten: bool = False  # a dataclass whose own keys sit in this same table
    takes: type | tuple[type, ...] | None = None  # the TOML type(s), when ``parse`` builds the value from it
    parse: Callable[[Any], Any] | None = None  # TOML value -> model value; raises Invalid or ValueError


def number_text(value: float) -> str:
    """A bound as people write it: 1, 0.05, 67108864 (not 6.71089e+07)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def key(doc: str, default: Any = MISSING, *, default_factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A dataclass field carrying its ``Key``: ``proto: str = key("transport", "tcp", choices=("tcp", "udp"))``."""
    metadata = {"key": Key(doc, **spec)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# -- what a field holds, derived from its annotation -------------------------

Kind = Literal["string", "boolean", "integer", "number", "strings", "table", "tables", "named-tables", "free-table",
               "string-table", "string-or-array", "string-or-table", "word-or-table"]


@dataclass(frozen=True)
class Declared:
    """A declared key, with what the annotation says it holds."""

    field: str  # the model's field name
    key: Key
    kind: Kind
    optional: bool  # the model accepts None: the key may be left out with no default
    default: Any  # MISSING if the model has none
    model: type | None = None  # the dataclass of a table, or of each entry of an array or dict of tables
    enum: type[enum.Enum] | None = None

    @property
    def name(self) -> str:
        """The key as written in TOML."""
        return self.key.name or self.field

    @property
    def choices(self) -> tuple[str, ...]:
        return self.key.choices or (tuple(str(m.value) for m in self.enum) if self.enum else ())


_SCALARS: dict[type, Kind] = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "free-table"}


@functools.cache
def declared(model: type) -> tuple[Declared, ...]:
    """Every field of ``model`` that a scenario file can set, in declaration order."""
    hints = typing.get_type_hints(model)
    found = []
    for field in dataclasses.fields(model):
        spec = field.metadata.get("key")
        if spec is None:
            continue
        default = field.default if field.default is not MISSING else (
            field.default_factory() if field.default_factory is not MISSING else MISSING)
        hint, optional = _strip_none(hints[field.name])
        found.append(_kind(field.name, spec, hint, optional, default))
    return tuple(found)


def _strip_none(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _is_model(hint: Any) -> bool:
    """A model dataclass (the class itself, not an instance of it)."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _kind(name: str, spec: Key, hint: Any, optional: bool, default: Any) -> Declared:
    if spec.takes == (str, list):
        return Declared(name, spec, "string-or-array", optional, default)
    if spec.takes == (str, dict):
        return Declared(name, spec, "string-or-table", optional, default)
    if isinstance(spec.takes, type):
        return Declared(name, spec, _SCALARS[spec.takes], optional, default)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # an outcome word, or a table of claims
        word = next((a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)), None)
        table = next((a for a in args if _is_model(a)), None)
        if word is not None and table is not None and len(args) == 2:
            return Declared(name, spec, "word-or-table", optional, default, model=table, enum=word)
    if origin is dict and args[1] is str:
        return Declared(name, spec, "string-table", optional, default)
    if origin is tuple and args[0] is str:
        return Declared(name, spec, "strings", optional, default)
    if origin is tuple and _is_model(args[0]):
        return Declared(name, spec, "tables", optional, default, model=args[0])
    if origin is dict and _is_model(args[1]):
        return Declared(name, spec, "named-tables", optional, default, model=args[1])
    if _is_model(hint):
        return Declared(name, spec, "table", optional, default, model=hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return Declared(name, spec, "string", optional, default, enum=hint)
    if hint in _SCALARS:
        return Declared(name, spec, _SCALARS[hint], optional, default)
    raise TypeError(f"{name}: a scenario key cannot hold {hint!r}; give the Key `takes` and `parse`")
