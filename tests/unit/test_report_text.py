"""Terminal summary, quiet mode for cron, and the Markdown report."""

from __future__ import annotations

import re
from dataclasses import replace

from tests.unit.test_report_runs import degraded_run, healthy_run, unreachable_run
from wgfleet.report import render_markdown, render_quiet, render_terminal, summary_line
from wgfleet.report.markdown import md_escape

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _matrix(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("local \\ remote"))
    rows = []
    for line in lines[start + 1 : start + 4]:
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_summary_line() -> None:
    assert (
        summary_line(healthy_run()) == "verify: 6 gateways, 0 unreachable, 0 critical, 0 warnings"
    )
    assert summary_line(degraded_run()) == (
        "verify: 6 gateways, 0 unreachable, 7 critical, 7 warnings"
    )
    assert summary_line(unreachable_run()) == (
        "verify: 6 gateways, 1 unreachable, 1 critical, 0 warnings, 26 unknown"
    )


def test_terminal_matrix_rows_local_columns_remote() -> None:
    text = render_terminal(degraded_run())
    assert text.splitlines()[0].startswith("wgfleet verify: CRITICAL at 2026-11-25T22:45:00Z")
    assert _matrix(text) == [
        ["site1", "-", "ok 4/4", "WARN 3/4"],
        ["site2", "ok 4/4", "-", "ok 4/4"],
        ["site3", "WARN 3/4", "ok 4/4", "-"],
    ]
    assert text.rstrip().endswith("verify: 6 gateways, 0 unreachable, 7 critical, 7 warnings")


def test_terminal_groups_problems_by_severity_worst_first() -> None:
    text = render_terminal(degraded_run())
    critical, warning = text.index("CRITICAL (7)"), text.index("WARNING (7)")
    assert critical < warning
    section = text[critical:warning]
    assert "V1-1  tunnel.exists     wg5: interface wg5 is missing" in section
    assert "route.ecmp" not in section
    assert "V3-1  tunnel.handshake  wg1: handshake 150 s ago" in text[warning:]
    assert "OK" not in text.split("\n", 1)[1], "ok findings are not listed"


def test_terminal_healthy() -> None:
    text = render_terminal(healthy_run())
    assert "wgfleet verify: OK" in text
    assert "all 168 checks ok" in text
    assert "CRITICAL" not in text and "WARNING" not in text


def test_terminal_unreachable_gateway_on_one_line() -> None:
    text = render_terminal(unreachable_run())
    assert "V2-2  gateway.reachable  V2-2: ssh: connect to 127.77.2.2" in text
    assert "UNKNOWN (26)\n  V2-2: 26 checks not run (gateway unreachable)" in text
    assert _matrix(text)[1] == ["site2", "WARN 2/4", "-", "WARN 2/4"]


def test_terminal_never_passes_escape_sequences_through() -> None:
    plain = render_terminal(degraded_run())
    assert "\x1b" not in plain
    coloured = render_terminal(degraded_run(), color=True)
    assert ANSI.sub("", coloured) == plain, "colour changes nothing but the escapes"
    assert "\x1b[33mWARN 3/4\x1b[0m" in coloured


def test_quiet_is_silent_when_healthy() -> None:
    assert render_quiet(healthy_run()) == ""


def test_quiet_prints_only_problem_lines() -> None:
    lines = render_quiet(degraded_run()).splitlines()
    assert len(lines) == 14 + 1
    assert lines[0].startswith("CRIT V1-1 bgp.established IBGP_V3_1: IBGP_V3_1 is Active")
    assert "CRIT V1-1 tunnel.exists wg5: interface wg5 is missing" in lines
    assert "WARN - site.pair site1->site3: 3/4 paths up: redundancy degraded" in lines
    assert lines[-1] == "verify: 6 gateways, 0 unreachable, 7 critical, 7 warnings"
    assert not any("\x1b" in line for line in lines)


def test_quiet_unreachable() -> None:
    assert render_quiet(unreachable_run()).splitlines() == [
        "CRIT V2-2 gateway.reachable V2-2: ssh: connect to 127.77.2.2 port 2222: "
        "timed out after 10 s",
        "? V2-2: 26 checks not run (gateway unreachable)",
        "verify: 6 gateways, 1 unreachable, 1 critical, 0 warnings, 26 unknown",
    ]


def test_markdown_matrix_and_findings_tables() -> None:
    text = render_markdown(degraded_run())
    lines = text.splitlines()
    assert lines[0] == "# wgfleet verify: ❌ CRITICAL"
    header = lines.index("| local \\\\ remote | **site1** | **site2** | **site3** |")
    assert lines[header + 1] == "| --- | --- | --- | --- |"
    assert lines[header + 2] == "| **site1** | — | ✅ ok 4/4 | ⚠️ WARN 3/4 |"
    assert lines[header + 4] == "| **site3** | ⚠️ WARN 3/4 | ✅ ok 4/4 | — |"
    rows = [line for line in lines if line.startswith("| ❌ critical") or line.startswith("| ⚠️")]
    assert len(rows) == 14
    assert "| ❌ critical | V1-1 | `tunnel.exists` | wg5 | interface wg5 is missing |  |  |" in rows
    assert all(row.count(" | ") == 6 for row in rows), "no cell breaks the table"
    assert "154 checks ok." in lines


def test_markdown_escapes_markup() -> None:
    text = render_markdown(degraded_run())
    assert "<script>" not in text
    assert "\\<script\\>alert(\"x\")\\</script\\> &amp; 'quoted' \\| \\`tick\\` ?\\[31m" in text
    assert md_escape("a|b\nc") == "a\\|b?c"


def test_markdown_unreachable() -> None:
    text = render_markdown(unreachable_run())
    assert "| ❔ unknown | V2-2 |  |  | 26 checks not run (gateway unreachable) |  |  |" in text


def test_quiet_speaks_for_an_unreachable_gateway_even_without_findings() -> None:
    run = unreachable_run()
    bare = replace(run, verdict=replace(run.verdict, findings=()))
    assert render_quiet(bare).splitlines() == [
        "UNREACHABLE V2-2: ssh: connect to 127.77.2.2 port 2222: timed out after 10 s",
        "verify: 6 gateways, 1 unreachable, 0 critical, 0 warnings",
    ]
    assert "UNREACHABLE (1)\n  V2-2: ssh: connect" in render_terminal(bare)
