"""The JUnit XML report for CI systems: one test case per finding (pure).

``classname`` is the check (``tunnel.handshake``), ``name`` is ``gateway/object`` (the
object alone for site-pair findings). Warnings and criticals are ``<failure>`` elements
whose ``type`` is the severity; unknown findings (could not be checked) are
``<skipped>``. An unreachable gateway that no ``gateway.reachable`` finding names still
gets a failing test case, so CI never passes while a gateway was not checked. The XML is
built with :mod:`xml.etree.ElementTree` (escaping included) and text is stripped of the
control characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from wgfleet.findings import Finding, VerifyRun
from wgfleet.report.view import RunView, iso_time, printable


def _details(finding: Finding, view: RunView) -> str:
    lines = [f"check: {finding.check}", f"object: {printable(finding.object)}"]
    if finding.gateway:
        lines.append(f"gateway: {finding.gateway}")
    if finding.value is not None:
        lines.append(f"value: {printable(str(finding.value))}")
    if finding.expected is not None:
        lines.append(f"expected: {printable(str(finding.expected))}")
    if finding.site_pair:
        local, remote = finding.site_pair
        lines.append(f"site pair: {view.site_name(local)} -> {view.site_name(remote)}")
    return "\n".join(lines)


def _case(parent: ET.Element, finding: Finding, view: RunView) -> None:
    name = f"{finding.gateway}/{finding.object}" if finding.gateway else finding.object
    case = ET.SubElement(
        parent, "testcase", classname=finding.check, name=printable(name), time="0"
    )
    message = printable(finding.message)
    if finding.severity in ("warning", "critical"):
        failure = ET.SubElement(case, "failure", type=finding.severity, message=message)
        failure.text = _details(finding, view)
    elif finding.severity == "unknown":
        ET.SubElement(case, "skipped", message=message)


def render_junit(run: VerifyRun, *, view: RunView | None = None) -> str:
    """Return the JUnit XML report (``<testsuites>`` holding one ``<testsuite>``).

    Args:
        run: The verification run.
        view: The run's view when the caller already built one.

    Returns:
        An XML document with declaration, UTF-8.
    """
    view = view or RunView(run)
    findings = list(view.findings)
    for gateway in view.unreported_unreachable():
        findings.append(
            Finding(
                "gateway.reachable",
                "critical",
                gateway.name,
                gateway.name,
                f"unreachable: {gateway.error or 'no answer'}",
            )
        )
    failures = sum(1 for f in findings if f.severity in ("warning", "critical"))
    skipped = sum(1 for f in findings if f.severity == "unknown")
    duration = f"{max(0.0, run.finished - run.started):.3f}"
    totals = {
        "tests": str(len(findings)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": duration,
    }
    root = ET.Element("testsuites", {"name": "wgfleet verify", **totals})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": "wgfleet.verify",
            "timestamp": iso_time(run.started).removesuffix("Z"),
            "hostname": "wgfleet",
            **totals,
        },
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("inventory", run.inventory),
        ("severity", view.severity),
        ("summary", view.summary_line()),
    ):
        ET.SubElement(properties, "property", name=key, value=printable(value))
    for finding in sorted(findings, key=lambda f: (f.check, f.gateway, f.object)):
        _case(suite, finding, view)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
