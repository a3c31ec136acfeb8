"""Judging what a check observed against what it claims.

A check holds when the client's outcome is the expected word and every
claim about its evidence (a value, or a number within a range) is true of
the client's own JSON result. The verdict keeps the evidence and says, in
one sentence, why a check did not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from socklab.model import Check, Expectation
from socklab.results import CheckResult, Observation

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
