"""Typed, validated facts about a fleet: fleet settings, sites and gateways (pure, no I/O).

These dataclasses are the contract between the inventory loader (which builds and
validates them from Nornir's SimpleInventory files) and everything downstream (planner,
templates, lab, checks). They hold values already parsed into ``ipaddress`` objects.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Topology = Literal["full-mesh", "hub-and-spoke"]
SiteRole = Literal["hub", "spoke"]
RouteSource = Literal["connected", "static", "ospf"]
Become = Literal["root", "sudo"]
WireguardImpl = Literal["kernel", "userspace", "auto"]


@dataclass(frozen=True)
class BgpTimers:
    """BGP timers applied to every session (the article: hold time 6)."""

    hold_time: int = 6
    keepalive_time: int = 2
    connect_retry_time: int = 5
    connect_delay_time: int = 1
    error_wait_time: tuple[int, int] = (5, 30)
    preference: int = 160


@dataclass(frozen=True)
class VerifyThresholds:
    """Thresholds used by verification runs."""

    handshake_warning: int = 135
    handshake_critical: int = 180
    ping_count: int = 3
    loss_warning_percent: float = 0.0
    loss_critical_percent: float = 100.0
    rtt_warning_ms: float = 100.0


@dataclass(frozen=True)
class FleetSettings:
    """Fleet-wide defaults (``defaults.yaml`` → ``data.fleet``)."""

    namespace: str = "private"
    topology: Topology = "full-mesh"
    listen_port_base: int = 5800
    pool6: ipaddress.IPv6Network = ipaddress.IPv6Network("2001:db8:ff::/64")  # noqa: RUF009
    pool4: ipaddress.IPv4Network = ipaddress.IPv4Network("169.254.1.0/24")  # noqa: RUF009
    mtu: int = 1420
    bgp: BgpTimers = field(default_factory=BgpTimers)
    bfd: bool = False
    preshared_keys: bool = False
    """One preshared key per tunnel (WireGuard's optional symmetric layer), made in memory
    on the control machine, installed on both ends and never stored anywhere else."""
    verify: VerifyThresholds = field(default_factory=VerifyThresholds)
    interface_prefix: str = "wg"


@dataclass(frozen=True)
class StaticRoute:
    """A site route a gateway originates statically (``routes.mode: static``)."""

    prefix: IPNetwork
    via: IPAddress | None = None
    interface: str | None = None


@dataclass(frozen=True)
class SiteRouting:
    """How a site's routes are learnt on the site side of its gateways."""

    mode: RouteSource = "connected"
    static: tuple[StaticRoute, ...] = ()
    ospf_interfaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    """A site (a Nornir group ``site<N>``): AS number, prefixes, how routes are learnt."""

    name: str
    number: int
    asn: int
    prefixes: tuple[IPNetwork, ...]
    routing: SiteRouting = field(default_factory=SiteRouting)
    probes: tuple[IPAddress, ...] = ()
    role: SiteRole = "spoke"


@dataclass(frozen=True)
class SiteInterface:
    """A site-side interface of a gateway, moved into the private namespace by wgfleet."""

    name: str
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True)
class Gateway:
    """A VPN gateway (a Nornir host): V<site>-<index> in the article."""

    name: str
    site: int
    index: int
    endpoint: IPAddress
    hostname: str
    port: int = 22
    username: str = "root"
    become: Become = "root"
    wireguard: WireguardImpl = "auto"
    keepalive: int | None = None
    interfaces: tuple[SiteInterface, ...] = ()


@dataclass(frozen=True)
class Fleet:
    """The whole validated inventory."""

    settings: FleetSettings
    sites: tuple[Site, ...]
    gateways: tuple[Gateway, ...]

    def site(self, number: int) -> Site:
        """Return the site with this number (KeyError if unknown)."""
        for site in self.sites:
            if site.number == number:
                return site
        raise KeyError(number)

    def gateway(self, name: str) -> Gateway:
        """Return the gateway with this name (KeyError if unknown)."""
        for gateway in self.gateways:
            if gateway.name == name:
                return gateway
        raise KeyError(name)
