"""Routing checks of one gateway: bgp.established, bgp.extra, route.ecmp, ping.tunnel, ping.site.

Pure functions of the plan, the gateway's observation and the :class:`Context`; each
failure takes its severity from the site pair it affects.
"""

from __future__ import annotations

from wgfleet.checks_paths import Context, remote_sites
from wgfleet.findings import Finding, Severity
from wgfleet.model import IPAddress, IPNetwork
from wgfleet.observation import Observation
from wgfleet.parsers.bird import BirdProtocol
from wgfleet.parsers.fping import PingResult
from wgfleet.parsers.iproute import Route
from wgfleet.plan import BgpSession, GatewayPlan


def _session(
    ctx: Context, gateway: GatewayPlan, session: BgpSession, found: BirdProtocol | None
) -> Finding:
    pair = (gateway.site.number, ctx.plan.gateway(session.peer).site.number)
    label = (
        f"{gateway.name} {session.name} ({session.family} over {session.interface} "
        f"towards {session.peer} {session.peer_address})"
    )
    if found is not None and found.established:
        routes = ""
        if found.routes_imported is not None:
            routes = f", {found.routes_imported} routes imported, {found.routes_exported} exported"
        return Finding(
            "bgp.established",
            "ok",
            gateway.name,
            session.name,
            f"{label}: Established{routes}",
            value="Established",
            expected="Established",
            site_pair=pair,
        )
    severity, consequence = ctx.failure(*pair)
    if found is None:
        return Finding(
            "bgp.established",
            severity,
            gateway.name,
            session.name,
            f"{label}: not configured in BIRD, expected Established (apply to repair; "
            f"{consequence})",
            value="missing",
            expected="Established",
            site_pair=pair,
        )
    state = found.bgp_state or found.state
    error = f", last error: {found.last_error}" if found.last_error else ""
    return Finding(
        "bgp.established",
        severity,
        gateway.name,
        session.name,
        f"{label}: {state}{error}, expected Established ({consequence})",
        value=state,
        expected="Established",
        site_pair=pair,
    )


def _bgp(ctx: Context, gateway: GatewayPlan, bird: dict[str, BirdProtocol]) -> list[Finding]:
    findings = [_session(ctx, gateway, s, bird.get(s.name)) for s in gateway.sessions]
    planned = set(gateway.expected.sessions)
    extra = sorted(name for name, p in bird.items() if p.proto == "BGP" and name not in planned)
    if not extra:
        findings.append(
            Finding(
                "bgp.extra",
                "ok",
                gateway.name,
                "",
                f"{gateway.name}: no BGP session outside the plan",
            )
        )
    for name in extra:
        protocol = bird[name]
        state = protocol.bgp_state or protocol.state
        findings.append(
            Finding(
                "bgp.extra",
                "warning",
                gateway.name,
                name,
                f"{gateway.name} {name}: BGP session ({state}) is not in the plan "
                "(remove it from BIRD's configuration, or add its peer to the inventory)",
                value=state,
            )
        )
    return findings


