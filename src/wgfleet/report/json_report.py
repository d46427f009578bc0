"""The JSON report: schema ``wgfleet.verify/1`` (docs/report-schema.md), written and read back.

Only chosen fields are written, never raw objects, so nothing the observations do not
expose (and they never hold a private key) can slip into the file. Key order is fixed by
this module and lists are sorted, so two runs of a healthy fleet differ only in times and
counters.
"""

from __future__ import annotations

import json
import math
from typing import Any

from wgfleet.errors import WgfleetError
from wgfleet.findings import Finding, PairStatus, VerifyRun
from wgfleet.report.view import (
    SCHEMA,
    SEVERITIES,
    GatewayView,
    RunView,
    SessionView,
    TunnelView,
    iso_time,
)

SCHEMA_NAME, _, _VERSION = SCHEMA.partition("/")
SCHEMA_VERSION = int(_VERSION)


class ReportFormatError(WgfleetError):
    """A stored report cannot be read: not JSON, or another schema or major version."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


def _number(value: float | int | str | None) -> float | int | str | None:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "check": finding.check,
        "severity": finding.severity,
        "gateway": finding.gateway,
        "object": finding.object,
        "message": finding.message,
        "value": _number(finding.value),
        "expected": _number(finding.expected),
        "site_pair": list(finding.site_pair) if finding.site_pair else None,
    }


def _pair(view: RunView, pair: PairStatus) -> dict[str, Any]:
    return {
        "local": pair.local,
        "local_name": view.site_name(pair.local),
        "remote": pair.remote,
        "remote_name": view.site_name(pair.remote),
        "severity": pair.severity,
        "paths_up": pair.paths_up,
        "paths_expected": pair.paths_expected,
        "loss_percent": _number(pair.loss_percent),
        "rtt_avg_ms": _number(pair.rtt_avg_ms),
    }


def _tunnel(tunnel: TunnelView) -> dict[str, Any]:
    return {
        "interface": tunnel.interface,
        "peer": tunnel.peer,
        "planned": tunnel.planned,
        "present": tunnel.present,
        "endpoint": tunnel.endpoint,
        "handshake_age_seconds": _number(tunnel.handshake_age),
        "rx_bytes": tunnel.rx_bytes,
        "tx_bytes": tunnel.tx_bytes,
        "state": tunnel.state,
    }


def _session(session: SessionView) -> dict[str, Any]:
    return {
        "name": session.name,
        "peer": session.peer,
        "interface": session.interface,
        "planned": session.planned,
        "bgp_state": session.bgp_state,
        "since": iso_time(session.since) if session.since else None,
        "last_error": session.last_error,
        "routes_imported": session.routes_imported,
        "routes_exported": session.routes_exported,
        "state": session.state,
    }


def _gateway(gateway: GatewayView) -> dict[str, Any]:
    return {
        "name": gateway.name,
        "site": gateway.site,
        "reachable": gateway.reachable,
        "error": gateway.error,
        "collected_at": iso_time(gateway.collected_at) if gateway.collected_at else None,
        "namespace": gateway.namespace,
        "bird_error": gateway.bird_error,
        "state": gateway.state,
        "tunnels": [_tunnel(t) for t in gateway.tunnels],
        "sessions": [_session(s) for s in gateway.sessions],
    }


def to_json(run: VerifyRun, view: RunView | None = None) -> dict[str, Any]:
    """Return the run as a JSON-ready dict in schema ``wgfleet.verify/1``.

    Args:
        run: The verification run.
        view: The run's view when the caller already built one (it is derived from run).

    Returns:
        A dict of plain JSON types, keys in the documented order.
    """
    view = view or RunView(run)
    plan = run.plan
    return {
        "schema": SCHEMA,
        "run": {
            "started": iso_time(run.started),
            "finished": iso_time(run.finished),
            "started_epoch": round(run.started, 3),
            "finished_epoch": round(run.finished, 3),
            "duration_seconds": round(max(0.0, run.finished - run.started), 3),
        },
        "inventory": {
            "path": run.inventory,
            "topology": plan.settings.topology,
            "namespace": plan.settings.namespace,
            "sites": [
                {
                    "number": site.number,
                    "name": site.name,
                    "asn": site.asn,
                    "gateways": list(site.gateways),
                }
                for site in view.sites
            ],
        },
        "severity": view.severity,
        "counts": {
            "gateways": len(view.gateways),
            "unreachable": len(view.unreachable),
            "findings": len(run.verdict.findings),
            **{severity: view.counts[severity] for severity in SEVERITIES},
        },
        "unreachable": list(view.unreachable),
        "pairs": [_pair(view, p) for p in sorted(view.pairs.values(), key=_pair_key)],
        "findings": [_finding(f) for f in sorted(run.verdict.findings, key=_finding_key)],
        "gateways": [_gateway(g) for g in view.gateways],
    }


def _pair_key(pair: PairStatus) -> tuple[int, int]:
    return (pair.local, pair.remote)


def _finding_key(finding: Finding) -> tuple[str, str, str]:
    return (finding.gateway, finding.check, finding.object)


def dumps(run: VerifyRun, view: RunView | None = None) -> str:
    """Return the JSON report as text (indented, UTF-8 safe, ending with a newline)."""
    return dump_document(to_json(run, view))


def dump_document(document: dict[str, Any]) -> str:
    """Serialise a report dict the way :func:`dumps` does."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def from_json(text: str, source: str = "report.json") -> dict[str, Any]:
    """Load a JSON report written by this or an older minor revision of schema version 1.

    Args:
        text: The file's content.
        source: Where it came from, for error messages.

    Returns:
        The report as a dict (what :func:`to_json` returns), enough for :func:`diff_runs`.

    Raises:
        ReportFormatError: Not JSON, not a wgfleet verify report, or another major version.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportFormatError(source, f"not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(document, dict):
        raise ReportFormatError(source, "not a wgfleet verify report (expected an object)")
    schema = document.get("schema")
    name, _, version = str(schema).partition("/")
    if name != SCHEMA_NAME or not version.isdigit():
        raise ReportFormatError(source, f"not a wgfleet verify report (schema {schema!r})")
    if int(version) != SCHEMA_VERSION:
        raise ReportFormatError(
            source, f"schema {schema} is not supported; this wgfleet reads {SCHEMA}"
        )
    for key in ("findings", "pairs", "gateways"):
        if not isinstance(document.get(key, []), list):
            raise ReportFormatError(source, f"{key!r} must be a list")
    return document
