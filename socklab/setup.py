"""``invoke setup``: install what this machine lacks, then build the node image, so the first run just runs.

As ``playwright install --with-deps`` does, it installs only what is
missing, says each command before running it, and where it has not the
rights prints the one command to run instead (exit 2). What it checks:

* the Docker engine answers; if not it says exactly what to do (start it,
  install Debian's docker.io, or let this user in) and installs nothing,
  since an engine is a service to run and trust, not a package to slip in;
* the node image can be built: where no registry gives the Dockerfile's
  base, it is bootstrapped from the host's APT sources, which needs
  mmdebstrap or debootstrap; without either, mmdebstrap is installed with
  apt-get, as root or through a sudo that needs no password.

The questions are images.py's own (``registry_reachable``,
``bootstrap_tool``): setup decides as the build will. Each decision is a
function of its own, and every command goes through ``run_command``, so
tests replace the engine, the package manager and PATH, and install nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from socklab import api, events
from socklab.constants import RECIPE_DIR
from socklab.errors import EnvironmentProblem

if TYPE_CHECKING:
    import docker

Say = Callable[[str], None]

TOOL_PACKAGE = "mmdebstrap"  # the bootstrap tool installed: one command, no mirror to name (debootstrap needs one)
INSTALL_HINT = f"sudo apt-get install -y {TOOL_PACKAGE}"  # the one command for whoever has the rights
ENGINE_TIMEOUT = 120  # seconds for each answer, as engine.connect's: the registry probe is a whole pull
AGAIN = "then run `python3 -m invoke setup` again"


def run_command(argv: Sequence[str]) -> int:
    """Run a command with this terminal's input and output; its exit status. The one way setup runs anything."""
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}  # apt-get asks nothing (kept by root only)
    sys.stdout.flush()  # what setup said comes before the command's own output, in a log too
    sys.stderr.flush()
    return subprocess.run(list(argv), env=environment, check=False).returncode


def engine_client() -> docker.DockerClient:
    """A client that has had an answer from the engine DOCKER_HOST names; the SDK's error if none answers."""
    import docker

    client = docker.from_env(timeout=ENGINE_TIMEOUT)
    client.ping()
    return client


def is_root() -> bool:
    """Root installs packages itself; anybody else needs sudo."""
    return os.geteuid() == 0


def engine_advice(reason: str) -> str:
    """What to do when no engine answers, by why: a socket refusing this user, another host, none running, none."""
    if "permission denied" in reason.lower():
        return (f"The Docker engine refuses this user ({reason}). Let the user in: `sudo usermod -aG docker $USER`, "
                f"then log in again (or `newgrp docker`); {AGAIN}.")
    if os.environ.get("DOCKER_HOST"):
        return (f"No Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']} ({reason}). Start that "
                f"engine, or `unset DOCKER_HOST` to use this machine's; {AGAIN}.")
    if shutil.which("dockerd"):
        return (f"The Docker engine is installed but does not answer ({reason}). Start it: "
                f"`sudo systemctl start docker` (without systemd: `sudo service docker start`); {AGAIN}.")
    return (f"No Docker engine is installed here ({reason}). Install Debian's: `sudo apt-get install -y docker.io`, "
            f"start it (`sudo systemctl start docker`) and let your user use it (`sudo usermod -aG docker $USER`, "
            f"then log in again); {AGAIN}.")


def connect_engine() -> docker.DockerClient:
    """The engine's client; EnvironmentProblem (exit 2) with what to do if it does not answer."""
    import requests
    from docker.errors import DockerException

    try:
        return engine_client()
    except (DockerException, requests.RequestException) as exc:
        raise EnvironmentProblem(engine_advice(str(exc))) from None


def bootstrap_tool() -> str | None:
    """The bootstrap tool on PATH (mmdebstrap, else debootstrap), as the offline build will look for it."""
    from socklab.backend.docker import images

    return images.bootstrap_tool(shutil.which)


def image_built(client: docker.DockerClient) -> bool:
    """Whether the node image of the current recipe is on the engine already: then nothing needs building."""
    from docker.errors import ImageNotFound

    from socklab.backend.docker import images

    try:
        client.images.get(images.image_name())
    except ImageNotFound:
        return False
    return True


