"""JUnit XML: one test case per finding, failures typed by severity, valid XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from tests.unit.test_report_runs import HOSTILE, degraded_run, healthy_run, unreachable_run
from wgfleet.findings import Verdict
from wgfleet.report import render_junit


def _suite(text: str) -> tuple[ET.Element, ET.Element]:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return root, suites[0]


def test_one_case_per_finding_and_totals() -> None:
    root, suite = _suite(render_junit(degraded_run()))
    cases = suite.findall("testcase")
    assert len(cases) == 168
    for element in (root, suite):
        assert element.get("tests") == "168"
        assert element.get("failures") == "14"
        assert element.get("skipped") == "0"
        assert element.get("errors") == "0"
        assert element.get("time") == "2.500"
    assert suite.get("timestamp") == "2026-11-25T22:45:00"


def test_classname_is_the_check_and_name_gateway_object() -> None:
    _, suite = _suite(render_junit(degraded_run()))
    cases = {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}
    missing = cases[("tunnel.exists", "V1-1/wg5")]
    failure = missing.find("failure")
    assert failure is not None
    assert failure.get("type") == "critical"
    assert failure.get("message") == "interface wg5 is missing"
    assert "site pair: site1 -> site3" in (failure.text or "")
    warning = cases[("tunnel.handshake", "V3-1/wg1")].find("failure")
    assert warning is not None and warning.get("type") == "warning"
    assert "value: 150.0" in (warning.text or "") and "expected: 180.0" in (warning.text or "")
    healthy = cases[("tunnel.exists", "V1-1/wg3")]
    assert list(healthy) == [], "an ok finding is a passing test case"
    assert ("site.pair", "site1->site3") in cases, "site-pair findings are named by object"


def test_unknown_is_skipped() -> None:
    root, suite = _suite(render_junit(unreachable_run()))
    skipped = [c for c in suite.findall("testcase") if c.find("skipped") is not None]
    assert len(skipped) == 26 == int(root.get("skipped", "0"))
    assert {c.get("name", "").split("/")[0] for c in skipped} == {"V2-2"}
    assert {c.find("skipped").get("message") for c in skipped} == {"gateway unreachable"}


def test_markup_and_control_characters_are_safe() -> None:
    text = render_junit(degraded_run())
    assert "<script>" not in text and "\x1b" not in text
    _, suite = _suite(text)
    case = next(c for c in suite.findall("testcase") if c.get("name") == "V1-1/IBGP_V3_1")
    failure = case.find("failure")
    assert failure is not None
    expected = "IBGP_V3_1 is Active: " + HOSTILE.replace("\x1b", "?")
    assert failure.get("message") == expected, "the parser gets the text back exactly"


def test_healthy_run_passes() -> None:
    root, _ = _suite(render_junit(healthy_run()))
    assert root.get("failures") == "0" and root.get("skipped") == "0"


def test_unreachable_gateway_without_a_finding_still_fails() -> None:
    run = unreachable_run()
    findings = tuple(f for f in run.verdict.findings if f.check != "gateway.reachable")
    bare = replace(run, verdict=replace(run.verdict, findings=findings))
    assert isinstance(bare.verdict, Verdict)
    _, suite = _suite(render_junit(bare))
    case = next(c for c in suite.findall("testcase") if c.get("name") == "V2-2/V2-2")
    failure = case.find("failure")
    assert case.get("classname") == "gateway.reachable"
    assert failure is not None and failure.get("type") == "critical"
    assert "timed out" in (failure.get("message") or "")
