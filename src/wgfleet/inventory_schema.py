"""The schema of wgfleet's inventory data: ``data.fleet``, ``data.site`` and ``data.gateway``.

Each ``parse_*`` function reads one section, records every problem it finds in its
:class:`~wgfleet.inventory_values.Scope` and returns what it could read: fleet settings
fall back to defaults, sites and gateways become drafts whose invalid required fields
are ``None`` so that the cross-object rules can still run on the rest.

The accepted keys (all under the Nornir ``data`` key)::

    defaults.yaml  data.fleet:   namespace topology listen_port_base pools{ipv6 ipv4} mtu
                                 bgp{hold_time keepalive_time connect_retry_time
                                     connect_delay_time error_wait_time preference}
                                 bfd preshared_keys verify{handshake_warning
                                     handshake_critical ping_count loss_warning_percent
                                     loss_critical_percent rtt_warning_ms} interface_prefix
    groups.yaml    data.site:    number asn prefixes routes{mode static interfaces}
                                 probes role
    hosts.yaml     data.gateway: index endpoint interfaces[{name addresses}] become
                                 wireguard keepalive
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from wgfleet import inventory_values as v
from wgfleet.model import (
    Become,
    BgpTimers,
    FleetSettings,
    IPAddress,
    IPInterface,
    IPNetwork,
    RouteSource,
    SiteInterface,
    SiteRole,
    SiteRouting,
    StaticRoute,
    Topology,
    VerifyThresholds,
    WireguardImpl,
)

ASN_MAX = 4294967295
# RFC 6793 (AS_TRANS 23456), RFC 7300 (last 16- and 32-bit ASNs); 0 (RFC 7607) is below range.
RESERVED_ASNS = {23456: "AS_TRANS", 65535: "reserved", ASN_MAX: "reserved"}
MTU_MIN = 1280  # IPv6's minimum link MTU: every tunnel carries IPv6
MTU_MAX = 9000
PORT_MAX = 65535

_FLEET_KEYS = (
    "namespace",
    "topology",
    "listen_port_base",
    "pools",
    "mtu",
    "bgp",
    "bfd",
    "preshared_keys",
    "verify",
    "interface_prefix",
)
_BGP_KEYS = (
    "hold_time",
    "keepalive_time",
    "connect_retry_time",
    "connect_delay_time",
    "error_wait_time",
    "preference",
)
_VERIFY_KEYS = (
    "handshake_warning",
    "handshake_critical",
    "ping_count",
    "loss_warning_percent",
    "loss_critical_percent",
    "rtt_warning_ms",
)


@dataclass(frozen=True)
class SiteDraft:
    """A site as read from its group; ``None`` marks a required field that is invalid."""

    name: str
    number: int | None
    asn: int | None
    prefixes: tuple[IPNetwork, ...]
    routing: SiteRouting
    probes: tuple[IPAddress, ...]
    role: SiteRole


@dataclass(frozen=True)
class GatewayDraft:
    """A gateway's own data (``data.gateway``); ``None`` marks an invalid required field."""

    index: int | None
    endpoint: IPAddress | None
    interfaces: tuple[SiteInterface, ...]
    become: Become
    wireguard: WireguardImpl
    keepalive: int | None


def _bgp(section: v.Section | None) -> BgpTimers:
    base = BgpTimers()
    if section is None:
        return base
    seconds = v.integer(0, PORT_MAX)
    hold = section.read("hold_time", v.integer(0, PORT_MAX), base.hold_time)
    keepalive = section.read("keepalive_time", v.integer(1, PORT_MAX), base.keepalive_time)
    if hold != 0 and (hold < 3 or hold <= keepalive):
        section.scope.add(
            section.field("hold_time"),
            f"hold time {hold} must be 0 (no hold timer) or at least 3 and greater than "
            f"keepalive_time ({keepalive})",
        )
    wait = section.read("error_wait_time", v.list_of(v.integer(1, PORT_MAX)), None)
    error_wait = base.error_wait_time
    if wait is not None and len(wait) != 2:
        section.scope.add(section.field("error_wait_time"), "must be a list of two integers")
    elif wait is not None and wait[0] > wait[1]:
        section.scope.add(
            section.field("error_wait_time"), f"minimum {wait[0]} exceeds maximum {wait[1]}"
        )
    elif wait is not None:
        error_wait = (wait[0], wait[1])
    return BgpTimers(
        hold_time=hold,
        keepalive_time=keepalive,
        connect_retry_time=section.read(
            "connect_retry_time", v.integer(1, PORT_MAX), base.connect_retry_time
        ),
        connect_delay_time=section.read("connect_delay_time", seconds, base.connect_delay_time),
        error_wait_time=error_wait,
        preference=section.read("preference", seconds, base.preference),
    )


