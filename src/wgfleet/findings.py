"""Findings: the verdicts verification reaches, and the run's overall result (pure data).

Every check yields one :class:`Finding` per object it looked at, including the healthy
ones (JUnit and the diff between runs need them), with one of four severities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from wgfleet.observation import Observation
from wgfleet.plan import FleetPlan

Severity = Literal["ok", "warning", "critical", "unknown"]
SEVERITY_ORDER: dict[Severity, int] = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}

# Check identifiers (stable: reports, metrics and the diff between runs key on them).
CHECKS = {
    "gateway.reachable": "the gateway answers over SSH",
    "namespace.exists": "the private namespace exists",
    "bird.running": "BIRD runs in the private namespace",
    "tunnel.exists": "the WireGuard interface is in the private namespace, its UDP port open",
    "tunnel.peer": "the tunnel has the planned peer, endpoint and keys",
    "tunnel.handshake": "the latest handshake is recent",
    "tunnel.psk": "the preshared key is as planned and the same at both ends",
    "tunnel.extra": "no WireGuard interface outside the plan",
    "bgp.established": "the BGP session is Established",
    "bgp.extra": "no BGP session outside the plan",
    "route.ecmp": "the remote site prefix has one next hop per remote gateway",
    "ping.tunnel": "the tunnel's peer address answers",
    "ping.site": "the remote site's probe address answers",
    "site.pair": "the site reaches the other site (every planned path up)",
}


@dataclass(frozen=True)
class Finding:
    """One verdict about one object.

    Attributes:
        check: A key of :data:`CHECKS`.
        severity: ok / warning (degraded, redundancy left) / critical (outage) / unknown
            (could not be checked, e.g. the gateway was unreachable).
        gateway: Where it was observed (empty for site-pair findings).
        object: What it is about: ``wg3``, ``IBGP_V2_1``, ``2001:db8:a2::/64``,
            ``site1->site3``, ``2001:db8:ff::1``…
        message: One line for a person.
        value: The observed value (handshake age in s, ECMP width, loss %…), if any.
        expected: What the plan expects, if it is a value.
        site_pair: The (local, remote) site numbers it affects, if any.
    """

    check: str
    severity: Severity
    gateway: str
    object: str
    message: str
    value: float | str | None = None
    expected: float | str | None = None
    site_pair: tuple[int, int] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity across runs: (check, gateway, object)."""
        return (self.check, self.gateway, self.object)


@dataclass(frozen=True)
class PairStatus:
    """The state of one ordered site pair in the site x site matrix."""

    local: int
    remote: int
    severity: Severity
    paths_up: int
    paths_expected: int
    loss_percent: float | None = None
    rtt_avg_ms: float | None = None


@dataclass(frozen=True)
class Verdict:
    """Everything a verification run concluded."""

    findings: tuple[Finding, ...]
    pairs: tuple[PairStatus, ...]
    unreachable: tuple[str, ...] = ()
    sites: tuple[int, ...] = field(default=())

    @property
    def severity(self) -> Severity:
        """The worst severity among the findings."""
        worst: Severity = "ok"
        for finding in self.findings:
            if SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER[worst]:
                worst = finding.severity
        return worst

    def problems(self) -> list[Finding]:
        """Findings that are not ok, worst first."""
        bad = [f for f in self.findings if f.severity != "ok"]
        return sorted(
            bad, key=lambda f: (-SEVERITY_ORDER[f.severity], f.gateway, f.check, f.object)
        )


@dataclass(frozen=True)
class VerifyRun:
    """A whole verification run, what every report writer takes.

    Attributes:
        plan: The fleet plan the expectations came from (sites, gateways, tunnels).
        observations: One per checked gateway, unreachable ones included.
        verdict: The findings and the site x site matrix.
        started: Epoch seconds when the run began (control machine clock).
        finished: Epoch seconds when it ended.
        inventory: The inventory directory, for the record.
    """

    plan: FleetPlan
    observations: Mapping[str, Observation]
    verdict: Verdict
    started: float
    finished: float
    inventory: str = ""
