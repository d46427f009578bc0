"""The topology planner: every gateway's tunnels, BGP sessions and expected state (pure).

``plan_fleet(fleet, allocations)`` decides who peers with whom, takes numbers from the
persistent allocations (see ``wgfleet.allocations``) and derives, per gateway:

* **tunnels**: gateway V s-n's tunnel towards V r-m is ``wg<mark of V r-m>``, listens on
  ``5800 + <mark of V r-m>`` and reaches ``[endpoint of V r-m]:5800 + <own mark>``, with a
  /127 and a /31 from the pair's link (the article's numbering on a fresh allocation);
* **BGP sessions**: two per tunnel, one per address family, both over the tunnel's
  point-to-point addresses: ``IBGP_V<r>_<m>`` (IPv6) and ``IBGP_V<r>_<m>_4`` (IPv4). Per
  family sessions keep a next hop of the route's own family, so BIRD installs correct
  IPv4 routes without extended next hops. The names keep the article's ``IBGP_`` prefix
  although sessions between two sites (two ASNs) are eBGP;
* **expected state** for verification: tunnels and sessions that must be up, the peer
  addresses to ping and every remote site prefix with its ECMP width.

Topologies: ``full-mesh`` (the article) peers every gateway with every gateway of the other
sites. ``hub-and-spoke`` peers spokes with hubs only and hubs with each other; hubs then
forward between spokes (a spoke reaches another spoke through every hub gateway it has a
tunnel to), spokes never forward, and hubs never forward between hubs.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from wgfleet.allocations import Allocations, allocate
from wgfleet.errors import BadInputError, Problem
from wgfleet.model import Fleet, FleetSettings, Gateway, IPAddress, IPNetwork, Site

Family = Literal["ipv6", "ipv4"]
Role = Literal["mesh", "hub", "spoke"]


@dataclass(frozen=True, slots=True)
class Tunnel:
    """One WireGuard tunnel of a gateway towards one remote gateway.

    The peer's public key is not part of the plan: it is looked up as
    ``public_keys[tunnel.peer]`` when rendering.
    """

    interface: str
    listen_port: int
    peer: str
    peer_site: int
    peer_index: int
    peer_asn: int
    peer_endpoint: IPAddress
    peer_port: int
    local6: ipaddress.IPv6Interface
    peer6: ipaddress.IPv6Address
    local4: ipaddress.IPv4Interface
    peer4: ipaddress.IPv4Address
    keepalive: int
    mtu: int
    preshared_key: bool = False

    @property
    def endpoint(self) -> str:
        """The WireGuard ``Endpoint`` value: ``[v6]:port`` or ``v4:port``."""
        host = self.peer_endpoint
        text = f"[{host}]" if host.version == 6 else str(host)
        return f"{text}:{self.peer_port}"


@dataclass(frozen=True, slots=True)
class BgpSession:
    """One BGP session over a tunnel, for one address family.

    Attributes:
        import_sites: Sites whose prefixes this session accepts (the peer's site).
        import_transit: Also accept every other spoke site's prefixes (a spoke's session
            with a hub, in hub-and-spoke).
        export_transit: Also export routes learnt from spokes (a hub's session with a spoke).
    """

    name: str
    family: Family
    interface: str
    peer: str
    local_address: IPAddress
    peer_address: IPAddress
    local_asn: int
    peer_asn: int
    import_sites: tuple[int, ...]
    import_transit: bool = False
    export_transit: bool = False


@dataclass(frozen=True, slots=True)
class RouteExpectation:
    """Remote prefixes that must be installed with one next hop per listed tunnel."""

    sites: tuple[int, ...]
    prefixes: tuple[IPNetwork, ...]
    interfaces: tuple[str, ...]

    @property
    def ecmp_width(self) -> int:
        """Number of next hops each prefix must have."""
        return len(self.interfaces)


@dataclass(frozen=True)
class ExpectedState:
    """What verification must find on a gateway when the VPN is healthy."""

    interfaces: tuple[str, ...]
    sessions: tuple[str, ...]
    ping: tuple[IPAddress, ...]
    routes: tuple[RouteExpectation, ...]

    def prefix_widths(self) -> dict[IPNetwork, int]:
        """Return every remote prefix with its expected ECMP width."""
        return {prefix: group.ecmp_width for group in self.routes for prefix in group.prefixes}


@dataclass(frozen=True)
class GatewayPlan:
    """Everything wgfleet configures on, and expects from, one gateway."""

    gateway: Gateway
    site: Site
    mark: int
    router_id: ipaddress.IPv4Address
    role: Role
    tunnels: tuple[Tunnel, ...]
    sessions: tuple[BgpSession, ...]
    expected: ExpectedState

    @property
    def name(self) -> str:
        """The gateway's inventory name."""
        return self.gateway.name


@dataclass(frozen=True)
class FleetPlan:
    """The plan of every gateway, in inventory order (site, then index).

    Attributes:
        settings: The fleet settings the plan was made with.
        sites: Every site, by number.
        gateways: Every gateway's plan, by (site, index).
        transit_sites: In hub-and-spoke, the spoke sites whose routes hubs forward to the
            other spokes; empty in a full mesh.
    """

    settings: FleetSettings
    sites: tuple[Site, ...]
    gateways: tuple[GatewayPlan, ...]
    transit_sites: tuple[int, ...] = ()
    _by_name: dict[str, GatewayPlan] = field(init=False, repr=False, compare=False)
    _by_number: dict[int, Site] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Indexes, so lookups stay O(1) on fleets of thousands of gateways.
        object.__setattr__(self, "_by_name", {g.name: g for g in self.gateways})
        object.__setattr__(self, "_by_number", {s.number: s for s in self.sites})

    def gateway(self, name: str) -> GatewayPlan:
        """Return the plan of the named gateway (KeyError if unknown)."""
        return self._by_name[name]

    def site(self, number: int) -> Site:
        """Return the site with this number (KeyError if unknown)."""
        return self._by_number[number]


def _order(gateway: Gateway) -> tuple[int, int, str]:
    return (gateway.site, gateway.index, gateway.name)


def peerings(fleet: Fleet) -> list[tuple[Gateway, Gateway]]:
    """Return every pair of gateways that must have a tunnel, in allocation order.

    Pairs are ordered by their first gateway, then their second (site, then index), and the
    first gateway of a pair is the lower one: V1-1/V2-1, V1-1/V2-2, …, V1-2/V2-1, …
    The work is proportional to the number of pairs, not to the square of the fleet.
    """
    roles = {site.number: site.role for site in fleet.sites}
    ordered = sorted(fleet.gateways, key=_order)
    site_end: dict[int, int] = {}
    for position, gateway in enumerate(ordered):
        site_end[gateway.site] = position + 1
    hub_mode = fleet.settings.topology == "hub-and-spoke"
    hub_positions = [i for i, g in enumerate(ordered) if roles[g.site] == "hub"]
    pairs: list[tuple[Gateway, Gateway]] = []
    for position, gateway in enumerate(ordered):
        if hub_mode and roles[gateway.site] != "hub":
            start = bisect.bisect_right(hub_positions, position)
            pairs.extend((gateway, ordered[i]) for i in hub_positions[start:])
        else:
            pairs.extend((gateway, other) for other in ordered[site_end[gateway.site] :])
    return pairs


def _router_id(gateway: Gateway, mark: int) -> ipaddress.IPv4Address:
    """The first IPv4 address of the site interfaces, else 10.255.<mark/256>.<mark%256>."""
    for interface in gateway.interfaces:
        for address in interface.addresses:
            if address.version == 4:
                return ipaddress.IPv4Address(address.ip)
    return ipaddress.IPv4Address(f"10.255.{mark // 256}.{mark % 256}")


def _check(fleet: Fleet) -> None:
    problems: list[Problem] = []
    known = {site.number for site in fleet.sites}
    seen: dict[tuple[int, int], str] = {}
    for gateway in fleet.gateways:
        if gateway.site not in known:
            problems.append(
                Problem("hosts.yaml", gateway.name, "groups", f"unknown site {gateway.site}")
            )
        key = (gateway.site, gateway.index)
        if key in seen:
            problems.append(
                Problem(
                    "hosts.yaml", gateway.name, "index", f"V{key[0]}-{key[1]} is also {seen[key]}"
                )
            )
        seen[key] = gateway.name
    if fleet.settings.topology == "hub-and-spoke" and not any(s.role == "hub" for s in fleet.sites):
        problems.append(
            Problem(
                "groups.yaml", "", "role", "hub-and-spoke needs at least one site with role: hub"
            )
        )
    if problems:
        raise BadInputError(problems)


def plan_fleet(fleet: Fleet, allocations: Allocations) -> tuple[FleetPlan, Allocations]:
    """Plan every gateway of ``fleet``, reusing and extending ``allocations``.

    Args:
        fleet: The validated inventory.
        allocations: What the allocations file holds (``Allocations()`` when there is none).

    Returns:
        The plan, and the allocations it uses: the input's entries still in use, plus new
        ones for new gateways and pairs. Compare with the input to know whether the
        allocations file must be saved.

    Raises:
        BadInputError: The fleet cannot be planned (pools too small, duplicate router IDs…).
    """
    _check(fleet)
    settings = fleet.settings
    sites = {site.number: site for site in fleet.sites}
    ordered = sorted(fleet.gateways, key=_order)
    pairs = peerings(fleet)
    new = allocate(
        allocations, [g.name for g in ordered], [(a.name, b.name) for a, b in pairs], settings
    )

    neighbours: dict[str, list[Gateway]] = {g.name: [] for g in ordered}
    for a, b in pairs:
        neighbours[a.name].append(b)
        neighbours[b.name].append(a)

    hub_mode = settings.topology == "hub-and-spoke"
    transit_sites = tuple(
        s.number
        for s in sorted(fleet.sites, key=lambda s: s.number)
        if hub_mode and s.role != "hub"
    )
    transit_cache: dict[int, RouteExpectation] = {}
    router_ids: dict[ipaddress.IPv4Address, str] = {}
    plans: list[GatewayPlan] = []
    for gateway in ordered:
        site = sites[gateway.site]
        role: Role = site.role if hub_mode else "mesh"
        mark = new.marks[gateway.name]
        router_id = _router_id(gateway, mark)
        if router_id in router_ids:
            raise BadInputError(
                [
                    Problem(
                        "hosts.yaml",
                        gateway.name,
                        "interfaces",
                        f"router id {router_id} (first IPv4 site address) "
                        f"is also the router id of {router_ids[router_id]}",
                    )
                ]
            )
        router_ids[router_id] = gateway.name
        peers = sorted(neighbours[gateway.name], key=_order)
        tunnels = tuple(_tunnel(gateway, peer, sites[peer.site], new, settings) for peer in peers)
        sessions = tuple(
            session
            for tunnel in tunnels
            for session in _sessions(site, role, tunnel, sites[tunnel.peer_site])
        )
        routes = _routes(site, role, tunnels, sites, transit_sites, transit_cache)
        expected = ExpectedState(
            interfaces=tuple(t.interface for t in tunnels),
            sessions=tuple(s.name for s in sessions),
            ping=tuple(address for t in tunnels for address in (t.peer6, t.peer4)),
            routes=routes,
        )
        plans.append(GatewayPlan(gateway, site, mark, router_id, role, tunnels, sessions, expected))

    plan = FleetPlan(
        settings=settings,
        sites=tuple(sorted(fleet.sites, key=lambda s: s.number)),
        gateways=tuple(plans),
        transit_sites=transit_sites,
    )
    return plan, new


def _tunnel(
    gateway: Gateway,
    peer: Gateway,
    peer_site: Site,
    allocations: Allocations,
    settings: FleetSettings,
) -> Tunnel:
    link = allocations.link(gateway.name, peer.name)
    peer_mark = allocations.marks[peer.name]
    local6, local4 = link.address6(gateway.name), link.address4(gateway.name)
    return Tunnel(
        interface=f"{settings.interface_prefix}{peer_mark}",
        listen_port=settings.listen_port_base + peer_mark,
        peer=peer.name,
        peer_site=peer.site,
        peer_index=peer.index,
        peer_asn=peer_site.asn,
        peer_endpoint=peer.endpoint,
        peer_port=settings.listen_port_base + allocations.marks[gateway.name],
        local6=local6,
        peer6=link.host6(peer.name),
        local4=local4,
        peer4=link.host4(peer.name),
        keepalive=gateway.keepalive or 0,
        mtu=settings.mtu,
        preshared_key=settings.preshared_keys,
    )


def _sessions(site: Site, role: Role, tunnel: Tunnel, peer_site: Site) -> tuple[BgpSession, ...]:
    name = f"IBGP_V{tunnel.peer_site}_{tunnel.peer_index}"
    import_transit = role == "spoke" and peer_site.role == "hub"
    export_transit = role == "hub" and peer_site.role != "hub"
    specs: tuple[tuple[str, Family, IPAddress, IPAddress], ...] = (
        (name, "ipv6", tunnel.local6.ip, tunnel.peer6),
        (f"{name}_4", "ipv4", tunnel.local4.ip, tunnel.peer4),
    )
    return tuple(
        BgpSession(
            name=session_name,
            family=family,
            interface=tunnel.interface,
            peer=tunnel.peer,
            local_address=local,
            peer_address=remote,
            local_asn=site.asn,
            peer_asn=peer_site.asn,
            import_sites=(peer_site.number,),
            import_transit=import_transit,
            export_transit=export_transit,
        )
        for session_name, family, local, remote in specs
    )


def _routes(
    site: Site,
    role: Role,
    tunnels: tuple[Tunnel, ...],
    sites: Mapping[int, Site],
    transit_sites: tuple[int, ...],
    transit_cache: dict[int, RouteExpectation],
) -> tuple[RouteExpectation, ...]:
    by_site: dict[int, list[str]] = {}
    for tunnel in tunnels:
        by_site.setdefault(tunnel.peer_site, []).append(tunnel.interface)
    routes = [
        RouteExpectation((number,), sites[number].prefixes, tuple(interfaces))
        for number, interfaces in sorted(by_site.items())
    ]
    if role == "spoke" and tunnels:
        # Every hub gateway forwards the other spokes' routes: one next hop per hub tunnel.
        transit = transit_cache.get(site.number)
        if transit is None:
            others = tuple(n for n in transit_sites if n != site.number)
            prefixes = tuple(p for n in others for p in sites[n].prefixes)
            transit = RouteExpectation(others, prefixes, ())
            transit_cache[site.number] = transit
        if transit.sites:
            all_hubs = tuple(t.interface for t in tunnels)
            routes.append(RouteExpectation(transit.sites, transit.prefixes, all_hubs))
    return tuple(routes)
