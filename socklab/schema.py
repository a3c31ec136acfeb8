"""The scenario format, described for people and for editors, from the keys' declarations.

Two views of the same declarations (``socklab.keys``, on ``socklab.model``):

- a JSON Schema (draft 4, the newest that TOML language servers such as
  Taplo read), committed as ``scenarios/scenario.schema.json`` and named by
  a ``#:schema`` line at the top of every catalogue file, so that an editor
  completes keys, shows what each means and flags a wrong type or value;
- the README's list of keys (``invoke docs`` writes both).

The schema says what a single key may hold; what spans keys or needs the
whole file (a host that is declared, a reference that resolves, exactly
one of ``to`` and ``bind``) is for ``invoke validate`` to say.
"""

from __future__ import annotations

import json
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from socklab import keys
from socklab.constants import CATALOGUE_DIR
from socklab.model import NAME_PATTERN, SYSCTL_PATTERN, Check, CommandEnd, Host, Network, Probe, Scenario, Service

SCHEMA_FILE = CATALOGUE_DIR / "scenario.schema.json"
SCHEMA_LINE = "#:schema ./scenario.schema.json"
DRAFT = "http://json-schema.org/draft-04/schema#"
README_START, README_END = "<!-- keys:start -->", "<!-- keys:end -->"

_TYPES: dict[keys.Kind, dict[str, Any]] = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "strings": {"type": "array", "items": {"type": "string"}},
    "free-table": {"type": "object", "additionalProperties": {
        "anyOf": [{"type": ["string", "number", "boolean"]},
                  {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}]}},
    "string-table": {"type": "object", "additionalProperties": {"type": "string"}},
    "string-or-array": {"type": ["string", "array"], "items": {"type": "string"}, "minItems": 1},
    "string-or-table": {"type": ["string", "object"]},
}
_FILES = {"type": "object", "additionalProperties": {"anyOf": [
    {"type": "string"},
    {"type": "object", "properties": {"from": {"type": "string"}, "read_only": {"type": "boolean"}},
     "required": ["from"], "additionalProperties": False}]}}
_SYSCTLS = {"type": "object", "patternProperties": {f"^{SYSCTL_PATTERN.pattern}$": {"type": ["string", "integer"]}},
            "additionalProperties": False}
# By model field: what a table whose keys are the user's own holds.
_FREE_TABLES: dict[str, dict[str, Any]] = {"files": _FILES, "sysctls": _SYSCTLS}


