"""The README and the schema stay true: its catalogue is the files', its keys the model's, its test command CI's."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from socklab import catalogue, programs, schema
from tests.helpers import ROOT

README = ROOT / "README.md"


def quick_start() -> list[str]:
    block = README.read_text().split("<!-- quickstart:start -->")[1].split("<!-- quickstart:end -->")[0]
    return [line for line in block.strip().strip("`").splitlines() if line and not line.startswith("sh")]


def test_the_quick_start_is_two_commands() -> None:
    run_catalogue, run_tests = quick_start()
    assert "invoke run --all" in run_catalogue
    assert "tox" in run_tests


def test_ci_runs_the_readmes_test_command_verbatim() -> None:
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.strip() and not line.strip().startswith("#")]
    assert ci_commands[-1] == quick_start()[1]


def test_the_readme_catalogue_is_generated_from_the_files() -> None:
    block = README.read_text().split(catalogue.README_START)[1].split(catalogue.README_END)[0]
    assert block.strip() == catalogue.markdown(catalogue.load()), "run `invoke docs` to refresh README.md"


def test_the_readme_key_list_is_generated_from_the_model() -> None:
    assert schema.between(README, schema.README_START, schema.README_END) == schema.markdown(), \
        "run `invoke docs` to refresh README.md"


def test_the_committed_schema_is_current() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.schema_text(), "run `invoke docs` to refresh the schema"


@pytest.mark.parametrize("path", catalogue.paths(), ids=lambda p: p.stem)
def test_every_catalogue_file_names_the_schema_and_meets_it(path: Path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == schema.SCHEMA_LINE
    assert (path.parent / schema.SCHEMA_LINE.split()[-1]).resolve() == schema.SCHEMA_FILE.resolve()
    jsonschema.Draft4Validator(schema.json_schema()).validate(tomllib.loads(text))


BAD = Path(__file__).parent / "bad_scenarios"


@pytest.mark.parametrize("name", ["ipv6-wrong-type", "parallel-checks-wrong-type", "unknown-probe-key",
                                  "unknown-scenario-key", "unknown-top-level-key", "unknown-outcome", "unknown-user",
                                  "loss-out-of-range", "probe-timeout-out-of-range", "invalid-host-name",
                                  "missing-title", "rate-not-a-rate", "unknown-protocol", "host-networks-wrong-type"])
def test_the_schema_flags_what_a_single_key_gets_wrong(name: str) -> None:
    """An editor shows these as you type: each is one key's type, value, range or name."""
    data = tomllib.loads((BAD / f"{name}.toml").read_text())
    assert not jsonschema.Draft4Validator(schema.json_schema()).is_valid(data)


def test_the_schema_is_a_valid_draft_4_schema() -> None:
    jsonschema.Draft4Validator.check_schema(json.loads(schema.SCHEMA_FILE.read_text()))


def test_the_architecture_names_only_files_the_repository_has() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"(?<![\w./-])((?:socklab|nodes|tests|scenarios|docker|docs)/[\w./-]*[\w/])", text))
    assert len(named) > 20
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/ARCHITECTURE.md names what the repository lacks: {missing}"


def test_nothing_cites_a_design_document_the_repository_lacks() -> None:
    tracked = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".toml", ".ini") and ".git" not in p.parts
               and ".tox" not in p.parts and p.is_file() and p != Path(__file__)]
    citing = [str(p.relative_to(ROOT)) for p in tracked if "DESIGN.md" in p.read_text(errors="replace")]
    assert not citing, citing


def test_the_readme_names_every_node_program() -> None:
    """A program a scenario can run is described in the README's table of the programs on the hosts."""
    section = README.read_text(encoding="utf-8").split("## The programs on the hosts", 1)[1].split("\n## ", 1)[0]
    described = set(re.findall(r"^\| `(\w+)`", section, re.MULTILINE))
    assert set(programs.available()) - {"guard"} <= described, "describe each node program in README.md's table"