def _routes(ctx: Context, gateway: GatewayPlan, obs: Observation) -> list[Finding]:
    by_prefix: dict[IPNetwork, Route] = {route.destination: route for route in obs.routes}
    local = gateway.site.number
    findings = []
    for group in gateway.expected.routes:
        expected = group.interfaces
        for prefix in group.prefixes:
            remote = ctx.prefix_sites.get(prefix, group.sites[0])
            route = by_prefix.get(prefix)
            devices = [hop.device or hop.gateway or "?" for hop in route.nexthops] if route else []
            missing = [name for name in expected if name not in devices]
            unexpected = [name for name in devices if name not in expected]
            width = len(devices)
            label = f"{gateway.name} {ctx.texts[prefix]} ({ctx.site_name(remote)})"
            via = ", ".join(devices)
            severity: Severity
            if not missing and not unexpected:
                severity = "ok"
                message = f"{label}: {width} next hops via {via}"
            elif width == 0:
                severity, consequence = ctx.failure(local, remote)
                message = (
                    f"{label}: no route, expected {len(expected)} next hops via "
                    f"{', '.join(expected)} ({consequence})"
                )
            elif missing:
                severity, consequence = ctx.failure(local, remote)
                message = (
                    f"{label}: {width} of {len(expected)} next hops, via {via}; missing "
                    f"{', '.join(missing)} ({consequence})"
                )
            else:
                # Every planned next hop is there, plus others: not less redundancy, but
                # traffic may take a path the plan does not have.
                severity = "warning"
                message = (
                    f"{label}: {width} next hops, plan says {len(expected)}; unexpected "
                    f"via {', '.join(unexpected)}"
                )
            findings.append(
                Finding(
                    "route.ecmp",
                    severity,
                    gateway.name,
                    ctx.texts[prefix],
                    message,
                    value=float(width),
                    expected=float(len(expected)),
                    site_pair=(local, remote),
                )
            )
    return findings


def _ping(
    ctx: Context,
    check: str,
    gateway: GatewayPlan,
    address: IPAddress,
    what: str,
    remote: int,
    result: PingResult | None,
) -> Finding:
    verify = ctx.verify
    pair = (gateway.site.number, remote)
    target = ctx.texts[address]
    label = f"{gateway.name} ping {target} ({what})"
    if result is None:
        return Finding(
            check,
            "unknown",
            gateway.name,
            target,
            f"{label}: no fping result (the collector did not ping it)",
            site_pair=pair,
        )
    rtt = f", avg {result.rtt_avg:.1f} ms" if result.rtt_avg is not None else ""
    measured = f"{result.loss_percent:g}% loss of {result.sent}{rtt}"
    severity: Severity = "ok"
    note = ""
    if result.loss_percent >= verify.loss_critical_percent:
        severity, consequence = ctx.failure(*pair)
        note = f" (no answer; {consequence})"
    elif result.loss_percent > verify.loss_warning_percent:
        severity = "warning"
        note = f" (above {verify.loss_warning_percent:g}%)"
    elif result.rtt_avg is not None and result.rtt_avg > verify.rtt_warning_ms:
        severity = "warning"
        note = f" (RTT above {verify.rtt_warning_ms:g} ms)"
    return Finding(
        check,
        severity,
        gateway.name,
        target,
        f"{label}: {measured}{note}",
        value=result.loss_percent,
        expected=verify.loss_warning_percent,
        site_pair=pair,
    )


def _pings(ctx: Context, gateway: GatewayPlan, obs: Observation) -> list[Finding]:
    findings = []
    for tunnel in gateway.tunnels:
        what = f"{tunnel.peer} over {tunnel.interface}"
        for address in (tunnel.peer6, tunnel.peer4):
            result = obs.pings.get(ctx.texts[address])
            findings.append(
                _ping(ctx, "ping.tunnel", gateway, address, what, tunnel.peer_site, result)
            )
    for remote in remote_sites(gateway):
        what = f"probe of {ctx.site_name(remote)}"
        for probe in ctx.plan.site(remote).probes:
            result = obs.pings.get(ctx.texts[probe])
            findings.append(_ping(ctx, "ping.site", gateway, probe, what, remote, result))
    return findings


def routing_findings(ctx: Context, gateway: GatewayPlan, obs: Observation) -> list[Finding]:
    """Every BGP, route and ping finding of one reachable gateway.

    BGP findings need BIRD (``bird.running`` reports it when it is not there); route and
    ping findings need the namespace (``namespace.exists`` reports it when it is missing).
    """
    findings: list[Finding] = []
    if obs.bird is not None:
        findings.extend(_bgp(ctx, gateway, obs.bird))
    if obs.namespace:
        findings.extend(_routes(ctx, gateway, obs))
        findings.extend(_pings(ctx, gateway, obs))
    return findings
