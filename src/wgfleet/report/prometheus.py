"""Prometheus metrics in the text exposition format, for node_exporter's textfile collector.

Pure: :func:`render_metrics` returns the text; :mod:`wgfleet.report.store` writes it
atomically. Each metric has one ``# HELP`` and one ``# TYPE`` line followed by all its
samples; samples carry no timestamps (the textfile collector rejects them).

What is absent, on purpose:

* A gateway that could not be reached has no tunnel or session samples (nothing was
  observed); ``wgfleet_gateway_reachable{gateway} == 0`` says so.
* ``wgfleet_tunnel_handshake_age_seconds`` is absent for a tunnel that never completed
  a handshake or whose interface is missing; ``wgfleet_tunnel_up`` is 0 for it. Alert on
  ``wgfleet_tunnel_up == 0``, not on the age alone.
* Site-pair loss and RTT are absent when nothing was pinged for the pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from wgfleet.findings import VerifyRun
from wgfleet.report.view import SEVERITIES, RunView

Labels = Mapping[str, str]

_HELP = {
    "wgfleet_tunnel_handshake_age_seconds": (
        "Seconds since the latest WireGuard handshake of the tunnel (absent: never, "
        "interface missing, or gateway unreachable)."
    ),
    "wgfleet_tunnel_up": (
        "1 when the tunnel's interface exists and its latest handshake is younger than "
        "the critical threshold, else 0."
    ),
    "wgfleet_bgp_session_established": "1 when the BGP session is Established, else 0.",
    "wgfleet_site_pair_loss_ratio": "Ping loss from the local to the remote site (0 to 1).",
    "wgfleet_site_pair_rtt_seconds": "Average ping round-trip time from local to remote site.",
    "wgfleet_site_pair_paths_up": "Tunnel paths from the local to the remote site that work.",
    "wgfleet_site_pair_paths_expected": "Tunnel paths from the local to the remote site planned.",
    "wgfleet_gateway_reachable": "1 when the gateway answered over SSH, else 0.",
    "wgfleet_verify_findings": "Findings of the last verification run, by severity.",
    "wgfleet_verify_last_run_timestamp_seconds": "When the last verification run finished.",
    "wgfleet_verify_duration_seconds": "How long the last verification run took.",
}


def escape_label(value: str) -> str:
    r"""Escape a label value: backslash, double quote and newline (``\\``, ``\"``, ``\n``)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Format a sample value: integers without a point, ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class _Metrics:
    """Samples grouped by metric name; rendered in the order of ``_HELP``, empty ones left out."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[Labels, float]]] = {}

    def add(self, name: str, labels: Labels, value: float) -> None:
        self.samples.setdefault(name, []).append((labels, value))

    def render(self) -> str:
        lines: list[str] = []
        for name in _HELP:
            samples = self.samples.get(name)
            if not samples:
                continue
            lines.append(f"# HELP {name} {_escape_help(_HELP[name])}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in samples:
                text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{text}}} {format_value(value)}" if text else
                             f"{name} {format_value(value)}")  # fmt: skip
        return "\n".join(lines) + "\n"


def render_metrics(run: VerifyRun, *, view: RunView | None = None) -> str:
    """Return the run's metrics in the Prometheus text exposition format.

    Args:
        run: The verification run.
        view: The run's view when the caller already built one.

    Returns:
        Text for a ``*.prom`` file, ending with a newline.
    """
    view = view or RunView(run)
    critical_age = run.plan.settings.verify.handshake_critical
    metrics = _Metrics()
    for gateway in view.gateways:
        if not gateway.reachable:
            continue
        for tunnel in gateway.tunnels:
            if not tunnel.planned:
                continue
            labels = {
                "gateway": gateway.name,
                "interface": tunnel.interface,
                "peer": tunnel.peer or "",
            }
            age = tunnel.handshake_age
            if age is not None:
                metrics.add("wgfleet_tunnel_handshake_age_seconds", labels, age)
            up = bool(tunnel.present) and age is not None and age <= critical_age
            metrics.add("wgfleet_tunnel_up", labels, 1 if up else 0)
    for gateway in view.gateways:
        if not gateway.reachable:
            continue
        for session in gateway.sessions:
            if session.planned:
                labels = {"gateway": gateway.name, "session": session.name,
                          "peer": session.peer or ""}  # fmt: skip
                metrics.add("wgfleet_bgp_session_established", labels, int(session.established))
    pairs = sorted(view.pairs.values(), key=lambda p: (p.local, p.remote))
    for pair in pairs:
        labels = {"local": view.site_name(pair.local), "remote": view.site_name(pair.remote)}
        if pair.loss_percent is not None:
            metrics.add("wgfleet_site_pair_loss_ratio", labels, pair.loss_percent / 100)
        if pair.rtt_avg_ms is not None:
            metrics.add("wgfleet_site_pair_rtt_seconds", labels, pair.rtt_avg_ms / 1000)
        metrics.add("wgfleet_site_pair_paths_up", labels, pair.paths_up)
        metrics.add("wgfleet_site_pair_paths_expected", labels, pair.paths_expected)
    for gateway in view.gateways:
        metrics.add("wgfleet_gateway_reachable", {"gateway": gateway.name}, int(gateway.reachable))
    for severity in SEVERITIES:
        metrics.add("wgfleet_verify_findings", {"severity": severity}, view.counts[severity])
    metrics.add("wgfleet_verify_last_run_timestamp_seconds", {}, round(run.finished, 3))
    metrics.add(
        "wgfleet_verify_duration_seconds", {}, round(max(0.0, run.finished - run.started), 3)
    )
    return metrics.render()
