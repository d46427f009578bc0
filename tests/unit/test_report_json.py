"""The JSON report: schema wgfleet.verify/1, stable order, no secrets, loadable for the diff."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.test_report_runs import HOSTILE, NOW, degraded_run, healthy_run, unreachable_run
from wgfleet.findings import Finding, Verdict
from wgfleet.report import SCHEMA, ReportFormatError, dumps, from_json, to_json

REPORT = Path(__file__).resolve().parents[2] / "src" / "wgfleet" / "report"
TOP_KEYS = [
    "schema", "run", "inventory", "severity", "counts", "unreachable", "pairs", "findings",
    "gateways",
]  # fmt: skip
FINDING_KEYS = [
    "check", "severity", "gateway", "object", "message", "value", "expected", "site_pair",
]  # fmt: skip
TUNNEL_KEYS = [
    "interface", "peer", "planned", "present", "endpoint", "handshake_age_seconds", "rx_bytes",
    "tx_bytes", "state",
]  # fmt: skip
SESSION_KEYS = [
    "name", "peer", "interface", "planned", "bgp_state", "since", "last_error",
    "routes_imported", "routes_exported", "state",
]  # fmt: skip


def test_top_level_layout_and_schema() -> None:
    document = json.loads(dumps(degraded_run()))
    assert list(document) == TOP_KEYS
    assert document["schema"] == SCHEMA == "wgfleet.verify/1"
    assert document["run"] == {
        "started": "2026-11-25T22:45:00Z",
        "finished": "2026-11-25T22:45:02Z",
        "started_epoch": NOW,
        "finished_epoch": NOW + 2.5,
        "duration_seconds": 2.5,
    }
    assert document["inventory"]["path"] == "inventory"
    assert [s["name"] for s in document["inventory"]["sites"]] == ["site1", "site2", "site3"]
    assert document["inventory"]["sites"][0]["gateways"] == ["V1-1", "V1-2"]
    assert document["severity"] == "critical"
    assert document["counts"] == {
        "gateways": 6, "unreachable": 0, "findings": 168,
        "critical": 7, "warning": 7, "unknown": 0, "ok": 154,
    }  # fmt: skip


def test_pairs_form_the_matrix() -> None:
    pairs = to_json(degraded_run())["pairs"]
    assert [(p["local"], p["remote"]) for p in pairs] == [
        (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2),
    ]  # fmt: skip
    one_three = pairs[1]
    assert one_three == {
        "local": 1, "local_name": "site1", "remote": 3, "remote_name": "site3",
        "severity": "warning", "paths_up": 3, "paths_expected": 4,
        "loss_percent": 0.0, "rtt_avg_ms": 0.5,
    }  # fmt: skip


def test_every_finding_with_every_field() -> None:
    document = to_json(degraded_run())
    assert len(document["findings"]) == 168
    assert all(list(f) == FINDING_KEYS for f in document["findings"])
    missing = next(
        f for f in document["findings"] if (f["gateway"], f["check"], f["object"])
        == ("V1-1", "tunnel.exists", "wg5")
    )  # fmt: skip
    assert missing["severity"] == "critical"
    assert missing["site_pair"] == [1, 3]
    keys = [(f["gateway"], f["check"], f["object"]) for f in document["findings"]]
    assert keys == sorted(keys), "findings are sorted by key, so files diff cleanly"


def test_gateway_summary_tunnels_and_sessions() -> None:
    gateways = {g["name"]: g for g in to_json(degraded_run())["gateways"]}
    assert list(gateways) == ["V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2"]
    v11 = gateways["V1-1"]
    assert v11["reachable"] is True and v11["site"] == 1
    tunnels = {t["interface"]: t for t in v11["tunnels"]}
    assert all(list(t) == TUNNEL_KEYS for t in v11["tunnels"])
    assert tunnels["wg3"]["peer"] == "V2-1"
    assert tunnels["wg3"]["handshake_age_seconds"] == 20.0
    assert tunnels["wg3"]["rx_bytes"] == 8000 and tunnels["wg3"]["state"] == "ok"
    assert tunnels["wg5"]["present"] is False
    assert tunnels["wg5"]["handshake_age_seconds"] is None
    assert tunnels["wg5"]["state"] == "critical"
    sessions = {s["name"]: s for s in v11["sessions"]}
    assert all(list(s) == SESSION_KEYS for s in v11["sessions"])
    assert len(sessions) == 8
    assert sessions["IBGP_V2_1"]["bgp_state"] == "Established"
    assert sessions["IBGP_V2_1"]["routes_imported"] == 2
    assert sessions["IBGP_V3_1"]["bgp_state"] == "Active"
    assert sessions["IBGP_V3_1"]["last_error"] == HOSTILE
    assert sessions["IBGP_V3_1"]["state"] == "critical"


def test_unreachable_gateway_is_kept() -> None:
    document = to_json(unreachable_run())
    assert document["unreachable"] == ["V2-2"]
    assert document["counts"]["unreachable"] == 1
    v22 = next(g for g in document["gateways"] if g["name"] == "V2-2")
    assert v22["reachable"] is False
    assert "timed out" in v22["error"]
    assert v22["namespace"] is None
    assert {t["present"] for t in v22["tunnels"]} == {None}
    assert {s["bgp_state"] for s in v22["sessions"]} == {None}


def test_output_is_stable_and_round_trips() -> None:
    text = dumps(degraded_run())
    assert text == dumps(degraded_run())
    assert text.endswith("}\n")
    assert from_json(text) == json.loads(text)


def test_never_a_private_key() -> None:
    # Observations cannot hold one; the report writes chosen fields only, not objects.
    text = dumps(healthy_run())

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    names = keys(json.loads(text))
    assert not {n for n in names if "key" in n or "private" in n or "psk" in n}, names
    assert "PUBLIC-" not in text, "keys are not needed in a report, public ones neither"


def test_non_finite_values_become_null() -> None:
    run = healthy_run()
    odd = Finding("ping.site", "critical", "V1-1", "2001:db8:a2::1", "no answer", math.inf,
                  math.nan)  # fmt: skip
    verdict = Verdict((*run.verdict.findings, odd), run.verdict.pairs, (), run.verdict.sites)
    document = json.loads(dumps(replace(run, verdict=verdict)))  # strict JSON: no NaN
    found = next(f for f in document["findings"] if f["check"] == "ping.site")
    assert found["value"] is None and found["expected"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "expected an object"),
        ('{"schema": "something/1"}', "not a wgfleet verify report"),
        ('{"schema": "wgfleet.verify/2"}', "not supported"),
        ('{"schema": "wgfleet.verify/1", "findings": {}}', "'findings' must be a list"),
    ],
)
def test_from_json_refuses_what_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(ReportFormatError, match=message) as caught:
        from_json(text, "reports/x/report.json")
    assert "reports/x/report.json" in str(caught.value)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(p for p in REPORT.glob("*.py") if p.name not in ("store.py", "__init__.py")),
    ids=lambda p: p.name,
)  # fmt: skip
def test_writers_are_pure(path: Path) -> None:
    """Only store.py touches the filesystem; writers import no I/O modules."""
    bad = _imports(path) & {"os", "pathlib", "shutil", "subprocess", "socket", "tempfile", "io"}
    assert not bad, f"{path.name} imports {sorted(bad)}"
    assert "open(" not in path.read_text()