def _ordered(section: v.Section, low: str, high: str, values: tuple[float, float]) -> None:
    if section.has(low) and values[0] >= values[1]:
        section.scope.add(
            section.field(low), f"{low} ({values[0]:g}) must be below {high} ({values[1]:g})"
        )
    elif section.has(high) and values[0] >= values[1]:
        section.scope.add(
            section.field(high), f"{high} ({values[1]:g}) must be above {low} ({values[0]:g})"
        )


def _verify(section: v.Section | None) -> VerifyThresholds:
    base = VerifyThresholds()
    if section is None:
        return base
    day = v.integer(1, 86400, " seconds")
    percent = v.number(0, 100)
    result = VerifyThresholds(
        handshake_warning=section.read("handshake_warning", day, base.handshake_warning),
        handshake_critical=section.read("handshake_critical", day, base.handshake_critical),
        ping_count=section.read("ping_count", v.integer(1, 100), base.ping_count),
        loss_warning_percent=section.read(
            "loss_warning_percent", percent, base.loss_warning_percent
        ),
        loss_critical_percent=section.read(
            "loss_critical_percent", percent, base.loss_critical_percent
        ),
        rtt_warning_ms=section.read("rtt_warning_ms", v.number(0.001, 60000), base.rtt_warning_ms),
    )
    _ordered(
        section,
        "handshake_warning",
        "handshake_critical",
        (result.handshake_warning, result.handshake_critical),
    )
    _ordered(
        section,
        "loss_warning_percent",
        "loss_critical_percent",
        (result.loss_warning_percent, result.loss_critical_percent),
    )
    return result


def parse_fleet(scope: v.Scope, value: Any) -> FleetSettings:
    """Read ``data.fleet`` from defaults.yaml; absent or invalid keys take their defaults."""
    base = FleetSettings()
    if value is None:
        return base
    section = v.Section.open(scope, "data.fleet", value, optional=_FLEET_KEYS)
    if section is None:
        return base
    pools = section.section("pools", optional=("ipv6", "ipv4"))
    pool6, pool4 = base.pool6, base.pool4
    if pools is not None:
        read6 = pools.read("ipv6", v.network(6), None)
        read4 = pools.read("ipv4", v.network(4), None)
        pool6 = read6 if isinstance(read6, ipaddress.IPv6Network) else base.pool6
        pool4 = read4 if isinstance(read4, ipaddress.IPv4Network) else base.pool4
    topology: Topology = "full-mesh"
    if section.read("topology", v.choice("full-mesh", "hub-and-spoke"), None) == "hub-and-spoke":
        topology = "hub-and-spoke"
    return FleetSettings(
        namespace=section.read("namespace", v.namespace_name, base.namespace),
        topology=topology,
        listen_port_base=section.read(
            "listen_port_base", v.integer(1, PORT_MAX - 1), base.listen_port_base
        ),
        pool6=pool6,
        pool4=pool4,
        mtu=section.read(
            "mtu", v.integer(MTU_MIN, MTU_MAX, " (tunnels carry IPv6: at least 1280)"), base.mtu
        ),
        bgp=_bgp(section.section("bgp", optional=_BGP_KEYS)),
        bfd=section.read("bfd", v.boolean, base.bfd),
        preshared_keys=section.read("preshared_keys", v.boolean, base.preshared_keys),
        verify=_verify(section.section("verify", optional=_VERIFY_KEYS)),
        interface_prefix=section.read("interface_prefix", v.interface_name, base.interface_prefix),
    )


def _asn(scope: v.Scope, field: str, value: Any) -> int:
    asn = v.integer(1, ASN_MAX)(scope, field, value)
    if asn in RESERVED_ASNS:
        scope.fail(field, f"AS {asn} is {RESERVED_ASNS[asn]} and cannot be used")
    return asn


def _static_route(scope: v.Scope, field: str, value: Any) -> StaticRoute:
    section = v.Section.open(scope, field, value, ("prefix",), ("via", "interface"))
    if section is None:
        raise v.Invalid(field)
    prefix: IPNetwork | None = section.read("prefix", v.network(), None)
    via: IPAddress | None = section.read("via", v.address, None)
    interface = section.read("interface", v.interface_name, None)
    if prefix is not None and via is not None and prefix.version != via.version:
        scope.fail(section.field("via"), f"{via} is not of the same IP version as {prefix}")
    if not section.has("via") and not section.has("interface"):
        scope.fail(field, "a static route needs 'via', 'interface' or both")
    if prefix is None:
        raise v.Invalid(field)
    return StaticRoute(prefix, via, interface)


