"""The HTML page (structure, escaping, no external resources) and its SVG topology."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from tests.fleets import hub_spoke_fleet, mesh_fleet
from tests.unit.test_report_runs import degraded_run, healthy_run, unreachable_run
from wgfleet.allocations import Allocations
from wgfleet.findings import Verdict, VerifyRun
from wgfleet.model import Fleet
from wgfleet.observation import Observation
from wgfleet.plan import plan_fleet
from wgfleet.report import RunView, render_html, render_topology
from wgfleet.report.svg import COLORS

SVG = "{http://www.w3.org/2000/svg}"


class _Page(HTMLParser):
    """Collects elements with their attributes, and the matrix cells by row."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.matrix: list[list[dict[str, str]]] = []
        self._in_matrix = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "table":
            self._in_matrix = attributes.get("id") == "site-matrix"
        elif self._in_matrix and tag == "tr":
            self.matrix.append([])
        elif self._in_matrix and tag == "td":
            self.matrix[-1].append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_matrix = False


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def test_matrix_cells_have_severity_attribute_and_class() -> None:
    page = _parse(render_html(degraded_run()))
    rows = [row for row in page.matrix if row]
    assert len(rows) == 3 and all(len(row) == 3 for row in rows)
    severities = [[cell["data-severity"] for cell in row] for row in rows]
    assert severities == [
        ["none", "ok", "warning"],
        ["ok", "none", "ok"],
        ["warning", "ok", "none"],
    ]
    for row in rows:
        for cell in row:
            expected = "self" if cell["data-severity"] == "none" else f"sev-{cell['data-severity']}"
            assert cell["class"] == expected


def test_header_shows_overall_status() -> None:
    page = _parse(render_html(degraded_run()))
    header = next(a for tag, a in page.elements if tag == "header")
    assert header["data-severity"] == "critical" and "sev-critical" in header["class"]
    healthy = _parse(render_html(healthy_run()))
    assert next(a for t, a in healthy.elements if t == "header")["data-severity"] == "ok"


def test_findings_table_lists_problems() -> None:
    text = render_html(degraded_run())
    rows = re.findall(r'<tr data-severity="(\w+)"><td class="severity', text)
    assert rows == ["critical"] * 7 + ["warning"] * 7
    assert "154 further checks ok" in text
    assert "Nothing flagged: all 168 checks ok." in render_html(healthy_run())


def test_everything_is_escaped() -> None:
    text = render_html(degraded_run())
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in text
    assert "\x1b" not in text


def test_self_contained_no_external_resources() -> None:
    text = render_html(degraded_run())
    lowered = text.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url("):
        assert needle not in lowered, needle
    assert re.findall(r"https?://[^\s\"']+", text) == ["http://www.w3.org/2000/svg"]
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def _svg(run: VerifyRun) -> ET.Element:
    return ET.fromstring(render_topology(RunView(run)))


def test_topology_sites_gateways_and_tunnels() -> None:
    svg = _svg(degraded_run())
    sites = svg.findall(f".//{SVG}g[@class='site']")
    assert [s.get("data-site") for s in sites] == ["1", "2", "3"]
    nodes = svg.findall(f".//{SVG}g[@data-gateway]")
    assert sorted(n.get("data-gateway") for n in nodes) == [
        "V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2",
    ]  # fmt: skip
    lines = svg.findall(f".//{SVG}line[@data-a]")
    assert len(lines) == 12, "one line per tunnel (gateway pair), not per end"
    states = {(ln.get("data-a"), ln.get("data-b")): ln.get("data-severity") for ln in lines}
    assert states[("V1-1", "V3-1")] == "critical"
    assert {s for pair, s in states.items() if pair != ("V1-1", "V3-1")} == {"ok"}
    broken = next(ln for ln in lines if ln.get("data-b") == "V3-1" and ln.get("data-a") == "V1-1")
    assert broken.get("stroke") == COLORS["critical"]
    assert broken.get("stroke-dasharray"), "critical is dashed, not only red"


def test_topology_unreachable_gateway() -> None:
    svg = _svg(unreachable_run())
    node = svg.find(f".//{SVG}g[@data-gateway='V2-2']")
    assert node is not None and node.get("data-severity") == "critical"
    lines = svg.findall(f".//{SVG}line[@data-a]")
    to_v22 = [ln for ln in lines if "V2-2" in (ln.get("data-a"), ln.get("data-b"))]
    assert len(to_v22) == 4
    assert {ln.get("data-severity") for ln in to_v22} == {"unknown"}


def _bare_run(fleet: Fleet) -> VerifyRun:
    plan, _ = plan_fleet(fleet, Allocations())
    observations = {g.name: Observation(g.name, reachable=False) for g in plan.gateways}
    return VerifyRun(plan, observations, Verdict((), ()), 0.0, 1.0)


def test_topology_of_larger_fleets_is_well_formed() -> None:
    for fleet in (mesh_fleet(10), hub_spoke_fleet(2, 5)):
        run = _bare_run(fleet)
        svg = _svg(run)
        assert len(svg.findall(f".//{SVG}g[@class='site']")) == len(run.plan.sites)
        assert len(svg.findall(f".//{SVG}line[@data-a]")) == len(RunView(run).links())
        width, height = (float(v) for v in svg.get("viewBox", "").split()[2:])
        for circle in svg.iter(f"{SVG}circle"):
            assert 0 < float(circle.get("cx", -1)) < width
            assert 0 < float(circle.get("cy", -1)) < height
        _parse(render_html(run))  # and the page around it renders
