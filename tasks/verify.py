"""Nornir task that collects a gateway's VPN state for verification (read-only)."""

from __future__ import annotations

from nornir.core.task import Result, Task

from wgfleet import commands as cmd
from wgfleet.connection import gateway_connection
from wgfleet.facts import parse_verify
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan

# fping needs count x 200 ms plus its timeout; the rest of the script takes milliseconds.
COLLECT_TIMEOUT = 60.0


def ping_groups(plan: FleetPlan, name: str) -> list[tuple[str | None, list[str]]]:
    """What to ping, grouped by source address, as fping prints the targets.

    Tunnel peers are pinged directly. Remote site probes are pinged from the gateway's own
    site-side address of the same family: the reply then comes back through whichever
    gateway of the remote site the remote network picks, as user traffic does (a reply
    to a point-to-point address could only return through that one tunnel). In
    hub-and-spoke a spoke also probes the other spokes, through the hubs.
    """
    gateway = plan.gateway(name)
    groups: list[tuple[str | None, list[str]]] = [
        (None, [str(a) for t in gateway.tunnels for a in (t.peer6, t.peer4)])
    ]
    remote_sites = sorted({site for route in gateway.expected.routes for site in route.sites})
    probes = [p for site in remote_sites for p in plan.site(site).probes]
    for version in (6, 4):
        targets = [str(p) for p in probes if p.version == version]
        sources = [
            str(a.ip)
            for interface in gateway.gateway.interfaces
            for a in interface.addresses
            if a.version == version
        ]
        if targets:
            groups.append((sources[0] if sources else None, targets))
    return groups


def collect_observation(task: Task, plan: FleetPlan) -> Result:
    """Collect WireGuard, UDP, BGP, route and ping evidence in one SSH round trip.

    Returns an :class:`~wgfleet.observation.Observation` (never a private key: the key is
    stripped on the gateway before the output is sent). Changes nothing.
    """
    paths = GatewayPaths(namespace=plan.settings.namespace)
    interfaces = [t.interface for t in plan.gateway(task.host.name).tunnels]
    script = cmd.verify_script(
        paths, ping_groups(plan, task.host.name), plan.settings.verify.ping_count, interfaces
    )
    conn = gateway_connection(task.host, task.nornir.config)
    out = conn.run(script, timeout=COLLECT_TIMEOUT, check=False)
    observation = parse_verify(task.host.name, out.stdout, paths.namespace)
    return Result(host=task.host, result=observation, changed=False)
