"""Preshared keys: which tunnels need one set up at both ends (pure, no I/O, no key).

With ``fleet.preshared_keys`` every tunnel has its own preshared key, the same at both ends
(``/etc/wireguard/wgfleet/<if>.psk``, 0600). A key can only be right as a pair: one end
alone with a new key breaks the tunnel at its next handshake. So the control machine
decides per pair, from fingerprints read on both ends (never the keys): a pair whose
files match is left alone; a pair with a file missing or different gets a new key at both
ends, made in memory and written to both within the same run; a pair whose other end is
not in the run (``--limit``) or could not be read is held: its tunnel is left exactly as it
is and the run says why.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from wgfleet.observation import PskState
from wgfleet.plan import FleetPlan


@dataclass(frozen=True, order=True)
class TunnelEnd:
    """One end of a tunnel: a gateway and its interface towards the other end."""

    gateway: str
    interface: str


@dataclass(frozen=True, order=True)
class PskPair:
    """The two ends of a tunnel with a preshared key (``a`` sorts before ``b``)."""

    a: TunnelEnd
    b: TunnelEnd

    @property
    def ends(self) -> tuple[TunnelEnd, TunnelEnd]:
        """Both ends."""
        return (self.a, self.b)

    def other(self, gateway: str) -> TunnelEnd:
        """The end that is not on ``gateway``."""
        return self.b if self.a.gateway == gateway else self.a

    def __str__(self) -> str:
        return f"{self.a.gateway} {self.a.interface} / {self.b.gateway} {self.b.interface}"


def psk_pairs(plan: FleetPlan, gateways: Iterable[str]) -> list[PskPair]:
    """The tunnels with a preshared key that touch any of ``gateways``, each pair once."""
    found: set[PskPair] = set()
    for name in gateways:
        for tunnel in plan.gateway(name).tunnels:
            if not tunnel.preshared_key:
                continue
            back = next(t for t in plan.gateway(tunnel.peer).tunnels if t.peer == name)
            here, there = TunnelEnd(name, tunnel.interface), TunnelEnd(tunnel.peer, back.interface)
            found.add(PskPair(min(here, there), max(here, there)))
    return sorted(found)


@dataclass(frozen=True)
class PskDecision:
    """What a run does about preshared keys.

    Attributes:
        provision: Pairs that get a new key at both ends.
        held: Per gateway, interfaces to leave exactly as they are, with the reason.
    """

    provision: tuple[PskPair, ...]
    held: dict[str, dict[str, str]]


def decide(
    plan: FleetPlan,
    targets: Collection[str],
    fingerprints: dict[str, dict[str, PskState]],
    writable: Collection[str] = (),
) -> PskDecision:
    """Which pairs touching ``targets`` need a new key, and which must be held.

    ``fingerprints`` holds what could be read, per gateway (a gateway missing from it could
    not be reached). A pair whose key files exist and agree needs nothing here (each end's
    apply then feeds its interface the file). A pair whose other end is in ``writable``
    (a later wave of the same runbook run) gets its key at both ends now.
    """
    provision: list[PskPair] = []
    held: dict[str, dict[str, str]] = {}
    for pair in psk_pairs(plan, targets):
        files = [_file(fingerprints, end) for end in pair.ends]
        if all(f is not None for f in files) and files[0] == files[1]:
            continue
        unread = [e.gateway for e in pair.ends if e.gateway not in fingerprints]
        outside = [
            e.gateway for e in pair.ends if e.gateway not in targets and e.gateway not in writable
        ]
        if not unread and not outside:
            provision.append(pair)
            continue
        for end in pair.ends:
            if end.gateway not in targets or end.gateway in unread:
                continue
            other = pair.other(end.gateway).gateway
            why = (
                f"its preshared key with {other} is missing or differs and {other} could not "
                "be read"
                if unread
                else f"its preshared key with {other} is missing or differs; set it up with "
                f"both ends in the run (--limit {end.gateway},{other})"
            )
            held.setdefault(end.gateway, {})[end.interface] = why
    return PskDecision(tuple(provision), held)


def _file(fingerprints: dict[str, dict[str, PskState]], end: TunnelEnd) -> str | None:
    state = fingerprints.get(end.gateway, {}).get(end.interface)
    return state.file if state else None


def by_gateway(pairs: Iterable[PskPair]) -> dict[str, list[str]]:
    """Interfaces per gateway that the pairs touch (sorted)."""
    found: dict[str, set[str]] = {}
    for pair in pairs:
        for end in pair.ends:
            found.setdefault(end.gateway, set()).add(end.interface)
    return {name: sorted(found[name]) for name in sorted(found)}
