"""Fleets built from model objects for tests and benchmarks: the article's and generated ones."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace

from wgfleet.model import (
    Fleet,
    FleetSettings,
    Gateway,
    RouteSource,
    Site,
    SiteInterface,
    SiteRole,
    SiteRouting,
    StaticRoute,
    Topology,
)

REFERENCE_GATEWAYS = ("V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2")

# Large enough for the benchmark's 80 x 2 full mesh (12,640 tunnels).
LARGE_POOL4 = ipaddress.IPv4Network("169.254.0.0/16")


def site(
    number: int,
    *,
    role: SiteRole = "spoke",
    mode: RouteSource = "connected",
    static: tuple[StaticRoute, ...] = (),
    ospf_interfaces: tuple[str, ...] = (),
) -> Site:
    """Return site ``number`` numbered as in the article (AS 65000+n, 2001:db8:a<n>::/64)."""
    return Site(
        name=f"site{number}",
        number=number,
        asn=65000 + number,
        prefixes=(
            ipaddress.IPv6Network(f"2001:db8:a{number:x}::/64"),
            ipaddress.IPv4Network(f"10.{number // 256}.{number % 256}.0/24"),
        ),
        routing=SiteRouting(mode=mode, static=static, ospf_interfaces=ospf_interfaces),
        probes=(
            ipaddress.IPv6Address(f"2001:db8:a{number:x}::1"),
            ipaddress.IPv4Address(f"10.{number // 256}.{number % 256}.1"),
        ),
        role=role,
    )


def gateway(site_number: int, index: int, *, keepalive: int | None = None) -> Gateway:
    """Return gateway V<site>-<index> with the article's endpoint and one LAN interface."""
    s, n = site_number, index
    return Gateway(
        name=f"V{s}-{n}",
        site=s,
        index=n,
        endpoint=ipaddress.IPv6Address(f"2001:db8:{s:x}::{n:x}"),
        hostname=f"127.77.{s % 256}.{n}",
        port=2222,
        keepalive=keepalive,
        interfaces=(
            SiteInterface(
                name="lan0",
                addresses=(
                    ipaddress.IPv6Interface(f"2001:db8:a{s:x}::{10 + n}/64"),
                    ipaddress.IPv4Interface(f"10.{s // 256}.{s % 256}.{10 + n}/24"),
                ),
            ),
        ),
    )


def fleet(
    sites: Iterable[Site],
    gateways_per_site: int | Mapping[int, int] = 2,
    *,
    topology: Topology = "full-mesh",
    settings: FleetSettings | None = None,
) -> Fleet:
    """Return a fleet of ``sites`` with V<s>-1 … V<s>-<k> gateways in each."""
    sites = tuple(sites)
    base = settings or FleetSettings()
    gateways = []
    for s in sites:
        count = (
            gateways_per_site
            if isinstance(gateways_per_site, int)
            else gateways_per_site.get(s.number, 2)
        )
        gateways.extend(gateway(s.number, n) for n in range(1, count + 1))
    return Fleet(replace(base, topology=topology), sites, tuple(gateways))


def reference_fleet() -> Fleet:
    """The article's fleet as ``inventory/*.yaml`` describes it: 3 sites x 2 gateways."""
    return fleet([site(1), site(2), site(3)])


def mesh_fleet(site_count: int, gateways_per_site: int = 2) -> Fleet:
    """A full mesh of ``site_count`` sites, with an IPv4 pool big enough for it."""
    return fleet(
        [site(n) for n in range(1, site_count + 1)],
        gateways_per_site,
        settings=FleetSettings(pool4=LARGE_POOL4),
    )


def hub_spoke_fleet(hubs: int, spokes: int, gateways_per_site: int = 2) -> Fleet:
    """Hub sites 1..hubs, then spoke sites, in hub-and-spoke topology."""
    sites = [site(n, role="hub") for n in range(1, hubs + 1)]
    sites += [site(n) for n in range(hubs + 1, hubs + spokes + 1)]
    return fleet(
        sites,
        gateways_per_site,
        topology="hub-and-spoke",
        settings=FleetSettings(pool4=LARGE_POOL4),
    )


def routing_fleet() -> Fleet:
    """Three sites learning routes three ways: connected, static and OSPF; BFD on."""
    static = (
        StaticRoute(ipaddress.IPv4Network("10.0.2.0/24"), via=ipaddress.IPv4Address("10.0.2.1")),
        StaticRoute(ipaddress.IPv6Network("2001:db8:a2::/64"), interface="lan0"),
        StaticRoute(ipaddress.IPv4Network("10.2.0.0/16")),
    )
    sites = [
        site(1),
        replace(
            site(2, mode="static", static=static),
            prefixes=(
                ipaddress.IPv6Network("2001:db8:a2::/64"),
                ipaddress.IPv4Network("10.0.2.0/24"),
                ipaddress.IPv4Network("10.2.0.0/16"),
            ),
        ),
        site(3, mode="ospf", ospf_interfaces=("lan0", "lan1")),
    ]
    base = FleetSettings(bfd=True)
    result = fleet(sites, {1: 2, 2: 1, 3: 2}, settings=base)
    # A NAT-ed gateway sends keepalives.
    gateways = tuple(replace(g, keepalive=25) if g.name == "V2-1" else g for g in result.gateways)
    return replace(result, gateways=gateways)


def fake_public_key(name: str) -> str:
    """A deterministic, well-formed WireGuard public key for gateway ``name``."""
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


def public_keys(f: Fleet) -> dict[str, str]:
    """Fake public keys for every gateway of ``f``."""
    return {g.name: fake_public_key(g.name) for g in f.gateways}