def registry_base(client: docker.DockerClient) -> str | None:
    """The Dockerfile's base if a registry gives it (the build's own pull, images.py), else None."""
    from socklab.backend.docker import images

    base = images.dockerfile_base(RECIPE_DIR / "Dockerfile")
    return base if images.registry_reachable(client, base) else None


def nothing_needed(client: docker.DockerClient) -> str | None:
    """Why the node image can be built as things are (a tool on PATH, the image built, a registry); None if not.

    The cheapest question first: PATH, then the engine's images, and only
    then the registry, which costs a pull (one the build would make anyway).
    """
    tool = bootstrap_tool()
    if tool:
        return f"{tool} is installed ({shutil.which(tool)}): the node image can be built offline"
    if image_built(client):
        return "the node image is built already"
    base = registry_base(client)
    if base:
        return f"a registry gives {base}: the node image is built from it, with no bootstrap tool"
    return None


def escalation() -> list[str] | None:
    """How to run a command as root: [] being root, ["sudo", "-n"] where sudo needs no password, None without rights.

    ``sudo -n`` never asks: setup may run with no terminal (CI), and a
    password prompt there would hang rather than fail.
    """
    if is_root():
        return []
    if shutil.which("sudo") and run_command(["sudo", "-n", "true"]) == 0:
        return ["sudo", "-n"]
    return None


def install_commands(prefix: Sequence[str]) -> list[list[str]]:
    """apt-get's two steps, in order: the package lists first, since a fresh machine's may be empty or stale."""
    return [[*prefix, "apt-get", "update"], [*prefix, "apt-get", "install", "-y", TOOL_PACKAGE]]


def install_tool(say: Say) -> None:
    """Install mmdebstrap with apt-get, saying each command first; EnvironmentProblem with the command otherwise."""
    if not shutil.which("apt-get"):
        raise EnvironmentProblem(
            "No registry answers for the node image's base, and neither mmdebstrap nor debootstrap is installed to "
            "build it offline; this machine has no apt-get to install one. Install mmdebstrap (or debootstrap) with "
            f"its package manager, or give the Docker engine access to a registry; {AGAIN}.")
    prefix = escalation()
    if prefix is None:
        raise EnvironmentProblem(
            "No registry answers for the node image's base, and neither mmdebstrap nor debootstrap is installed to "
            f"build it offline; installing one needs root (and sudo asks for a password). Run: {INSTALL_HINT}")
    for argv in install_commands(prefix):
        command = " ".join(argv)
        say(f"running: {command}")
        status = run_command(argv)
        if status != 0:
            raise EnvironmentProblem(f"`{command}` exited {status}; fix what it says, or run: {INSTALL_HINT}")
    if not bootstrap_tool():
        raise EnvironmentProblem(f"{TOOL_PACKAGE} was installed but is not on PATH ({os.environ.get('PATH', '')})")
    say(f"installed {TOOL_PACKAGE}: the node image will be bootstrapped from this host's APT sources")


def build_image(listener: events.Listener) -> str:
    """Build the node image now, exactly as `invoke build` does, so that the first run does not wait for it."""
    return api.build(listener=listener)


def prepare(say: Say, *, build: bool = True, listener: events.Listener = events.ignore) -> str | None:
    """Check the engine, install a bootstrap tool if the build will need one, then build the node image.

    Returns the image's name, or None with ``build=False``. Raises
    EnvironmentProblem (exit 2) with what to do when something is missing
    that setup may not or cannot install.
    """
    from socklab.backend.docker.engine import engine_errors

    client = connect_engine()
    say("the Docker engine answers")
    with engine_errors("looking for the node image and its base"):
        reason = nothing_needed(client)
    if reason:
        say(f"nothing to install: {reason}")
    else:
        say("no registry answers for the node image's base, and neither mmdebstrap nor debootstrap is installed")
        install_tool(say)
    if not build:
        return None
    say("building the node image (a no-op if it is current)")
    return build_image(listener)
