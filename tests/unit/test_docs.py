"""The README stays true: its catalogue is the files', its test command is CI's."""

from __future__ import annotations

from socklab import catalogue
from tests.conftest import ROOT

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
