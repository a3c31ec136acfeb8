"""Judging what a check observed against what it claims.

A check holds when the client's outcome is the expected word and every
claim about its evidence (a value, or a number within a range) is true of
the client's own JSON result; a check that runs a command of the user's own
holds when its exit status and output are as claimed (``CommandEnd``). The
verdict keeps the evidence and says, in one sentence, why a check did not
hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from socklab.model import Check, CommandEnd, Expectation
from socklab.results import NOT_FOUND, TIMED_OUT, CheckResult, Observation

Render = Callable[[str], str]


def unmet(claim: Expectation, evidence: dict[str, Any], render: Render) -> str | None:
    """Why ``claim`` does not hold of ``evidence``, or None if it does."""
    if claim.key not in evidence:
        return f"the result has no {claim.key!r}"
    value = evidence[claim.key]
    if claim.low is not None and claim.high is not None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not claim.low <= value <= claim.high:
            return f"{claim.key} = {value!r}, not within [{claim.low:g}, {claim.high:g}]"
        return None
    wanted = render(claim.equals) if isinstance(claim.equals, str) else claim.equals
    if value != wanted:
        return f"{claim.key} = {value!r}, not {wanted!r}"
    return None


def judge(check: Check, host: str, seen: Observation, render: Render) -> CheckResult:
    name = check.name if len(check.hosts) == 1 else f"{check.name} [{host}]"
    if isinstance(check.expect, CommandEnd):
        return judge_exit(check.expect, name, host, seen, render)
    result = CheckResult(name, host, seen.command, check.expect.value, seen.outcome, seen.evidence, seen.detail)
    if seen.outcome != check.expect.value:
        if not result.detail:
            errno = seen.evidence.get("errno")
            result.detail = f"expected {result.expected}, observed {result.observed}" + (f" ({errno})" if errno else "")
        return result
    result.unmet = [problem for claim in check.evidence if (problem := unmet(claim, seen.evidence, render))]
    if result.unmet:
        result.detail = f"{result.observed} as expected, but " + "; ".join(result.unmet)
    return result


def judge_exit(claim: CommandEnd, name: str, host: str, seen: Observation, render: Render) -> CheckResult:
    """A command of the user's own: its exit status, and regular expressions its output must contain."""
    evidence: dict[str, Any] = {"exit_code": seen.exit_code, "stdout": seen.stdout, "stderr": seen.stderr}
    observed = f"exit {seen.exit_code}"
    result = CheckResult(name, host, seen.command, render(str(claim)), observed, evidence)
    unmet = [] if seen.exit_code == claim.exit else [f"exit status {seen.exit_code}, not {claim.exit}"]
    for stream, pattern in (("stdout", claim.stdout), ("stderr", claim.stderr)):
        if pattern is not None and not re.search(render(pattern), getattr(seen, stream)):
            unmet.append(f"{stream} has no match for /{render(pattern)}/")
    if unmet:
        result.unmet = unmet
        stopped = seen.exit_code in (TIMED_OUT, NOT_FOUND)  # say why: it overran, or is not on the host
        result.detail = "; ".join(unmet) + (f" ({seen.detail})" if stopped else "")
    else:
        result.observed = result.expected
    return result
