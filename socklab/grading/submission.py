"""A submission: somebody's program, and how to start it in place of one of socklab's.

``--impl ROLE=SPEC`` names one. SPEC is a Python file (``echo=student/echo_server.py``),
run as ``python3 FILE`` with the arguments socklab's own program would get,
or a file or folder and a command template (``app=submission/:python3
app-server.py {host} {port}``) run in that folder. The template's
placeholders come from the options of the program the submission stands in
for, so a program written for the classic tutorial (``<host> <port>``
positional arguments, a helper module next to it) runs unchanged:

- ``{host}`` and ``{port}``: where a server binds (``--bind``, ``--port``),
  or the server a client connects to (``--to HOST:PORT``);
- ``{address}``: the address a client uses to reach the server;
- ``{NAME}``: the value of any other ``--NAME VALUE`` option
  (``{action}``, ``{value}`` for the application protocol's client);
  ``{NAME=DEFAULT}`` where the option may be left out (``{action=search}``).

Each value is one argument, so an empty bind address stays an argument
(``''``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from socklab.constants import GRADED_USER, SUBMISSION_HOME
from socklab.errors import UsageError
from socklab.model import Argv, Command, FileCopy, Run, ShellLine

PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)(?:=([^{}]*))?\}")  # {name}, or {name=default}
SHELL_SYNTAX = re.compile(r"[;&|<>$`()*?~\n]")  # what only a shell would make sense of
ENDPOINT_OPTIONS = {"to", "bind", "port"}  # what {host}, {port} and {address} stand for
CLIENT_MODE = "client"  # a node program's mode that makes one client attempt and reports it


@dataclass(frozen=True)
class Submission:
    """One program to grade: the role it plays, where it comes from, how it starts."""

    role: str  # a node program (echo), a service's name, or PROGRAM-client for a client
    source: str  # as given, for reports
    path: Path  # a file, or a folder, copied onto the hosts
    template: str | None = None  # a command line with placeholders; None: python3 FILE with socklab's arguments

    @property
    def is_client(self) -> bool:
        return self.role.endswith(f"-{CLIENT_MODE}")

    @property
    def folder(self) -> str:
        """Where its files are on a host: a folder of the graded user's own, one per role."""
        return f"{SUBMISSION_HOME}/{self.role.replace('/', '_')}"

    def copy(self) -> FileCopy:
        """Its file or folder, as the lab puts it on a host: the graded user's, in its folder."""
        target = self.folder if self.path.is_dir() else f"{self.folder}/{self.path.name}"
        return FileCopy(target, self.path, user=GRADED_USER)

    def command(self, standing_in_for: Command, address: str) -> Run:
        """The command that runs it where ``standing_in_for`` would have run.

        A template that is a plain command line becomes that program's own
        argv, with no shell in between: the pid the lab watches is the
        program's, and a program that kills what it may cannot take a shell
        above it down and pass for dead. A template that needs a shell (a
        pipe, ``&&``, a variable) runs under ``sh -c``.
        """
        if self.template is None:
            return Argv(("python3", f"{self.folder}/{self.path.name}", *standing_in_for.args))
        values = placeholders(standing_in_for, address)
        value = lambda found: values.get(found.group(1), found.group(2) or "")  # noqa: E731
        if not SHELL_SYNTAX.search(self.template):
            return Argv(tuple(PLACEHOLDER.sub(value, word) for word in shlex.split(self.template)))
        return ShellLine(PLACEHOLDER.sub(lambda found: shlex.quote(value(found)), self.template))

    def fits(self, standing_in_for: Command) -> bool:
        """Its template says everything the command asks for: each option's value, or a default for it.

        A client check asking for more than the template can pass on (a load
        of 200 requests, a binary request, to a client made for one text
        request) is not one this submission can be graded by.
        """
        names = {m.group(1) for m in PLACEHOLDER.finditer(self.template or "")}
        given = set(placeholders(standing_in_for, "")) - {"host", "port", "address"}
        defaults = {m.group(1) for m in PLACEHOLDER.finditer(self.template or "") if m.group(2) is not None}
        return given - ENDPOINT_OPTIONS <= names and names - defaults <= set(placeholders(standing_in_for, ""))

    def check_placeholders(self, standing_in_for: Command, address: str) -> None:
        """Refuse, before anything runs, a template that names a value the program's options do not give."""
        values = placeholders(standing_in_for, address)
        for name, default in PLACEHOLDER.findall(self.template or ""):
            if name not in values and not default:
                raise UsageError(f"--impl {self.role}={self.source}", f"{{{name}}} is not a placeholder here",
                                 f"use {', '.join('{' + n + '}' for n in values)} (from `{standing_in_for}`)")


def parse(spec: str, commands: Mapping[str, str] | None = None) -> Submission:
    """``ROLE=FILE``, ``ROLE=FILE:COMMAND`` or ``ROLE=FOLDER/:COMMAND``, checked now: a bad one is exit 2.

    With no command of its own, a submission takes the one ``commands`` (a
    rubric's) has for its role, if any.
    """
    role, sep, rest = spec.partition("=")
    where, _, template = rest.partition(":")
    if not sep or not role or not where:
        raise UsageError(f"--impl {spec}", "is not ROLE=FILE or ROLE=FOLDER/:COMMAND",
                         "write it as echo=student/echo_server.py, or as "
                         "'app=submission/:python3 app-server.py {host} {port}'")
    path = Path(where)
    template = template.strip() or (commands or {}).get(role, "")
    if not path.exists():
        raise UsageError(f"--impl {spec}", f"{where}: no such file or folder", "give the path of a file or folder")
    if path.is_dir() and not template:
        raise UsageError(f"--impl {spec}", f"{where} is a folder: which program in it runs, and how?",
                         f"add a command: '{role}={where.rstrip('/')}/:python3 server.py {{host}} {{port}}'")
    return Submission(role, rest, path, template or None)


def placeholders(command: Command, address: str) -> dict[str, str]:
    """The values a template may use, from the options of ``command`` (see the module's docstring)."""
    values: dict[str, str] = {}
    args = list(command.args)
    for option, value in zip(args, [*args[1:], ""], strict=True):
        if option.startswith("--") and not value.startswith("--"):
            values[option[2:].replace("-", "_")] = value
    if "to" in values:
        host, _, port = values["to"].rpartition(":")
        values.update(host=host.removeprefix("[").removesuffix("]"), port=port, address=values["to"])
    else:
        values["host"] = values.get("bind", "")
        values["address"] = address
    return values
