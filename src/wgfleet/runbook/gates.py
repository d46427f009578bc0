"""When a runbook may go on: verification requirements and gate conditions (pure)."""

from __future__ import annotations

from wgfleet.findings import VerifyRun
from wgfleet.plan import FleetPlan
from wgfleet.runbook import GateArgs


def satisfies(run: VerifyRun, require: str) -> bool:
    """Whether a verification meets a ``verify`` step's ``require``."""
    if require == "any":
        return True
    severity = run.verdict.severity
    if require == "no-critical":
        return severity != "critical" and not run.verdict.unreachable
    return severity == "ok" and not run.verdict.unreachable


def gate_pending(
    plan: FleetPlan, run: VerifyRun, args: GateArgs, affected: set[str], done: set[str]
) -> list[str]:
    """What a gate still waits for (empty: it passes).

    Only paths whose two ends are ``done`` count (gateways of this wave and earlier ones,
    and gateways the run does not target): a tunnel towards a gateway of a later wave
    cannot be up yet in a first rollout.
    """
    checks = {
        "bgp.established": args.sessions,
        "route.ecmp": args.ecmp,
        "tunnel.handshake": args.handshakes,
    }
    pending = [f"{g} unreachable" for g in run.verdict.unreachable if g in affected]
    for f in run.verdict.findings:
        if not checks.get(f.check) or f.severity == "ok" or f.gateway not in affected:
            continue
        if f.gateway in done and _ends(plan, f.gateway, f.check, f.object) <= done:
            pending.append(f"{f.gateway} {f.object}: {f.message}")
    return pending


def _ends(plan: FleetPlan, gateway: str, check: str, obj: str) -> set[str]:
    """The remote gateways a finding depends on (its session's, tunnel's or route's)."""
    gateway_plan = plan.gateway(gateway)
    by_interface = {t.interface: t.peer for t in gateway_plan.tunnels}
    if check == "bgp.established":
        return {s.peer for s in gateway_plan.sessions if s.name == obj}
    if check == "tunnel.handshake":
        return {by_interface[obj]} if obj in by_interface else set()
    return {
        by_interface[i]
        for route in gateway_plan.expected.routes
        if any(str(prefix) == obj for prefix in route.prefixes)
        for i in route.interfaces
        if i in by_interface
    }
