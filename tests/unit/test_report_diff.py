"""The diff between two runs: keys and severities, never handshake times or counters."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.test_report_runs import NOW, degraded_run, healthy_run, unreachable_run
from wgfleet.report import Change, diff_runs, render_diff, to_json


def _doc(run: Any) -> dict[str, Any]:
    return to_json(run)


def test_values_timestamps_and_counters_are_ignored() -> None:
    before = _doc(healthy_run())
    after = _doc(healthy_run(NOW + 300, jitter=9))
    # The runs really differ in everything volatile...
    assert before["run"] != after["run"]
    assert before["gateways"][0]["tunnels"][0] != after["gateways"][0]["tunnels"][0]
    assert before["pairs"][0]["rtt_avg_ms"] != after["pairs"][0]["rtt_avg_ms"]
    assert before["findings"] != after["findings"]  # values and messages moved
    # ...and none of it is a change.
    assert diff_runs(before, after) == []
    assert render_diff([], since="2026-11-25T22:45:00Z") == (
        "no changes since the run of 2026-11-25T22:45:00Z\n"
    )


def test_severity_change_is_reported() -> None:
    changes = diff_runs(_doc(healthy_run()), _doc(degraded_run(NOW + 300, jitter=3)))
    by_subject = {c.subject: c for c in changes}
    missing = by_subject["V1-1 tunnel.exists wg5"]
    assert missing == Change(
        "finding", "V1-1 tunnel.exists wg5", "ok", "critical", "interface wg5 is missing", "V1-1"
    )
    assert missing.worse
    assert by_subject["V3-1 tunnel.handshake wg1"].after == "warning"
    assert by_subject["site1 -> site3"] == Change("pair", "site1 -> site3", "ok 4/4", "WARN 3/4")
    assert [c.kind for c in changes] == ["pair"] * 2 + ["finding"] * 14
    assert not [c for c in changes if c.kind == "gateway"]


def test_repair_is_reported_as_better() -> None:
    changes = diff_runs(_doc(degraded_run()), _doc(healthy_run(NOW + 300)))
    assert len(changes) == 16
    assert not any(c.worse for c in changes)
    text = render_diff(changes, since="2026-11-25T22:45:00Z")
    assert "  finding V1-1 tunnel.exists wg5: critical -> ok" in text


def test_gateway_reachability() -> None:
    changes = diff_runs(_doc(healthy_run()), _doc(unreachable_run()))
    gateway = [c for c in changes if c.kind == "gateway"]
    assert gateway == [
        Change("gateway", "V2-2", "reachable", "unreachable", gateway[0].message, "V2-2")
    ]
    assert "timed out" in gateway[0].message
    text = render_diff(changes, since="T")
    assert "! gateway V2-2: reachable -> unreachable (ssh: connect" in text
    assert "! finding V2-2 (26 checks): ok -> unknown" in text, "unknowns are counted, not listed"
    assert "! finding V2-2 gateway.reachable V2-2: ok -> critical" in text
    assert len(text.splitlines()) == 1 + 1 + 4 + 2


def test_findings_appearing_or_disappearing() -> None:
    before = _doc(healthy_run())
    after = copy.deepcopy(before)
    extra = dict(after["findings"][0], check="tunnel.extra", object="wg99", severity="warning",
                 gateway="V1-1", message="wg99 is not in the plan")  # fmt: skip
    healthy_new = dict(extra, check="tunnel.exists", object="wg7", severity="ok")
    after["findings"] += [extra, healthy_new]
    gone = before["findings"].pop(0)
    changes = diff_runs(before, after)
    assert changes == [
        Change("finding", "V1-1 tunnel.extra wg99", None, "warning", "wg99 is not in the plan",
               "V1-1"),
    ], "an ok finding appearing (or disappearing) is not a change of health"  # fmt: skip
    assert gone["severity"] == "ok"
    text = render_diff(changes, since="T")
    assert "! finding V1-1 tunnel.extra wg99: new, warning (wg99 is not in the plan)" in text
    back = render_diff(diff_runs(after, before), since="T")
    assert "  finding V1-1 tunnel.extra wg99: gone (was warning) (wg99 is not in the plan)" in back


def test_gateways_added_and_removed() -> None:
    before = _doc(healthy_run())
    after = copy.deepcopy(before)
    after["gateways"] = after["gateways"][:-1]
    changes = diff_runs(before, after)
    assert changes == [Change("gateway", "V3-2", "reachable", None, "", "V3-2")]
    assert "gateway V3-2: gone (was reachable)" in render_diff(changes, since="T")


def test_first_run() -> None:
    assert render_diff([], since=None) == "no previous run to compare with\n"


def test_tolerates_an_older_or_partial_report() -> None:
    empty = diff_runs({"schema": "wgfleet.verify/1"}, _doc(healthy_run()))
    assert {(c.kind, c.before) for c in empty} == {("gateway", None), ("pair", None)}
    changes = diff_runs({"findings": None, "pairs": [1, "x"]}, _doc(degraded_run()))
    assert {c.kind for c in changes} == {"gateway", "pair", "finding"}
