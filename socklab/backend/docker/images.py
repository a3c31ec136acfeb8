"""Images: the node image, found by its recipe's hash and built only when the recipe changed; hosts' own images.

Where a registry is reachable, the Dockerfile builds on a public Debian
image. Where none is (an offline lab room, this project's CI), the root
filesystem comes from the host's own APT sources through ``docker/bootstrap``
(mmdebstrap or debootstrap) and is streamed into the engine's import, with
the Dockerfile's ENV, WORKDIR and CMD applied there. Either way the image is
tagged with the recipe hash, so an unchanged recipe costs one lookup. It is
also tagged ``socklab-node:latest``, so that a Dockerfile of a host's own can
start ``FROM socklab-node`` with no registry at all.

A host's own image (``image = "name:tag"`` or ``image = { build = "dir" }``,
``OwnImages``) is either one already on the engine (socklab never pulls) or
built from a folder with a Dockerfile, without pulling, tagged
``socklab-own:<digest>`` after the folder's content (and the node image it
may start from): an unchanged folder costs one lookup, as the recipe does.
Such a Dockerfile may also name the node image exactly, through the build
argument ``SOCKLAB_NODE_IMAGE`` (``ARG SOCKLAB_NODE_IMAGE=socklab-node`` then
``FROM ${SOCKLAB_NODE_IMAGE}``), which holds whatever tag ``latest`` points at.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from docker.errors import APIError, ImageNotFound
from docker.models.images import Image as EngineImage

import docker
from socklab.backend.base import ImageProblem, Progress
from socklab.constants import IMAGE_REPOSITORY, LABEL_RECIPE, RECIPE_DIR
from socklab.errors import EnvironmentProblem
from socklab.model import Image

BOOTSTRAP_TOOLS = ("mmdebstrap", "debootstrap")
_IMPORT_INSTRUCTIONS = re.compile(r"^(ENV|WORKDIR|CMD|USER|LABEL)\s", re.IGNORECASE)

NODE_LATEST = f"{IMAGE_REPOSITORY}:latest"  # what ``FROM socklab-node`` finds
NODE_IMAGE_ARG = "SOCKLAB_NODE_IMAGE"  # build argument: the node image's exact name
OWN_REPOSITORY = "socklab-own"  # images built for hosts, tagged with their folder's digest
LABEL_CONTEXT = "socklab.context"  # on those images: the folder each was built from
BUILD_LOG_KEPT = 30  # lines of a failed build's log an error shows (the end, where the failure is)
_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")


def recipe_digest(recipe_dir: Path = RECIPE_DIR) -> str:
    """A hash of every file of the recipe, names included."""
    digest = hashlib.sha256()
    for path in sorted(p for p in recipe_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(recipe_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def image_name(recipe_dir: Path = RECIPE_DIR) -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_digest(recipe_dir)[:12]}"


def dockerfile_base(dockerfile: Path) -> str:
    """The default of ``ARG BASE=...``: the public image the registry build starts from."""
    match = re.search(r"^ARG\s+BASE=(\S+)", dockerfile.read_text(), re.MULTILINE)
    if not match:
        raise EnvironmentProblem(f"{dockerfile}: no `ARG BASE=IMAGE` line; the recipe needs one")
    return match.group(1)


def registry_reachable(client: docker.DockerClient, base: str, progress: Progress = lambda text: None) -> bool:
    """Whether a registry gives ``base``, by pulling it: the one test that tells, and what the build needs anyway.

    The node image is built from ``base`` when this holds, and bootstrapped
    offline when it does not; ``invoke setup`` asks the same question to
    decide whether a bootstrap tool is needed (socklab.setup).
    """
    progress(f"trying the registry for {base}")
    repository, _, tag = base.partition(":")
    try:
        client.api.pull(repository, tag=tag or "latest")
    except (APIError, OSError) as exc:
        progress(f"no registry: {exc.__class__.__name__}; building the base offline instead")
        return False
    return True


def bootstrap_tool(which: Callable[[str], str | None] = shutil.which,
                   tools: Sequence[str] = BOOTSTRAP_TOOLS) -> str | None:
    """The first bootstrap tool on PATH, in order of preference; None if there is none."""
    return next((tool for tool in tools if which(tool)), None)


def import_changes(dockerfile: Path, digest: str) -> list[str]:
    """The Dockerfile's image settings, re-applied to an imported root filesystem."""
    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    return [line for line in lines if _IMPORT_INSTRUCTIONS.match(line)] + [f"LABEL {LABEL_RECIPE}={digest}"]


