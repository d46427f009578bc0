"""Parse iproute2's JSON output (``ip -j -d link``, ``ip -j addr``, ``ip -j route``)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from wgfleet.model import IPInterface, IPNetwork
from wgfleet.parsers import ParseError


@dataclass(frozen=True)
class Link:
    """A network interface as ``ip -j -d link show`` reports it."""

    name: str
    ifindex: int
    kind: str
    mtu: int
    up: bool
    operstate: str
    addresses: tuple[IPInterface, ...] = ()


@dataclass(frozen=True)
class NextHop:
    """One next hop of a route."""

    gateway: str | None
    device: str | None


@dataclass(frozen=True)
class Route:
    """A route with all its next hops (ECMP routes have several)."""

    destination: IPNetwork
    protocol: str
    nexthops: tuple[NextHop, ...]

    @property
    def width(self) -> int:
        """Number of next hops (the ECMP width)."""
        return len(self.nexthops)


def _load(text: str, tool: str) -> list[dict[str, Any]]:
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(tool, f"invalid JSON ({exc.msg})", text.splitlines()[0]) from None
    if not isinstance(data, list):
        raise ParseError(tool, "expected a JSON list")
    return [entry for entry in data if isinstance(entry, dict)]


def parse_ip_links(text: str) -> dict[str, Link]:
    """Parse ``ip -j -d addr show`` (or ``link show``): interfaces by name, with addresses."""
    links: dict[str, Link] = {}
    for entry in _load(text, "ip -j link"):
        try:
            name = entry["ifname"]
            info = entry.get("linkinfo", {})
            addresses = tuple(
                ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
                for a in entry.get("addr_info", [])
                if a.get("family") in ("inet", "inet6") and a.get("scope") != "link"
            )
            links[name] = Link(
                name=name,
                ifindex=int(entry["ifindex"]),
                kind=str(info.get("info_kind", "")),
                mtu=int(entry.get("mtu", 0)),
                up="UP" in entry.get("flags", []),
                operstate=str(entry.get("operstate", "UNKNOWN")),
                addresses=addresses,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ParseError("ip -j link", f"missing or bad field {exc}") from None
    return links


def _is_ipv6(entry: dict[str, Any]) -> bool:
    """Family of a route without a prefix (``default``): iproute2 prints ``pref`` only for
    IPv6 routes, and a ``default dev wg0`` or multipath default has no top-level gateway."""
    gateways = [entry.get("gateway"), *(h.get("gateway") for h in entry.get("nexthops", []))]
    return (
        entry.get("family") == "inet6"
        or "pref" in entry
        or any(":" in str(g) for g in gateways if g)
    )


def parse_ip_routes(text: str) -> list[Route]:
    """Parse ``ip -j route show`` (either family); ``default`` becomes ``0.0.0.0/0``/``::/0``."""
    routes: list[Route] = []
    for entry in _load(text, "ip -j route"):
        dst = entry.get("dst", "")
        if dst == "default":
            dst = "::/0" if _is_ipv6(entry) else "0.0.0.0/0"
        try:
            destination = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue  # unreachable/blackhole/anycast entries without a prefix we use
        if "nexthops" in entry:
            hops = tuple(NextHop(h.get("gateway"), h.get("dev")) for h in entry["nexthops"])
        else:
            hops = (NextHop(entry.get("gateway"), entry.get("dev")),)
        routes.append(Route(destination, str(entry.get("protocol", "")), hops))
    return routes


def parse_ss_udp_ports(text: str) -> frozenset[int]:
    """Listening UDP ports from ``ss -H -lun`` (local address is the 4th column)."""
    ports: set[int] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        _, _, port = fields[3].rpartition(":")
        if port.isdigit():
            ports.add(int(port))
    return frozenset(ports)
