"""JUnit XML: one test suite per scenario, one test case per check, for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from socklab.results import RunResult, Status


def render(run: RunResult) -> bytes:
    suites = ET.Element("testsuites", name="socklab", time=f"{run.seconds:.3f}")
    for scenario in run.scenarios:
        failures = sum(not c.passed for c in scenario.checks)
        errors = 1 if scenario.error else 0
        suite = ET.SubElement(suites, "testsuite", name=scenario.name, tests=str(len(scenario.checks) + errors),
                              failures=str(failures), errors=str(errors), time=f"{scenario.seconds:.3f}",
                              skipped=str(int(scenario.status == Status.SKIPPED)))
        if scenario.error:
            case = ET.SubElement(suite, "testcase", classname=scenario.name, name="lab")
            tag = "skipped" if scenario.status == Status.SKIPPED else "error"
            ET.SubElement(case, tag, message=scenario.error.splitlines()[0][:200]).text = scenario.error
        for check in scenario.checks:
            case = ET.SubElement(suite, "testcase", classname=scenario.name, name=check.name,
                                 time=f"{check.evidence.get('elapsed_ms', 0) / 1000:.3f}")
            if not check.passed:
                ET.SubElement(case, "failure", message=check.detail or f"expected {check.expected}",
                              type=check.observed).text = json.dumps(check.evidence, indent=2, ensure_ascii=False)
            ET.SubElement(case, "system-out").text = f"{check.host}$ {check.action}\n{json.dumps(check.evidence)}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
