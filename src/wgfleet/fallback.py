"""Fallback routes through the site partner while a gateway changes (pure, no I/O).

When a wave changes a gateway's BIRD config in a way that restarts its BGP sessions (a
new hold time, any BGP option), the gateway has no route to the other sites for about a
second, while the site LAN still sends it its share of the traffic. For the length of the
wave, each changing gateway therefore carries a fallback route for every remote site prefix
via its site partner's address on the shared site subnet, with a metric far worse than
BIRD's: unused while BGP routes exist, it carries the traffic to the partner (whose
routes the wave does not touch) when they do not. Routes are ``proto static`` in the
private namespace, which BIRD's kernel protocol leaves alone and verification ignores.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from wgfleet.model import IPAddress, IPNetwork
from wgfleet.plan import FleetPlan

FALLBACK_METRIC = 9999  # BIRD installs its routes with metric 32: these never win over them


@dataclass(frozen=True, order=True)
class FallbackRoute:
    """One route: ``ip route replace PREFIX via VIA dev DEVICE metric FALLBACK_METRIC``."""

    prefix: str
    via: str
    device: str


def partner(plan: FleetPlan, gateway: str, busy: Collection[str]) -> str | None:
    """The first other gateway of ``gateway``'s site that is not in ``busy``, if any."""
    site = plan.gateway(gateway).site.number
    for other in plan.gateways:
        if other.site.number == site and other.name != gateway and other.name not in busy:
            return other.name
    return None


def fallback_routes(plan: FleetPlan, gateway: str, via_gateway: str) -> tuple[FallbackRoute, ...]:
    """Routes for every remote prefix ``gateway`` learns by BGP, via ``via_gateway``'s address
    on a subnet both share (per family; a family without a shared subnet gets none)."""
    mine = plan.gateway(gateway).gateway.interfaces
    theirs = [a for i in plan.gateway(via_gateway).gateway.interfaces for a in i.addresses]
    hops: dict[int, tuple[IPAddress, str]] = {}
    for interface in mine:
        for address in interface.addresses:
            for other in theirs:
                if other.network == address.network and other.ip != address.ip:
                    hops.setdefault(address.version, (other.ip, interface.name))
    prefixes: Iterable[IPNetwork] = (
        p for group in plan.gateway(gateway).expected.routes for p in group.prefixes
    )
    return tuple(
        sorted(
            FallbackRoute(str(prefix), str(hops[prefix.version][0]), hops[prefix.version][1])
            for prefix in dict.fromkeys(prefixes)
            if prefix.version in hops
        )
    )


def wave_fallbacks(
    plan: FleetPlan, wave: Collection[str], unavailable: Collection[str] = ()
) -> dict[str, tuple[str, tuple[FallbackRoute, ...]]]:
    """Per gateway of the wave: its partner and its fallback routes. A gateway whose site
    has no other gateway outside the wave (and outside ``unavailable``) gets none."""
    busy = set(wave) | set(unavailable)
    found: dict[str, tuple[str, tuple[FallbackRoute, ...]]] = {}
    for name in wave:
        other = partner(plan, name, busy)
        if other is not None:
            routes = fallback_routes(plan, name, other)
            if routes:
                found[name] = (other, routes)
    return found