class ImageBuilder:
    def __init__(
        self,
        client: docker.DockerClient,
        recipe_dir: Path = RECIPE_DIR,
        which: Callable[[str], str | None] = shutil.which,
        tools: Sequence[str] = BOOTSTRAP_TOOLS,
    ) -> None:
        self.client, self.recipe_dir, self.which, self.tools = client, recipe_dir, which, tools

    def ensure(self, progress: Progress) -> str:
        name = image_name(self.recipe_dir)
        try:
            self._tag_latest(self.client.images.get(name))
            return name
        except ImageNotFound:
            pass
        base = dockerfile_base(self.recipe_dir / "Dockerfile")
        progress(f"building the node image {name} (first run after a recipe change)")
        if registry_reachable(self.client, base, progress):
            self._build(name, base, progress)
        else:
            self._bootstrap(name, base, progress)
        self._tag_latest(self.client.images.get(name))
        progress(f"built {name}")
        return name

    def _tag_latest(self, image: EngineImage) -> None:
        """``socklab-node:latest`` is this image, for Dockerfiles ``FROM socklab-node`` (a lookup if it already is)."""
        if NODE_LATEST in image.tags:
            return
        image.tag(IMAGE_REPOSITORY, "latest")

    def _build(self, name: str, base: str, progress: Progress) -> None:
        progress(f"building from {base} with {self.recipe_dir / 'Dockerfile'}")
        digest = recipe_digest(self.recipe_dir)
        try:
            self.client.images.build(path=str(self.recipe_dir), tag=name, buildargs={"BASE": base}, rm=True,
                                     forcerm=True, labels={LABEL_RECIPE: digest})
        except (APIError, docker.errors.BuildError) as exc:
            raise EnvironmentProblem(f"building the node image from {base} failed: {exc}") from None

    def _bootstrap(self, name: str, base: str, progress: Progress) -> None:
        tool = bootstrap_tool(self.which, self.tools)
        if tool is None:
            raise EnvironmentProblem(
                f"Cannot build the node image: no registry answers for {base}, and neither "
                f"{' nor '.join(self.tools)} is installed to build it offline from this host's APT sources. "
                "Install one (`python3 -m invoke setup` does, or `sudo apt-get install -y mmdebstrap`), "
                "or give the engine access to a registry."
            )
        progress(f"bootstrapping Debian with {tool} from this host's APT sources (about a minute)")
        digest = recipe_digest(self.recipe_dir)
        repository, _, tag = name.partition(":")
        with tempfile.TemporaryFile() as errors:
            bootstrap = subprocess.Popen([str(self.recipe_dir / "bootstrap"), tool],
                                         stdout=subprocess.PIPE, stderr=errors)
            try:
                self.client.api.import_image(src=bootstrap.stdout, repository=repository, tag=tag,
                                             changes=import_changes(self.recipe_dir / "Dockerfile", digest))
                import_error = None
            except APIError as exc:
                import_error = exc
            finally:
                if bootstrap.stdout:
                    bootstrap.stdout.close()
                status = bootstrap.wait()
            if status != 0 or import_error:
                errors.seek(0)
                tail = errors.read().decode(errors="replace")[-2000:].strip()
                self._forget(name)
                raise EnvironmentProblem(
                    f"building the node image offline failed (docker/bootstrap {tool} exited {status}"
                    f"{f', import: {import_error}' if import_error else ''}):\n{tail}"
                )

    def _forget(self, name: str) -> None:
        with contextlib.suppress(ImageNotFound, APIError):
            self.client.images.remove(name, force=True)


def folder_digest(folder: Path, node_image: str) -> str:
    """A hash of a build folder: every file's name, content and executable bit, every link, and the node image.

    The node image counts because a Dockerfile may start from it: a new node
    recipe means a new image of one's own.
    """
    digest = hashlib.sha256(node_image.encode() + b"\0")
    for root, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(folders + files):
            path = Path(root, name)
            relative = path.relative_to(folder).as_posix().encode()
            if path.is_symlink():
                digest.update(b"L" + relative + b"\0" + os.readlink(path).encode() + b"\0")
            elif path.is_file():
                executable = b"x" if os.access(path, os.X_OK) else b"-"
                digest.update(b"F" + relative + b"\0" + executable + path.read_bytes() + b"\0")
            elif path.is_dir():
                digest.update(b"D" + relative + b"\0")
    return digest.hexdigest()


