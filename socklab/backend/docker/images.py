"""The node image: found by its recipe's hash, built only when the recipe changed.

Where a registry is reachable, the Dockerfile builds on a public Debian
image. Where none is (an offline lab room, this project's CI), the root
filesystem comes from the host's own APT sources through ``docker/bootstrap``
(mmdebstrap or debootstrap) and is streamed into the engine's import, with
the Dockerfile's ENV, WORKDIR and CMD applied there. Either way the image is
tagged with the recipe hash, so an unchanged recipe costs one lookup.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from docker.errors import APIError, ImageNotFound

import docker
from socklab.backend.base import Progress
from socklab.constants import IMAGE_REPOSITORY, LABEL_RECIPE, RECIPE_DIR
from socklab.errors import EnvironmentProblem

BOOTSTRAP_TOOLS = ("mmdebstrap", "debootstrap")
_IMPORT_INSTRUCTIONS = re.compile(r"^(ENV|WORKDIR|CMD|USER|LABEL)\s", re.IGNORECASE)


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
            self.client.images.get(name)
            return name
        except ImageNotFound:
            pass
        base = dockerfile_base(self.recipe_dir / "Dockerfile")
        progress(f"building the node image {name} (first run after a recipe change)")
        if self._pull(base, progress):
            self._build(name, base, progress)
        else:
            self._bootstrap(name, base, progress)
        progress(f"built {name}")
        return name

    def _pull(self, base: str, progress: Progress) -> bool:
        progress(f"trying the registry for {base}")
        repository, _, tag = base.partition(":")
        try:
            self.client.api.pull(repository, tag=tag or "latest")
        except (APIError, OSError) as exc:
            progress(f"no registry: {exc.__class__.__name__}; building the base offline instead")
            return False
        return True

    def _build(self, name: str, base: str, progress: Progress) -> None:
        progress(f"building from {base} with {self.recipe_dir / 'Dockerfile'}")
        digest = recipe_digest(self.recipe_dir)
        try:
            self.client.images.build(path=str(self.recipe_dir), tag=name, buildargs={"BASE": base}, rm=True,
                                     forcerm=True, labels={LABEL_RECIPE: digest})
        except (APIError, docker.errors.BuildError) as exc:
            raise EnvironmentProblem(f"building the node image from {base} failed: {exc}") from None

    def _bootstrap(self, name: str, base: str, progress: Progress) -> None:
        tool = next((t for t in self.tools if self.which(t)), None)
        if tool is None:
            raise EnvironmentProblem(
                f"Cannot build the node image: no registry answers for {base}, and neither "
                f"{' nor '.join(self.tools)} is installed to build it offline from this host's APT sources. "
                "Install one (`sudo apt-get install mmdebstrap`), or give the engine access to a registry."
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