def _routing(section: v.Section | None) -> SiteRouting:
    if section is None:
        return SiteRouting()
    mode: RouteSource = "connected"
    read = section.read("mode", v.choice("connected", "static", "ospf"), None)
    if read == "static":
        mode = "static"
    elif read == "ospf":
        mode = "ospf"
    static = section.read("static", v.list_of(_static_route), ())
    interfaces = section.read("interfaces", v.list_of(v.interface_name), ())
    for key, wanted in (("static", "static"), ("interfaces", "ospf")):
        if read is not None and mode != wanted and section.has(key):
            section.scope.add(section.field(key), f"only used with mode: {wanted}")
        elif mode == wanted and not section.has(key):
            section.scope.add(
                section.field(key),
                f"mode: {wanted} needs {key!r}"
                + (" (a list of routes)" if key == "static" else " (site interface names)"),
            )
    return SiteRouting(mode=mode, static=static, ospf_interfaces=interfaces)


def parse_site(scope: v.Scope, name: str, value: Any) -> SiteDraft:
    """Read ``data.site`` of the group ``name``."""
    empty = SiteDraft(name, None, None, (), SiteRouting(), (), "spoke")
    section = v.Section.open(
        scope,
        "data.site",
        value,
        required=("number", "asn", "prefixes"),
        optional=("routes", "probes", "role"),
    )
    if section is None:
        return empty
    role: SiteRole = (
        "hub" if section.read("role", v.choice("hub", "spoke"), "") == "hub" else "spoke"
    )
    return SiteDraft(
        name=name,
        number=section.read("number", v.integer(1, PORT_MAX), None),
        asn=section.read("asn", _asn, None),
        prefixes=section.read("prefixes", v.list_of(v.network(), nonempty=True), ()),
        routing=_routing(section.section("routes", optional=("mode", "static", "interfaces"))),
        probes=section.read("probes", v.list_of(v.address), ()),
        role=role,
    )


def _site_interface(scope: v.Scope, field: str, value: Any) -> SiteInterface:
    section = v.Section.open(scope, field, value, ("name", "addresses"))
    if section is None:
        raise v.Invalid(field)
    name = section.read("name", v.interface_name, None)
    addresses: tuple[IPInterface, ...] = section.read(
        "addresses", v.list_of(v.interface_address, nonempty=True), ()
    )
    if name is None:
        raise v.Invalid(field)
    return SiteInterface(name, addresses)


def _endpoint(scope: v.Scope, field: str, value: Any) -> IPAddress:
    endpoint = v.address(scope, field, value)
    if endpoint.is_unspecified or endpoint.is_multicast or endpoint.is_loopback:
        scope.fail(
            field, f"{endpoint} cannot be a tunnel endpoint (unspecified/multicast/loopback)"
        )
    if endpoint.is_link_local:
        scope.fail(field, f"{endpoint} is link-local: peers on other sites cannot reach it")
    return endpoint


def parse_gateway(scope: v.Scope, value: Any) -> GatewayDraft:
    """Read ``data.gateway`` of a host."""
    section = v.Section.open(
        scope,
        "data.gateway",
        value,
        required=("index", "endpoint", "interfaces"),
        optional=("become", "wireguard", "keepalive"),
    )
    if section is None:
        return GatewayDraft(None, None, (), "root", "auto", None)
    become: Become = (
        "sudo" if section.read("become", v.choice("root", "sudo"), "") == "sudo" else "root"
    )
    impl = section.read("wireguard", v.choice("kernel", "userspace", "auto"), "auto")
    wireguard: WireguardImpl = "kernel" if impl == "kernel" else "auto"
    if impl == "userspace":
        wireguard = "userspace"
    keepalive = section.read(
        "keepalive", v.integer(1, PORT_MAX, " seconds (leave it out to turn it off)"), None
    )
    endpoint: IPAddress | None = section.read("endpoint", _endpoint, None)
    return GatewayDraft(
        index=section.read("index", v.integer(1, PORT_MAX), None),
        endpoint=endpoint,
        interfaces=section.read("interfaces", v.list_of(_site_interface, nonempty=True), ()),
        become=become,
        wireguard=wireguard,
        keepalive=keepalive,
    )