def own_image_name(folder: Path, node_image: str) -> str:
    return f"{OWN_REPOSITORY}:{folder_digest(folder, node_image)[:12]}"


class OwnImages:
    """Hosts' own images: found on the engine, or built from a folder (at most one build per image at a time)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self._building: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def ensure(self, host: str, image: Image, node_image: str, progress: Progress) -> str:
        """The image's name on the engine, building it if need be; ImageProblem naming ``hosts.HOST.image`` if not."""
        key = f"hosts.{host}.image"
        if image.build is None:
            return self._find(key, image.name)
        folder = image.build
        if not (folder / "Dockerfile").is_file():
            raise ImageProblem(f"{key}: {folder} has no Dockerfile. Fix: put one there, or name the folder that "
                               "has it")
        name = own_image_name(folder, node_image)
        with self._guard:
            lock = self._building.setdefault(name, threading.Lock())
        with lock:
            if self._exists(key, name):
                return name
            progress(f"building the image of host {host} from {folder}")
            self._build(key, folder, name, node_image)
            progress(f"built {name} for host {host}")
        return name

    def _find(self, key: str, name: str) -> str:
        if not self._exists(key, name):
            raise ImageProblem(
                f"{key}: no image {name!r} on the Docker engine, and socklab never pulls one. Fix: build or load it "
                f"first (`docker build -t {name} FOLDER`, `docker load`), or let socklab build it: "
                'image = { build = "FOLDER" } (a folder with a Dockerfile, FROM socklab-node works with no registry)')
        return name

    def _exists(self, key: str, name: str) -> bool:
        try:
            self.client.images.get(name)
        except ImageNotFound:
            return False
        except APIError as exc:  # a malformed reference: "invalid reference format"
            raise ImageProblem(f"{key}: {name!r} is not an image the engine can look up: "
                               f"{exc.explanation or exc}") from None
        return True

    def _build(self, key: str, folder: Path, name: str, node_image: str) -> None:
        """Build without pulling; a failure removes what the build left and says why, with the log's end."""
        log: list[str] = []
        error = ""
        try:
            chunks: Any = self.client.api.build(
                path=str(folder), tag=name, pull=False, rm=True, forcerm=True, decode=True,
                buildargs={NODE_IMAGE_ARG: node_image},
                labels={LABEL_RECIPE: name.partition(":")[2], LABEL_CONTEXT: str(folder)})
            for chunk in chunks:
                log += str(chunk.get("stream", "")).splitlines()
                if "error" in chunk:
                    error = str(chunk.get("errorDetail", {}).get("message") or chunk["error"])
        except APIError as exc:  # refused before any step: no Dockerfile it can read, a bad instruction
            error = str(exc.explanation or exc)
        except docker.errors.DockerException as exc:
            error = str(exc)
        if not error:
            return
        self._remove_steps(log)
        tail = "\n".join(line for line in log if line.strip())
        tail = "\n".join(tail.splitlines()[-BUILD_LOG_KEPT:])
        raise ImageProblem(f"{key}: the Dockerfile in {folder} failed to build: {error.strip()}"
                           + (f"\nThe end of its build log:\n{tail}" if tail else ""))

    def _remove_steps(self, log: Sequence[str]) -> None:
        """Remove the untagged step images a failed build made: never a base (FROM), one tagged, or one in use."""
        steps, base = [], False
        for line in log:
            if line.startswith("Step "):
                base = bool(re.match(r"Step \S+ : FROM\s", line, re.IGNORECASE))
            elif (match := _STEP_IMAGE.match(line)) and not base:
                steps.append(match.group(1))
        for ref in reversed(steps):  # the last first: a step image with a child cannot go
            with contextlib.suppress(ImageNotFound, APIError):
                found: dict[str, Any] = self.client.api.inspect_image(ref)  # type: ignore[no-untyped-call]  # stubs lack it
                tags = [tag for tag in found.get("RepoTags") or [] if tag != "<none>:<none>"]
                if not tags:
                    self.client.api.remove_image(ref)