def json_schema() -> dict[str, Any]:
    """The whole format, as a JSON Schema document."""
    definitions = {model.__name__: _object(model) for model in (Network, Host, Service, Check, Probe, CommandEnd)}
    root = _object(Scenario)
    return {"$schema": DRAFT, "title": "socklab scenario",
            "description": "One lesson: hosts, networks, services and the checks it makes. See README.md.",
            **root, "definitions": definitions}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def _object(model: type) -> dict[str, Any]:
    """A table of ``model``: its keys (flattened ones included), sections as sub-tables, nothing else."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    sections: dict[str, dict[str, Any]] = {}
    for declared in keys.declared(model):
        if declared.key.flatten:
            assert declared.model is not None
            properties.update(_object(declared.model)["properties"])
            continue
        where = properties
        if declared.key.section:
            section = sections.setdefault(declared.key.section, {"type": "object", "properties": {},
                                                                  "additionalProperties": False})
            where = section["properties"]
            if declared.key.required:
                section.setdefault("required", []).append(declared.name)
        elif declared.key.required:
            required.append(declared.name)
        where[declared.name] = _property(declared)
    for name, section in sections.items():
        properties[name] = section
        required.append(name)
    made: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        made["required"] = required
    return made


def _property(declared: keys.Declared) -> dict[str, Any]:
    spec = declared.key
    if declared.kind == "table":
        assert declared.model is not None
        made: dict[str, Any] = {"$ref": f"#/definitions/{declared.model.__name__}"}
        return made  # draft 4 ignores anything beside a $ref
    if declared.kind == "word-or-table":
        assert declared.model is not None
        return {"description": spec.doc, "anyOf": [{"type": "string", "enum": list(declared.choices)},
                                                   {"$ref": f"#/definitions/{declared.model.__name__}"}]}
    if declared.kind == "tables":
        assert declared.model is not None
        made = {"type": "array", "items": {"$ref": f"#/definitions/{declared.model.__name__}"}}
    elif declared.field in _FREE_TABLES:  # a table whose own keys are the user's: files, sysctls
        made = dict(_FREE_TABLES[declared.field])
    elif declared.kind == "named-tables":
        assert declared.model is not None
        made = {"type": "object", "patternProperties": {NAME_PATTERN: {
            "$ref": f"#/definitions/{declared.model.__name__}"}}, "additionalProperties": False}
    else:
        made = dict(_TYPES[declared.kind])
    made["description"] = spec.doc
    if declared.choices:
        made["enum"] = list(declared.choices)
    if spec.low is not None:
        made["minimum"] = spec.low
    if spec.high is not None:
        made["maximum"] = spec.high
        if spec.high_open:
            made["exclusiveMaximum"] = True
    if spec.pattern:
        made["pattern"] = spec.pattern if spec.pattern.startswith("^") else f"^(?:{spec.pattern})$"
    if declared.default not in (MISSING, None) and not spec.required and not spec.default_text \
            and declared.kind not in ("tables", "named-tables"):
        made["default"] = list(declared.default) if isinstance(declared.default, tuple) else declared.default
    return made


# -- the README's list of keys -------------------------------------------------

_TABLES: tuple[tuple[str, type], ...] = (
    ("[scenario]", Scenario), ("[networks.NAME]", Network), ("[hosts.NAME]", Host),
    ("[[services]]", Service), ("[[checks]]", Check), ("probe = { ... } (in a check)", Probe),
    ("expect = { ... } (in a check that runs a command of yours)", CommandEnd),
)
_TYPE_WORDS: dict[keys.Kind, str] = {
    "string": "text", "boolean": "true/false", "integer": "whole number", "number": "number",
    "strings": "array of text", "table": "table", "tables": "array of tables", "named-tables": "tables by name",
    "free-table": "table", "string-table": "table of text", "string-or-array": "text or array of text",
    "string-or-table": "text or table", "word-or-table": "outcome word, or table",
}


def markdown() -> str:
    """Every key of the format, table by table, with its type, default and meaning."""
    blocks = []
    for title, model in _TABLES:
        rows = [f"**{title}**", "", "| key | holds | default | meaning |", "|---|---|---|---|"]
        for declared in _flat(model):
            if declared.kind in ("tables", "named-tables") or (model is Scenario and not declared.key.section):
                continue
            rows.append(f"| `{declared.name}` | {_holds(declared)} | {_default(declared)} | "
                        f"{declared.key.doc.replace('|', '/')} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def _flat(model: type) -> list[keys.Declared]:
    found = []
    for declared in keys.declared(model):
        if declared.key.flatten and declared.model is not None:
            found += _flat(declared.model)
        elif declared.kind != "table" or declared.model is Probe:
            found.append(declared)
    return found


def _holds(declared: keys.Declared) -> str:
    spec = declared.key
    if declared.kind == "word-or-table":
        return "an outcome word (see Outcomes), or a table (below)"
    if declared.choices:
        return " or ".join(f'`"{choice}"`' for choice in declared.choices)
    words = _TYPE_WORDS[declared.kind]
    if spec.low is not None and spec.high is not None:
        words += f", {keys.number_text(spec.low)} to {keys.number_text(spec.high)}"
        words += " (less than)" if spec.high_open else ""
    if spec.refs:
        words += ", references"
    return words


def _default(declared: keys.Declared) -> str:
    if declared.key.required:
        return "required"
    if declared.key.default_text:
        return declared.key.default_text
    if declared.default in (MISSING, None, "", ()):
        return ""
    value = declared.default
    return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"


def refresh(path: Path, start: str, end: str, body: str) -> bool:
    """Rewrite what stands between two markers of a file; True if it changed."""
    text = path.read_text()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    updated = f"{head}{start}\n{body}\n{end}{tail}"
    if updated != text:
        path.write_text(updated)
    return updated != text


def between(path: Path, start: str, end: str) -> str:
    """What stands between two markers of a file, as ``refresh`` wrote it."""
    return path.read_text().split(start)[1].split(end)[0].strip()
