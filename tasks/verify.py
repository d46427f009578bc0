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


def ping_targets(plan: FleetPlan, name: str) -> list[str]:
    """Every tunnel peer address and the probes of every site it must reach, as fping prints
    them (in hub-and-spoke a spoke reaches the other spokes through the hubs)."""
    gateway = plan.gateway(name)
    targets = [str(a) for t in gateway.tunnels for a in (t.peer6, t.peer4)]
    remote_sites = sorted({site for route in gateway.expected.routes for site in route.sites})
    targets += [str(p) for site in remote_sites for p in plan.site(site).probes]
    return list(dict.fromkeys(targets))


def collect_observation(task: Task, plan: FleetPlan) -> Result:
    """Collect WireGuard, UDP, BGP, route and ping evidence in one SSH round trip.

    Returns an :class:`~wgfleet.observation.Observation` (never a private key: the key is
    stripped on the gateway before the output is sent). Changes nothing.
    """
    paths = GatewayPaths(namespace=plan.settings.namespace)
    script = cmd.verify_script(
        paths, ping_targets(plan, task.host.name), plan.settings.verify.ping_count
    )
    conn = gateway_connection(task.host, task.nornir.config)
    out = conn.run(script, timeout=COLLECT_TIMEOUT, check=False)
    observation = parse_verify(task.host.name, out.stdout, paths.namespace)
    return Result(host=task.host, result=observation, changed=False)
