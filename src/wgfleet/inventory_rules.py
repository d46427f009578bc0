"""Rules that relate inventory objects to each other: uniqueness, overlaps, pools, ports, names.

They run on what the schema could read (drafts whose invalid fields are ``None``) and
report every violation as a :class:`~wgfleet.errors.Problem` naming the host or group
that has to change: for a duplicate, the later one in file order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from wgfleet.errors import Problem
from wgfleet.inventory_schema import PORT_MAX, GatewayDraft, SiteDraft
from wgfleet.inventory_values import IFNAMSIZ_MAX
from wgfleet.model import FleetSettings, IPNetwork

K = TypeVar("K")
_FLEET = ("defaults.yaml", "defaults")
Broken = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Member:
    """A gateway host with its resolved management parameters and its site group."""

    name: str
    site: str | None
    gateway: GatewayDraft
    hostname: str | None
    port: int | None
    username: str | None


def _site_problem(site: SiteDraft, field: str, message: str) -> Problem:
    return Problem("groups.yaml", site.name, field, message)


def _host_problem(member: Member, field: str, message: str) -> Problem:
    return Problem("hosts.yaml", member.name, field, message)


def _fleet_problem(field: str, message: str) -> Problem:
    return Problem(*_FLEET, f"data.fleet.{field}", message)


def count_tunnels(per_site: Mapping[K, int], hubs: Collection[K], topology: str) -> int:
    """Count the pairs of gateways of different sites that the topology connects.

    Args:
        per_site: Number of gateways per site (any site key).
        hubs: The keys of hub sites.
        topology: ``full-mesh`` (every pair) or ``hub-and-spoke`` (pairs with a hub).

    Returns:
        The number of tunnels; each needs one /127 and one /31.
    """
    total = sum(per_site.values())
    pairs = (total * total - sum(n * n for n in per_site.values())) // 2
    if topology == "hub-and-spoke":
        spokes = [count for site, count in per_site.items() if site not in hubs]
        pairs -= (sum(spokes) ** 2 - sum(n * n for n in spokes)) // 2
    return pairs


@dataclass(frozen=True)
class _Placed:
    """A site prefix and where it was written (its rank in file order)."""

    prefix: IPNetwork
    rank: int
    site: SiteDraft
    index: int


def _check_overlaps(sites: list[SiteDraft]) -> Iterator[Problem]:
    """Report every pair of overlapping site prefixes, at the one written later.

    Prefixes are sorted by start address; since two prefixes either nest or are
    disjoint, the stack of open prefixes holds exactly those that contain the next one.
    """
    placed = [
        _Placed(prefix, rank, site, index)
        for rank, (site, index, prefix) in enumerate(
            (site, index, prefix) for site in sites for index, prefix in enumerate(site.prefixes)
        )
    ]
    placed.sort(
        key=lambda p: (p.prefix.version, int(p.prefix.network_address), p.prefix.prefixlen, p.rank)
    )
    pairs: list[tuple[_Placed, _Placed]] = []
    stack: list[_Placed] = []
    for entry in placed:
        while stack and (
            stack[-1].prefix.version != entry.prefix.version
            or int(stack[-1].prefix.broadcast_address) < int(entry.prefix.network_address)
        ):
            stack.pop()
        pairs += [(container, entry) for container in stack]
        stack.append(entry)
    for first, second in sorted(pairs, key=lambda pair: sorted((pair[0].rank, pair[1].rank))):
        earlier, later = (first, second) if first.rank < second.rank else (second, first)
        owner = "another prefix of this site" if earlier.site is later.site else earlier.site.name
        yield _site_problem(
            later.site,
            f"data.site.prefixes[{later.index}]",
            f"{later.prefix} overlaps {earlier.prefix} of {owner}",
        )


def _check_sites(
    settings: FleetSettings,
    sites: list[SiteDraft],
    members: list[Member],
    broken: Broken,
) -> Iterator[Problem]:
    numbers: dict[int, str] = {}
    asns: dict[int, str] = {}
    populated = {member.site for member in members}
    for site in sites:
        if site.number is not None and site.number in numbers:
            yield _site_problem(
                site,
                "data.site.number",
                f"duplicate site number {site.number} (also {numbers[site.number]})",
            )
        elif site.number is not None:
            numbers[site.number] = site.name
        if site.asn is not None and site.asn in asns:
            yield _site_problem(
                site, "data.site.asn", f"duplicate ASN {site.asn} (also {asns[site.asn]})"
            )
        elif site.asn is not None:
            asns[site.asn] = site.name
        for index, prefix in enumerate(site.prefixes):
            field = f"data.site.prefixes[{index}]"
            for pool, key in ((settings.pool6, "ipv6"), (settings.pool4, "ipv4")):
                if prefix.version == pool.version and prefix.overlaps(pool):
                    yield _site_problem(
                        site,
                        field,
                        f"{prefix} overlaps the point-to-point pool {pool} "
                        f"(defaults.yaml data.fleet.pools.{key})",
                    )
        for index, probe in enumerate(site.probes):
            if site.prefixes and not any(probe in prefix for prefix in site.prefixes):
                yield _site_problem(
                    site,
                    f"data.site.probes[{index}]",
                    f"probe {probe} is outside the site's prefixes",
                )
        if site.name not in populated:
            yield _site_problem(
                site, "data.site", "no gateway belongs to this site (add it to a host's groups)"
            )
    if settings.topology == "hub-and-spoke" and not any(site.role == "hub" for site in sites):
        if any(("data.site.role", site.name) in broken for site in sites):
            return
        yield _fleet_problem(
            "topology", "hub-and-spoke needs at least one site with role: hub in groups.yaml"
        )


def _check_site_interfaces(
    member: Member, site: SiteDraft | None, tunnel_name: re.Pattern[str]
) -> Iterator[Problem]:
    names: set[str] = set()
    for index, interface in enumerate(member.gateway.interfaces):
        field = f"data.gateway.interfaces[{index}]"
        if interface.name in names:
            yield _host_problem(member, f"{field}.name", f"duplicate interface {interface.name!r}")
        names.add(interface.name)
        if interface.name == "lo" or tunnel_name.fullmatch(interface.name):
            yield _host_problem(
                member,
                f"{field}.name",
                f"{interface.name!r} is reserved (loopback or a tunnel interface name)",
            )
        if site is None or not site.prefixes:
            continue
        for number, addr in enumerate(interface.addresses):
            if not any(
                addr.version == prefix.version and addr.network.subnet_of(prefix)  # type: ignore[arg-type]
                for prefix in site.prefixes
            ):
                prefixes = ", ".join(str(prefix) for prefix in site.prefixes)
                inside = any(addr.ip in prefix for prefix in site.prefixes)
                yield _host_problem(
                    member,
                    f"{field}.addresses[{number}]",
                    f"the subnet {addr.network} of {addr} is larger than the prefixes of "
                    f"{site.name} ({prefixes})"
                    if inside
                    else f"{addr} is outside the prefixes of {site.name} ({prefixes})",
                )
    routing = site.routing if site is not None else None
    if routing is None:
        return
    wanted = [*routing.ospf_interfaces]
    wanted += [route.interface for route in routing.static if route.interface is not None]
    missing = sorted({name for name in wanted if name not in names})
    if missing:
        yield _host_problem(
            member,
            "data.gateway.interfaces",
            f"{site.name if site else ''} routes use interface(s) {', '.join(missing)} "
            f"that this gateway does not have (it has: {', '.join(sorted(names)) or 'none'})",
        )


def _check_gateways(
    settings: FleetSettings, sites: list[SiteDraft], members: list[Member]
) -> Iterator[Problem]:
    by_name = {site.name: site for site in sites}
    tunnel_name = re.compile(re.escape(settings.interface_prefix) + r"[0-9]+")
    slots: dict[tuple[str, int], str] = {}
    endpoints: dict[object, str] = {}
    management: dict[tuple[str, int], str] = {}
    addresses: dict[object, str] = {}
    for member in members:
        gateway = member.gateway
        if member.site is not None and gateway.index is not None:
            slot = (member.site, gateway.index)
            if slot in slots:
                yield _host_problem(
                    member,
                    "data.gateway.index",
                    f"duplicate index {gateway.index} in {member.site} (also {slots[slot]})",
                )
            slots.setdefault(slot, member.name)
        if gateway.endpoint is not None:
            if gateway.endpoint in endpoints:
                yield _host_problem(
                    member,
                    "data.gateway.endpoint",
                    f"duplicate endpoint {gateway.endpoint} (also {endpoints[gateway.endpoint]})",
                )
            endpoints.setdefault(gateway.endpoint, member.name)
        if member.hostname is not None and member.port is not None:
            target = (member.hostname.lower(), member.port)
            if target in management:
                yield _host_problem(
                    member,
                    "hostname",
                    f"duplicate management address {member.hostname} port {member.port} "
                    f"(also {management[target]})",
                )
            management.setdefault(target, member.name)
        for index, interface in enumerate(gateway.interfaces):
            for number, addr in enumerate(interface.addresses):
                if addr.ip in addresses:
                    yield _host_problem(
                        member,
                        f"data.gateway.interfaces[{index}].addresses[{number}]",
                        f"duplicate site address {addr.ip} (also {addresses[addr.ip]})",
                    )
                addresses.setdefault(addr.ip, member.name)
        site = by_name.get(member.site) if member.site is not None else None
        yield from _check_site_interfaces(member, site, tunnel_name)
        if gateway.become == "sudo" and member.username == "root":
            yield _host_problem(
                member,
                "data.gateway.become",
                "become: sudo needs a non-root username (username is 'root'); "
                "set username, or use become: root",
            )
        elif gateway.become == "root" and member.username not in ("root", None):
            yield _host_problem(
                member,
                "data.gateway.become",
                f"become: root needs username root (username is {member.username!r}); "
                "use become: sudo for a user with passwordless sudo",
            )
    yield from _check_endpoint_families(sites, members, settings.topology)


def _check_endpoint_families(
    sites: list[SiteDraft], members: list[Member], topology: str
) -> Iterator[Problem]:
    hubs = {site.name for site in sites if site.role == "hub"}
    versions = Counter(m.gateway.endpoint.version for m in members if m.gateway.endpoint)
    if len(versions) < 2:
        return
    for member in members:
        own = member.gateway.endpoint
        if own is None or versions[own.version] > min(versions.values()):
            continue
        peers = [
            other.name
            for other in members
            if other.gateway.endpoint is not None
            and other.gateway.endpoint.version != own.version
            and other.site != member.site
            and (topology == "full-mesh" or member.site in hubs or other.site in hubs)
        ]
        if peers:
            yield _host_problem(
                member,
                "data.gateway.endpoint",
                f"IPv{own.version} endpoint {own} cannot reach the IPv"
                f"{6 if own.version == 4 else 4} endpoints of its peers {', '.join(peers)}",
            )


def _check_fleet(
    settings: FleetSettings,
    sites: list[SiteDraft],
    members: list[Member],
    broken: Broken,
) -> Iterator[Problem]:
    hubs = {site.name for site in sites if site.role == "hub"}
    per_site = Counter(member.site for member in members if member.site is not None)
    tunnels = count_tunnels(per_site, hubs, settings.topology)
    unsure = ("data.fleet.topology", "defaults") in broken or any(
        ("data.site.role", site.name) in broken for site in sites
    )
    for pool, key, bits in ((settings.pool6, "ipv6", 128), (settings.pool4, "ipv4", 32)):
        if unsure or (f"data.fleet.pools.{key}", "defaults") in broken:
            continue  # the default stands in for an invalid value: its size proves nothing
        capacity = (1 << (bits - pool.prefixlen)) // 2
        if capacity < tunnels:
            size = "/127" if bits == 128 else "/31"
            yield _fleet_problem(
                f"pools.{key}",
                f"pool {pool} holds {capacity} {size} subnet(s) but the {settings.topology} "
                f"fleet needs {tunnels} (one per tunnel)",
            )
    count = len(members)
    if settings.listen_port_base + count > PORT_MAX:
        yield _fleet_problem(
            "listen_port_base",
            f"listen_port_base {settings.listen_port_base} + {count} gateways exceeds "
            f"{PORT_MAX} (one ListenPort per gateway); use at most {PORT_MAX - count}",
        )
    longest = f"{settings.interface_prefix}{max(count, 1)}"
    if len(longest) > IFNAMSIZ_MAX:
        yield _fleet_problem(
            "interface_prefix",
            f"tunnel interface names such as {longest!r} would be {len(longest)} characters; "
            f"Linux allows at most {IFNAMSIZ_MAX}: shorten the prefix",
        )


def check_fleet(
    settings: FleetSettings,
    sites: list[SiteDraft],
    members: list[Member],
    broken: Broken = frozenset(),
) -> list[Problem]:
    """Apply every cross-object rule.

    Args:
        settings: The fleet settings (defaults where invalid).
        sites: Every site group, in file order.
        members: Every gateway host, in file order.
        broken: ``(field, where)`` of values already reported invalid: rules that
            would judge the default standing in for them are skipped.

    Returns:
        The problems found, in a stable order.
    """
    return [
        *_check_sites(settings, sites, members, broken),
        *_check_overlaps(sites),
        *_check_gateways(settings, sites, members),
        *_check_fleet(settings, sites, members, broken),
    ]
