"""A lab: networks and hosts up on a backend, and what you can do on them.

``Lab.open`` is the one way in, and it tears the lab down on the way out
whatever happened inside (an exception, a failed check, SIGINT or SIGTERM):
the runner, the invoke tasks and the pytest plugin all go through it.

    with Lab.open(DockerBackend(), "demo", scenario.networks, scenario.hosts) as lab:
        lab.start_service(service)
        seen = lab.probe("client", Probe(to="{server.lan.ipv4}:65432", send="Hello, world"))
        assert seen.outcome == "echoed"
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from socklab import agents, capture, commands, events, preparation, programs
from socklab.addressing import AddressBook
from socklab.agents import AgentGone, HostAgent
from socklab.backend import Backend, ExecResult, HostHandle, HostInfo
from socklab.concurrency import parallel_map
from socklab.constants import LAB_HOME, LAB_USER
from socklab.errors import EnvironmentProblem, LabError, SocklabError
from socklab.files import archive, contents, host_path, missing_parents
from socklab.interrupts import Interruptions
from socklab.model import Argv, Command, FileCopy, Host, Network, Probe, Run, Service, ShellLine
from socklab.results import NOT_FOUND, TIMED_OUT, HostAddresses, Observation, ServiceResult, ServiceState

CUT_SHORT = (126, 137)  # a command the engine could not start, or that SIGKILL ended: what a host removal does
REMOVAL_SETTLES = 3.0  # s the engine may take, after killing a host's commands, to stop listing it as running


OUTPUT_KEPT = 4000  # characters of a command's output an Observation keeps (the end, where errors are)


def observe(result: ExecResult, argv: Sequence[str], via: str = "exec") -> Observation:
    """Read a client program's one JSON line; a program that reported nothing is an error, never a guess.

    What it printed and its exit status are kept either way: a command of the
    user's own is judged by them (``CommandEnd``), not by a JSON result.
    ``via`` says how it reached its host (``Observation.via``).
    """
    command = shlex.join(argv[argv.index("python3"):] if "python3" in argv else _unbounded(argv))
    stdout, stderr = result.stdout[-OUTPUT_KEPT:], result.stderr[-OUTPUT_KEPT:]
    for line in reversed(result.stdout.strip().splitlines()):
        try:
            evidence = json.loads(line)
        except ValueError:
            continue
        if isinstance(evidence, dict) and "outcome" in evidence:
            return Observation(str(evidence["outcome"]), evidence, "", command, exit_code=result.exit_code,
                               stdout=stdout, stderr=stderr, via=via)
    if result.exit_code == TIMED_OUT:
        reason = "the program overran its time limit and was stopped"
    elif result.exit_code == NOT_FOUND:
        reason = "the command is not on the host"
    else:
        reason = "the program reported no result"  # its exit status is in the evidence
    said = result.stderr.strip()[-800:]
    return Observation("error", {"exit_code": result.exit_code}, f"{reason}{': ' + said if said else ''}",
                       command, reported=False, exit_code=result.exit_code, stdout=stdout, stderr=stderr, via=via)


def _unbounded(argv: Sequence[str]) -> list[str]:
    """The command as the user wrote it, without the ``timeout`` that bounds it."""
    words = list(argv)
    return words[4:] if words[:1] == ["timeout"] else words


class Lab:
    def __init__(self, backend: Backend, lab_id: str, networks: Mapping[str, Network], hosts: Mapping[str, Host],
                 infos: Mapping[str, HostInfo], prepared: Mapping[str, preparation.Prepared] | None = None,
                 host_agents: Mapping[str, HostAgent] | None = None) -> None:
        self.backend, self.id = backend, lab_id
        self.networks, self.hosts, self.infos = dict(networks), dict(hosts), dict(infos)
        prepared = prepared or {}
        self.notes = sorted(note for host in prepared.values() for note in host.notes)  # which impairment, say
        self.book = AddressBook(infos, {host: found.links for host, found in prepared.items()})
        self.agents = dict(host_agents or {})  # by host: the lab user's checks go through them (socklab.agents)
        self._noting = threading.Lock()

    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        backend: Backend,
        name: str,
        networks: Mapping[str, Network],
        hosts: Mapping[str, Host],
        *,
        interruptions: Interruptions | None = None,
        listener: events.Listener = events.ignore,
        keep: bool = False,
        files: Sequence[FileCopy] = (),
    ) -> Iterator[Lab]:
        """Bring the hosts up and prepared; tear them down on exit unless ``keep``.

        ``files`` go to every host (a scenario's ``files``), before each
        host's own (``Host.files``): a host's own copy to the same path wins.
        Hosts with an image of their own (``Host.image``) get it first,
        built if need be, before anything is created (a missing image or a
        failed build makes nothing: ``ImageProblem``, exit 2).

        Creating and tearing down hold SIGINT and SIGTERM until they are done
        (``Interruptions.holding``), so a signal never leaves a host being made
        after its lab was removed; an image build comes before, and a signal
        stops it. Teardown goes by the lab's label, so it also removes what a
        creation cut short by an error left half made.

        Each host's resident agent (``socklab.agents``) starts once the host
        is ready, unless ``$SOCKLAB_AGENT`` is ``off``; it goes when the lab
        does, or when this process ends (a kept lab's checks from another
        process go by exec).
        """
        guard = interruptions or Interruptions()
        lab_id = f"{name}-{secrets.token_hex(3)}"
        kept = False
        host_agents: dict[str, HostAgent] = {}
        try:
            guard.checkpoint()
            listener(events.PhaseStarted(name, "hosts"))
            backend.host_images(hosts.values(), lambda text: listener(events.Note(text)))
            guard.checkpoint()
            nodes, prepared = programs.archive(), {}
            copies = {host: [*files, *spec.files] for host, spec in hosts.items()}

            def get_ready(info: HostInfo) -> None:  # on each host's thread, as soon as it runs
                host = info.handle.host
                prepared[host] = preparation.install(backend, info, hosts[host], dict(networks), nodes)
                if copies[host]:  # after the script, which refuses a host lacking what it needs
                    put(backend, info.handle, copies[host])
                if agents.enabled():  # it starts while other hosts still do; nothing waits for it here
                    host_agents[host] = HostAgent.start(backend, info.handle)

            with guard.holding():  # a signal now could leave a host being created after the teardown
                infos = backend.create_lab(lab_id, name, networks.values(), hosts.values(), on_started=get_ready)
            lab = cls(backend, lab_id, networks, hosts, infos, prepared, host_agents)
            guard.checkpoint()
            listener(events.PhaseStarted(name, "setup"))
            with guard.holding():
                lab.run_setup()
            guard.checkpoint()
            yield lab
            kept = keep
        finally:
            for agent in host_agents.values():
                agent.close()
            if not kept:
                listener(events.PhaseStarted(name, "teardown"))
                with guard.holding():
                    _teardown(backend, lab_id)

    # -- addresses -------------------------------------------------------------

    def addresses(self) -> HostAddresses:
        """Every host's addresses on every network, for reports and ``invoke up``."""
        return self.book.addresses()

    def render(self, text: str, on_host: str | None = None) -> str:
        """``text`` with its references (``{server.lan.ipv4}``) replaced, as seen from ``on_host``."""
        return self.book.render(text, on_host)

    # -- running things on hosts -------------------------------------------------

    def exec(self, host: str, argv: Sequence[str], *, user: str = LAB_USER, detach: bool = False) -> ExecResult:
        """Run ``argv`` on ``host`` as ``user``; as the graded user, confined (``commands.as_user``)."""
        if host not in self.infos:
            raise SocklabError(f"lab {self.id} has no host {host!r} (it has {', '.join(self.infos)})")
        argv, user = commands.as_user(argv, user)
        return self.backend.exec(self.infos[host].handle, argv, user=user, detach=detach)

    def put(self, host: str, source: Path | str | bytes, target: str, *, read_only: bool = False) -> None:
        """Put a local file or folder (or ``bytes``, as the content of one file) at ``target`` on ``host``.

        As a scenario's ``files`` do: ``target`` is the path it gets (a
        relative one is under /lab), not a folder to put it into; it belongs
        to the lab user, and folders above it the host lacks are made for
        the lab user. ``read_only``: root's, group lab, no write bit at all,
        so that the lab user can read it but not change it. Links inside a
        folder stay links. The engine unpacks it (its archive API).
        """
        where = Path(source) if isinstance(source, str) else source
        if isinstance(where, Path) and not where.exists():
            raise SocklabError(f"{where}: no such file or folder here")
        put(self.backend, self._handle(host), [FileCopy(host_path(target), where, read_only)])

    def get(self, host: str, path: str) -> bytes | dict[str, bytes]:
        """What is at ``path`` on ``host`` (relative: under /lab): a file's bytes, or for a folder every regular
        file in it (at any depth) by its path relative to the folder, ``{"sub/name.txt": b"..."}``.

        Raises MissingPath (exit 2) if nothing is there.
        """
        return contents(self.backend.get_archive(self._handle(host), host_path(path)))

    def _handle(self, host: str) -> HostHandle:
        if host not in self.infos:
            raise SocklabError(f"lab {self.id} has no host {host!r} (it has {', '.join(self.infos)})")
        return self.infos[host].handle

    def run_setup(self) -> None:
        """Each host's ``setup`` lines (as root, references rendered), hosts side by side."""

        def setup(host: Host) -> None:
            script = "\n".join(["set -e", *(self.render(line, host.name) for line in host.setup)])
            result = self.exec(host.name, ["sh", "-c", script], user="root")
            if not result.ok:
                self._require_host(host.name, result)
                raise LabError(f"the setup of host {host.name!r} failed (exit {result.exit_code}): "
                               f"{(result.stderr or result.stdout).strip()[-800:]}")

        parallel_map(setup, [host for host in self.hosts.values() if host.setup])

    def start_capture(self) -> None:
        """Record every interface of every host from now on (see ``socklab.capture``)."""

        def start(host: str) -> None:
            result = self.exec(host, capture.start_argv(), user="root")
            if not result.ok:
                raise LabError(f"tcpdump did not start on {host}: {result.stderr.strip()[-400:]}")

        parallel_map(start, self.hosts)

    def stop_capture(self) -> dict[str, bytes]:
        """Stop recording and return every pcap, named ``HOST-INTERFACE``."""

        def stop(host: str) -> dict[str, bytes]:
            self.exec(host, capture.stop_argv(), user="root")
            return capture.pcaps(self.backend.read_files(self.infos[host].handle, capture.CAPTURE_DIR))

        hosts = list(self.hosts)
        return {f"{host}-{interface}": data for host, pcaps in zip(hosts, parallel_map(stop, hosts), strict=True)
                for interface, data in sorted(pcaps.items())}

    def run(self, host: str, command: Run | str | Sequence[str] | None = None, *, shell: str | None = None,
            user: str = LAB_USER, limit: float | None = None, cwd: str | None = None,
            env: dict[str, str] | None = None) -> Observation:
        """Run a command to its end and read what it did.

        ``command`` is a node program (``"udpecho client --to ..."``), whose
        JSON result becomes the outcome, or any program's argv (a list);
        ``shell`` a command line for ``sh -c``. The Observation keeps the exit
        status and output too, for commands that print no JSON result.
        """
        argv = commands.program_argv(_command(command, shell), lambda text: self.render(text, host),
                                     limit or commands.COMMAND_LIMIT, cwd=cwd, env=env)
        return self._observe(host, argv, user)

    def probe(self, host: str, probe: Probe | None = None, *, user: str = LAB_USER, **fields: Any) -> Observation:
        """Make one client attempt from ``host``: ``lab.probe("client", to="...", send="hi")``."""
        probe = replace(probe or Probe(), **fields)
        argv = commands.probe_argv(probe, lambda text: self.render(text, host))
        return self._observe(host, argv, user)

    def _observe(self, host: str, argv: Sequence[str], user: str) -> Observation:
        """Run a client program and read its result; a host removed under the run is the environment's fault.

        A program killed because its container went (``invoke clean`` or
        ``invoke down`` from another terminal) reports nothing; blaming the
        check would mislead, so that case raises ``EnvironmentProblem``.
        """
        result, via = self._execute(host, argv, user)
        seen = observe(result, argv, via)
        if not seen.reported or result.exit_code in CUT_SHORT:
            self._require_host(host, result)
        return seen

    def _execute(self, host: str, argv: Sequence[str], user: str) -> tuple[ExecResult, str]:
        """Run a check's command through the host's agent if it can (the lab user's), else by an exec of its own.

        Returns the result and which way it went (``"agent"`` or ``"exec"``).
        An agent that stops serving leaves its host to exec from then on, and
        the lab's notes say so once, with why; a command it was running is
        made again by exec.
        """
        agent = self.agents.get(host)
        if agent is not None and user == LAB_USER:
            try:
                return agent.run(argv, commands.limit_of(argv)), "agent"
            except AgentGone as exc:
                self._note(f"{host}: {agents.FELL_BACK}: {exc}")
        return self.exec(host, argv, user=user), "exec"

    def _note(self, note: str) -> None:
        with self._noting:
            if note not in self.notes:
                self.notes.append(note)

    def _require_host(self, host: str, failed: ExecResult) -> None:
        """Raise EnvironmentProblem if the command ``failed`` because ``host`` was removed under the run.

        A removal kills the host's commands a moment before the engine stops
        listing it as running, so a command cut short (``CUT_SHORT``) gives the
        engine ``REMOVAL_SETTLES`` seconds to show the host gone; any other
        failure is the program's own, and one look suffices.
        """
        deadline = time.monotonic() + (REMOVAL_SETTLES if failed.exit_code in CUT_SHORT else 0)
        while True:
            try:
                self.backend.find_host(host, self.id)
            except (EnvironmentProblem, LabError):  # a LabError: the host is out of reach (a swarm node lost)
                raise
            except SocklabError:
                raise EnvironmentProblem(f"host {host!r} of lab {self.id} was removed while the run used it "
                                         "(by `invoke clean` or `invoke down`?)") from None
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def start_service(self, service: Service) -> ServiceResult:
        """Start a background program and wait, on its host, until it is ready."""
        render = lambda text: self.render(text, service.host)  # noqa: E731
        user = commands.exec_user(service)
        if user == LAB_USER and service.host in self.agents:  # two quick requests to its agent rather than one exec
            start, wait = commands.service_steps(service, render)
            result, _ = self._execute(service.host, start, user)
            if result.ok and wait:
                result, _ = self._execute(service.host, wait, user)
        else:
            result = self.exec(service.host, commands.service_argv(service, render), user=user)
        outcome = ServiceResult(service.name, service.host, str(service.command), ready=result.ok)
        if not result.ok:
            self._require_host(service.host, result)
            why = ("it exited before it was ready" if result.exit_code == commands.READY_EXIT_GONE
                   else "it did not become ready in time")
            outcome.detail = f"service {service.name!r} on {service.host}: {why}. {result.stderr.strip()}"
            outcome.log = self.service_logs([service])[service.name]
        return outcome

    def restart_service(self, service: Service) -> ServiceResult:
        """Start a service that has exited again, under the same name: its log goes on (its exit status and pid
        go as it starts: ``commands.service_steps``)."""
        return self.start_service(service)

    def require(self, service: Service) -> ServiceResult:
        """``start_service``, for callers that cannot go on without it: raise LabError, with its log, if it fails."""
        started = self.start_service(service)
        if not started.ready:
            raise LabError(f"{started.detail}\n{started.log}")
        return started

    def start(self, host: str, command: Run | str | Sequence[str] | None = None, *, shell: str | None = None,
              ready: str | None = None, name: str | None = None, user: str = LAB_USER, cwd: str | None = None,
              env: dict[str, str] | None = None) -> Service:
        """Start a program in the background and wait until it is ready, as ``require`` does.

        ``command`` is a node program (``"echo serve --port 7"``) or any
        program's argv (``["python3", "/lab/app/server.py", "0.0.0.0", "7"]``);
        ``shell`` a command line. ``ready`` is a socket (``tcp://*:7``), a log
        line (``log:Listening``) or a command (``command:nc -z 127.0.0.1 7``).
        Its log is kept: ``lab.service_logs([service])``.
        """
        run = _command(command, shell)
        default = run.program if isinstance(run, Command) else "service"
        service = Service(name or f"{host}-{default}", host, run, ready=ready, user=user, cwd=cwd, env=dict(env or {}))
        self.require(service)
        return service

    def wait_ready(self, host: str, condition: str, *, timeout: float = commands.READY_LIMIT,
                   user: str = LAB_USER) -> None:
        """Wait, on ``host``, until a socket listens (``tcp://{server.lan.ipv4}:7``) or a command exits 0.

        For a server that something other than the lab started; raise LabError if it is not ready in time.
        """
        argv = commands.ready_argv(self.render(condition, host), timeout)
        result, _ = self._execute(host, argv, user)
        if not result.ok:
            self._require_host(host, result)
            raise LabError(f"{host}: {(result.stderr or result.stdout).strip() or 'not ready'}")

    def service_state(self, service: Service) -> ServiceState:
        """Whether a started service still runs, its exit status if not, and its last log line.

        One command on its host, as root (the service may be another user's).
        A process that has exited but is not yet reaped (a zombie) counts as
        gone; its exit status is waited for, briefly, as its wrapper writes it.
        """
        log, pid, status = commands.service_files(service)
        script = (f'state=gone; pid=$(cat {pid} 2>/dev/null)\n'
                  f'if [ -n "$pid" ] && [ -r /proc/$pid/status ] && ! grep -q "^State:.*Z" /proc/$pid/status; '
                  f'then state=alive; else for i in $(seq 20); do [ -e {status} ] && break; sleep 0.05; done; fi\n'
                  f'echo "$state $(cat {status} 2>/dev/null)"; grep -v "^[[:space:]]*$" {log} 2>/dev/null | tail -n 1')
        result = self.exec(service.host, ["sh", "-c", script], user="root")
        first, _, last = result.stdout.partition("\n")
        state, _, code = first.partition(" ")
        return ServiceState(state == "alive", int(code) if code.strip().isdigit() else None, last.strip())

    def service_logs(self, services: Sequence[Service]) -> dict[str, str]:
        """Every service's log (and exit status, if it exited), read in one go per host."""
        logs = {}
        for host in {s.host for s in services}:
            files = self.backend.read_files(self.infos[host].handle, LAB_HOME)
            for service in (s for s in services if s.host == host):
                log, _, status = (path.removeprefix(f"{LAB_HOME}/") for path in commands.service_files(service))
                text = files.get(log, b"").decode(errors="replace")
                if status in files:
                    text += f"[exited with status {files[status].decode().strip()}]\n"
                logs[service.name] = text
        return logs


def _command(command: Run | str | Sequence[str] | None, shell: str | None) -> Run:
    """The Python API's ways to name a command, as the model's: a node program, an argv, or a shell line."""
    if (command is None) == (shell is None):
        raise TypeError("give a command (a node program's text, or an argv list) or shell=, not both")
    if shell is not None:
        return ShellLine(shell)
    if isinstance(command, Command | Argv | ShellLine):
        return command
    if isinstance(command, str):
        return Command.parse(command)
    assert command is not None  # shell is None, so command is not
    return Argv(tuple(command))


def put(backend: Backend, handle: HostHandle, copies: Sequence[FileCopy]) -> None:
    """Put files on a host in one archive, which the engine unpacks at /, with the folders above them it lacks.

    One look per distinct folder above the copies (the engine's stat of a
    path, no command on the host) tells which folders are missing.
    """
    parents = missing_parents([copy.target for copy in copies],
                              lambda folder: backend.path_info(handle, folder) is not None)
    backend.put_archive(handle, "/", archive(copies, parents))


def _teardown(backend: Backend, lab_id: str) -> None:
    try:
        backend.destroy_lab(lab_id)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(f"{exc}\nLab {lab_id} may be left behind: `invoke clean` removes it.") from None
