"""The node image: found by its recipe's hash, and a clear refusal when it cannot be built."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from socklab.backend.docker.images import ImageBuilder, image_name, recipe_digest
from socklab.constants import RECIPE_DIR
from socklab.errors import EXIT_BAD_INPUT, EnvironmentProblem


def recipe_copy(tmp_path: Path, base: str) -> Path:
    """The project's recipe with another base: a new hash, so no cached image matches it."""
    recipe = tmp_path / "docker"
    shutil.copytree(RECIPE_DIR, recipe)
    dockerfile = recipe / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ARG BASE=debian:bookworm-slim", f"ARG BASE={base}"))
    return recipe


def test_the_image_is_named_after_its_recipe(engine, tmp_path: Path) -> None:
    name = engine.ensure_image(lambda text: None)
    assert name == image_name() and name.endswith(recipe_digest()[:12])
    assert recipe_digest(recipe_copy(tmp_path, "debian:other")) != recipe_digest()


def test_a_cached_image_builds_nothing(engine) -> None:
    said: list[str] = []
    builder = ImageBuilder(engine.client, which=lambda tool: pytest.fail("no tool may be needed"))
    assert builder.ensure(said.append) == image_name()
    assert said == []


def test_no_registry_and_no_bootstrap_tool_says_what_to_install(engine, tmp_path: Path) -> None:
    """The base lives on a registry host that cannot resolve, and no bootstrap tool is found."""
    recipe = recipe_copy(tmp_path, "registry.socklab.invalid/debian:bookworm-slim")
    builder = ImageBuilder(engine.client, recipe_dir=recipe, which=lambda tool: None)
    with pytest.raises(EnvironmentProblem) as refused:
        builder.ensure(lambda text: None)
    assert refused.value.exit_status == EXIT_BAD_INPUT
    assert "mmdebstrap" in str(refused.value) and "apt-get install" in str(refused.value)
    with pytest.raises(ImageNotFound):
        engine.client.images.get(image_name(recipe))
