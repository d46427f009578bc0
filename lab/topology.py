"""The lab's topology as data: N sites x M gateways, names, namespaces and addresses (pure).

Everything the lab builds derives from :func:`build_topology`, so the unit tests can check
the whole layout without touching the machine.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from wgfleet.errors import BadInputError, Problem

MAX_SITES = 99
MAX_GATEWAYS = 8
DEFAULT_STATE_ROOT = Path("/var/lib/wgfleet-lab")
DEFAULT_NAME = "main"
DEFAULT_PORT = 2222
MGMT_NET = ipaddress.IPv4Network("127.77.0.0/16")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


@dataclass(frozen=True)
class LabSite:
    """A site LAN: a namespace whose bridge owns the article's R<s> host addresses."""

    number: int
    netns: str
    host6: ipaddress.IPv6Interface
    host4: ipaddress.IPv4Interface

    @property
    def prefixes(self) -> tuple[ipaddress.IPv6Network, ipaddress.IPv4Network]:
        """The site's IPv6 and IPv4 prefixes."""
        return self.host6.network, self.host4.network


@dataclass(frozen=True)
class LabGateway:
    """A lab gateway: its own network namespace (public side) and host (PID/mount/UTS)."""

    site: int
    index: int
    name: str
    netns: str
    mgmt_address: ipaddress.IPv4Address
    endpoint: ipaddress.IPv6Interface
    lan6: ipaddress.IPv6Interface
    lan4: ipaddress.IPv4Interface
    uplink: str
    site_veth: str
    inet_veth: str

    @property
    def lan_interface(self) -> str:
        """The site-facing interface inside the gateway (unconfigured, as on a new gateway)."""
        return "lan0"


@dataclass(frozen=True)
class LabTopology:
    """The whole lab: its sites, gateways, SSH front-door port and state directory."""

    name: str
    port: int
    state_dir: Path
    sites: tuple[LabSite, ...]
    gateways: tuple[LabGateway, ...]

    @property
    def inet_netns(self) -> str:
        """The namespace of the "internet" bridge joining every gateway's public endpoint."""
        return f"wgl-{self.name}-inet"

    @property
    def netns_prefix(self) -> str:
        """The prefix of every namespace this lab creates."""
        return f"wgl-{self.name}-"

    def all_netns(self) -> list[str]:
        """Every namespace name this lab creates, in creation order."""
        return [
            self.inet_netns,
            *(site.netns for site in self.sites),
            *(gw.netns for gw in self.gateways),
        ]

    def gateways_of(self, site: int) -> list[LabGateway]:
        """The gateways of one site, by index."""
        return [gw for gw in self.gateways if gw.site == site]

    def gateway(self, name: str) -> LabGateway:
        """Look a gateway up by name (``V1-2``), case-insensitively; KeyError if unknown."""
        for gw in self.gateways:
            if gw.name.lower() == name.lower():
                return gw
        raise KeyError(name)


def validate_size(sites: int, gateways: int, name: str, port: int) -> list[Problem]:
    """Return the problems with the requested lab parameters (empty when valid)."""
    problems: list[Problem] = []
    if not 1 <= sites <= MAX_SITES:
        problems.append(
            Problem("command line", "lab", "--sites", f"must be 1..{MAX_SITES}, got {sites}")
        )
    elif sites < 2:
        problems.append(
            Problem("command line", "lab", "--sites", "a VPN needs at least 2 sites, got 1")
        )
    if not 1 <= gateways <= MAX_GATEWAYS:
        problems.append(
            Problem(
                "command line",
                "lab",
                "--gateways",
                f"must be 1..{MAX_GATEWAYS} gateways per site, got {gateways}",
            )
        )
    if not _NAME_RE.match(name):
        problems.append(
            Problem(
                "command line",
                "lab",
                "--name",
                f"must be 1-8 lowercase letters/digits starting with a letter, got {name!r}",
            )
        )
    if not 1024 <= port <= 65535:
        problems.append(
            Problem("command line", "lab", "--port", f"must be 1024..65535, got {port}")
        )
    return problems


def build_topology(
    sites: int = 3,
    gateways: int = 2,
    *,
    name: str = DEFAULT_NAME,
    port: int = DEFAULT_PORT,
    state_root: Path = DEFAULT_STATE_ROOT,
) -> LabTopology:
    """Derive the full lab layout; raise BadInputError naming each bad parameter."""
    problems = validate_size(sites, gateways, name, port)
    if problems:
        raise BadInputError(problems=problems)
    lab_sites: list[LabSite] = []
    lab_gateways: list[LabGateway] = []
    for s in range(1, sites + 1):
        lab_sites.append(
            LabSite(
                number=s,
                netns=f"wgl-{name}-s{s}",
                host6=ipaddress.IPv6Interface(f"2001:db8:a{s}::1/64"),
                host4=ipaddress.IPv4Interface(f"10.0.{s}.1/24"),
            )
        )
        for n in range(1, gateways + 1):
            lab_gateways.append(
                LabGateway(
                    site=s,
                    index=n,
                    name=f"V{s}-{n}",
                    netns=f"wgl-{name}-g{s}-{n}",
                    mgmt_address=ipaddress.IPv4Address(f"127.77.{s}.{n}"),
                    endpoint=ipaddress.IPv6Interface(f"2001:db8:{s}::{n}/64"),
                    lan6=ipaddress.IPv6Interface(f"2001:db8:a{s}::1{n}/64"),
                    lan4=ipaddress.IPv4Interface(f"10.0.{s}.1{n}/24"),
                    uplink="eth0",
                    site_veth=f"g{s}-{n}",
                    inet_veth=f"g{s}-{n}",
                )
            )
    return LabTopology(
        name=name,
        port=port,
        state_dir=state_root / name,
        sites=tuple(lab_sites),
        gateways=tuple(lab_gateways),
    )
