"""What verification saw on one gateway: parsed facts, no judgement (pure data).

Collectors fill one :class:`Observation` per gateway from a single batched SSH round trip;
:mod:`wgfleet.checks` compares them with the plan. An unreachable gateway still gets an
Observation (``reachable=False`` and the error), so it is never lost from a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wgfleet.parsers.bird import BirdProtocol
from wgfleet.parsers.fping import PingResult
from wgfleet.parsers.iproute import Link, Route
from wgfleet.parsers.wg import WgInterface


@dataclass(frozen=True)
class Observation:
    """One gateway's state at ``collected_at`` (epoch seconds, the gateway's clock).

    Attributes:
        gateway: Inventory name.
        reachable: False when SSH failed; every other field is then empty.
        error: Why it was unreachable, or what could not be collected.
        collected_at: The gateway's ``date +%s`` when collecting (handshake ages use it).
        namespace: Whether the private namespace exists.
        links: Interfaces of the private namespace (with addresses).
        wireguard: WireGuard interfaces by name (never a private key).
        udp_ports: UDP ports listening in the default namespace (WireGuard sockets).
        bird: BIRD protocols by name, with ``show protocols all`` details; None when BIRD
            could not be reached (``bird_error`` says why).
        bird_error: birdc's complaint when BIRD was unreachable.
        routes: Routes BIRD installed in the private namespace, both families.
        pings: fping results from inside the private namespace, by target address.
        psk: Preshared-key fingerprints by interface (file and live; never a key).
    """

    gateway: str
    reachable: bool
    error: str = ""
    collected_at: float = 0.0
    namespace: bool = False
    links: dict[str, Link] = field(default_factory=dict)
    wireguard: dict[str, WgInterface] = field(default_factory=dict)
    udp_ports: frozenset[int] = frozenset()
    bird: dict[str, BirdProtocol] | None = None
    bird_error: str = ""
    routes: tuple[Route, ...] = ()
    pings: dict[str, PingResult] = field(default_factory=dict)
    psk: dict[str, PskState] = field(default_factory=dict)


@dataclass(frozen=True)
class PskState:
    """A tunnel's preshared key as fingerprints (see ``commands.psk_fingerprints``):
    ``file`` of the key file, ``live`` of the interface's key; None when there is none."""

    file: str | None = None
    live: str | None = None
