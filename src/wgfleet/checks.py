"""The checks: compare every gateway's Observation with the plan and reach a Verdict (pure).

:func:`evaluate` is the entry point. Expectations come from the plan only (tunnels,
sessions, ping targets, routes with their ECMP width; thresholds from
``plan.settings.verify``). The work is linear in the number of tunnels: everything is
looked up in dicts built once.

Severity policy:

* ``gateway.reachable`` of a gateway that did not answer is *unknown*, the gateway is
  listed in :attr:`Verdict.unreachable`, and none of its other checks are reported; its
  peers' view of their tunnels towards it still decides the site pairs.
* A component failure (tunnel missing, handshake too old or never, session down, fewer
  ECMP next hops, peer address not answering, namespace or BIRD missing) is a *warning*
  while the site pair it affects still has a working path (redundancy degraded), and
  *critical* when the pair has none (outage).
* Anomalies that take no path away are warnings whatever the pair's state: extra tunnels or
  sessions, a handshake late but not yet expired, partial ping loss or a slow RTT, extra
  ECMP next hops.
* A site pair is ok with every path up, warning with some down, critical with none up
  (see :func:`wgfleet.checks_paths.pair_severity` for paths that cannot be known); ping loss
  or RTT above the warning thresholds makes an otherwise ok pair a warning.
* A check that depends on another that failed is not reported: no ``tunnel.peer`` or
  ``tunnel.handshake`` without the WireGuard interface, no ``bgp.*`` without BIRD, no
  ``route.ecmp`` or ``ping.*`` without the namespace.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping

from wgfleet.checks_paths import Context, Texts, TunnelEnd, build_matrix, tunnel_end
from wgfleet.checks_routing import routing_findings
from wgfleet.checks_tunnels import tunnel_findings
from wgfleet.findings import CHECKS, Finding, PairStatus, Verdict
from wgfleet.observation import Observation
from wgfleet.plan import FleetPlan, GatewayPlan

_CHECK_ORDER = {check: position for position, check in enumerate(CHECKS)}
_DIGITS = re.compile(r"(\d+)")

__all__ = ["evaluate"]


def _natural(text: str) -> tuple[str | int, ...]:
    """Sort key that puts wg3 before wg10 and 2001:db8:ff::3 before 2001:db8:ff::10.

    ``re.split`` with a group alternates text and digits (text first, maybe empty), so two
    keys never compare a str with an int at the same position.
    """
    return tuple(
        int(part) if odd else part
        for odd, part in zip(itertools.cycle((False, True)), _DIGITS.split(text))
    )


def _gateway(ctx: Context, gateway: GatewayPlan, obs: Observation) -> list[Finding]:
    """gateway.reachable, namespace.exists and bird.running of a reachable gateway."""
    name = gateway.name
    namespace = ctx.plan.settings.namespace
    local = gateway.site.number
    remotes = [tunnel.peer_site for tunnel in gateway.tunnels]
    incomplete = f" (collection incomplete: {obs.error})" if obs.error else ""
    findings = [
        Finding("gateway.reachable", "ok", name, "", f"{name}: answers over SSH{incomplete}")
    ]
    if obs.namespace:
        findings.append(
            Finding(
                "namespace.exists", "ok", name, namespace, f"{name}: namespace {namespace} exists"
            )
        )
    else:
        severity, consequence = ctx.worst_failure(local, remotes)
        findings.append(
            Finding(
                "namespace.exists",
                severity,
                name,
                namespace,
                f"{name}: namespace {namespace} is missing, with every tunnel in it "
                f"(rebooted? apply to repair; {consequence})",
            )
        )
    if obs.bird is not None:
        sessions = sum(1 for p in obs.bird.values() if p.proto == "BGP")
        findings.append(
            Finding(
                "bird.running",
                "ok",
                name,
                "bird",
                f"{name}: BIRD answers in namespace {namespace} ({sessions} BGP sessions)",
            )
        )
    else:
        severity, consequence = ctx.worst_failure(local, remotes)
        why = obs.bird_error or "birdc could not reach it"
        findings.append(
            Finding(
                "bird.running",
                severity,
                name,
                "bird",
                f"{name}: BIRD is not running in namespace {namespace}: {why} (start it or "
                f"apply to repair; its BGP sessions are all down; {consequence})",
            )
        )
    return findings


def _pair_finding(ctx: Context, pair: PairStatus) -> Finding:
    local, remote = ctx.site_name(pair.local), ctx.site_name(pair.remote)
    measured = ""
    if pair.loss_percent is not None:
        measured = f"; probes: {pair.loss_percent:g}% loss"
        if pair.rtt_avg_ms is not None:
            measured += f", avg {pair.rtt_avg_ms:.1f} ms"
    paths = f"{pair.paths_up} of {pair.paths_expected} paths up"
    broken = ctx.matrix.broken_paths(pair.local, pair.remote)
    if broken:
        paths += f"; down: {broken}"
    state = {
        "ok": "",
        "warning": "redundancy degraded: ",
        "critical": "outage: ",
        "unknown": "not known: ",
    }[pair.severity]
    if pair.severity == "warning" and pair.paths_up == pair.paths_expected:
        state = "probes lossy or slow: "
    return Finding(
        "site.pair",
        pair.severity,
        "",
        f"{local}->{remote}",
        f"{local} -> {remote}: {state}{paths}{measured}",
        value=float(pair.paths_up),
        expected=float(pair.paths_expected),
        site_pair=(pair.local, pair.remote),
    )


def evaluate(
    plan: FleetPlan, observations: Mapping[str, Observation], *, now: float | None = None
) -> Verdict:
    """Judge what was observed against the plan.

    Args:
        plan: The fleet plan: the only source of expectations and thresholds.
        observations: One Observation per checked gateway, by name; unreachable ones
            included. A planned gateway without an observation was not checked (e.g. left
            out by ``--limit``): it gets no findings, and its tunnels count with what their
            other end sees. Observations of gateways outside the plan are ignored.
        now: Epoch seconds used to age handshakes of observations that have no
            ``collected_at`` (otherwise the gateway's own clock is used).

    Returns:
        Findings ordered by gateway (plan order, site pairs last), check (the order of
        :data:`~wgfleet.findings.CHECKS`) and object (natural order); pairs ordered by
        (local, remote); unreachable gateways in plan order.
    """
    ends: dict[tuple[str, str], TunnelEnd] = {}
    for gateway in plan.gateways:
        obs = observations.get(gateway.name)
        sessions: dict[str, list[str]] = {}
        for session in gateway.sessions:
            sessions.setdefault(session.interface, []).append(session.name)
        for tunnel in gateway.tunnels:
            ends[(gateway.name, tunnel.peer)] = tunnel_end(
                gateway,
                tunnel,
                sessions.get(tunnel.interface, ()),
                obs,
                plan.settings.verify,
                now,
            )
    texts = Texts()
    ctx = Context(
        plan=plan,
        observations=observations,
        now=now,
        ends=ends,
        matrix=build_matrix(plan, ends, observations, texts),
        prefix_sites={prefix: site.number for site in plan.sites for prefix in site.prefixes},
        texts=texts,
    )

    findings: list[Finding] = []
    unreachable: list[str] = []
    for gateway in plan.gateways:
        obs = observations.get(gateway.name)
        if obs is None:
            continue
        if not obs.reachable:
            unreachable.append(gateway.name)
            why = obs.error or "no answer"
            findings.append(
                Finding(
                    "gateway.reachable",
                    "unknown",
                    gateway.name,
                    "",
                    f"{gateway.name}: unreachable over SSH ({why}); its checks were skipped, "
                    "its peers' view of its tunnels is used",
                )
            )
            continue
        findings.extend(_gateway(ctx, gateway, obs))
        findings.extend(tunnel_findings(ctx, gateway, obs))
        findings.extend(routing_findings(ctx, gateway, obs))
    pairs = tuple(ctx.matrix.pairs[key] for key in sorted(ctx.matrix.pairs))
    findings.extend(_pair_finding(ctx, pair) for pair in pairs)

    rank = {gateway.name: position for position, gateway in enumerate(plan.gateways)}
    naturals: dict[str, tuple[str | int, ...]] = {}  # objects repeat across gateways

    def order(finding: Finding) -> tuple[int, int, tuple[int, int], tuple[str | int, ...]]:
        # Site pairs (no gateway) come last, by site number rather than by name.
        gateway = rank.get(finding.gateway, len(rank)) if finding.gateway else len(rank) + 1
        pair = finding.site_pair if finding.check == "site.pair" and finding.site_pair else (0, 0)
        check = _CHECK_ORDER.get(finding.check, len(_CHECK_ORDER))
        natural = naturals.get(finding.object)
        if natural is None:
            natural = naturals[finding.object] = _natural(finding.object)
        return (gateway, check, pair, natural)

    findings.sort(key=order)
    return Verdict(
        findings=tuple(findings),
        pairs=pairs,
        unreachable=tuple(unreachable),
        sites=tuple(site.number for site in plan.sites),
    )
