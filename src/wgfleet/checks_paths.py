"""Paths between sites: the health of each tunnel end, each path, and the site x site matrix.

A *path* is a planned tunnel between a gateway of one site and a gateway of another. It is
up when, on every end that was observed, the tunnel exists (in the private namespace, with
its UDP socket), its latest handshake is fresh and both its BGP sessions are Established.
An end that was not observed (unreachable, or not selected) counts with whatever the other
end sees; a path with neither end observed is unknown. In hub-and-spoke, two spoke sites are
joined through the hub gateways: a transit path is a pair of paths (spoke-hub, hub-spoke)
through the same hub gateway.

Every component finding takes its severity from the site pair it affects (see
:meth:`Context.failure`): a failure is a *warning* (redundancy degraded) while the pair
still has a working path, and *critical* (outage) when it has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from wgfleet.findings import SEVERITY_ORDER, PairStatus, Severity
from wgfleet.model import IPNetwork, VerifyThresholds
from wgfleet.observation import Observation
from wgfleet.parsers.wg import WgInterface, WgPeer
from wgfleet.plan import FleetPlan, GatewayPlan, Tunnel

# How many broken paths a site-pair message names before it says "and N more".
_SHOWN_PATHS = 3


def reference_time(observation: Observation, now: float | None) -> float | None:
    """The clock handshake ages are measured against: the gateway's own, else ``now``.

    The gateway's clock is preferred because ``latest_handshake`` is in the gateway's time:
    a skewed control machine would otherwise age every handshake.
    """
    if observation.collected_at > 0:
        return observation.collected_at
    return now


def tunnel_peer(interface: WgInterface, expected_key: str | None) -> WgPeer | None:
    """The peer the tunnel uses: the one with the expected key, else the first one."""
    if expected_key is not None:
        for peer in interface.peers:
            if peer.public_key == expected_key:
                return peer
    return interface.peers[0] if interface.peers else None


@dataclass(frozen=True, slots=True)
class TunnelEnd:
    """One gateway's view of one of its tunnels, reduced to what a path needs.

    Attributes:
        gateway: The gateway this end is on.
        tunnel: The planned tunnel.
        observed: Whether the gateway answered (otherwise nothing else is known).
        problems: Why this end does not carry traffic (short phrases); empty when healthy.
    """

    gateway: str
    tunnel: Tunnel
    observed: bool
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        """True when observed and nothing is wrong."""
        return self.observed and not self.problems


def tunnel_end(
    gateway: GatewayPlan,
    tunnel: Tunnel,
    sessions: Iterable[str],
    observation: Observation | None,
    verify: VerifyThresholds,
    now: float | None,
) -> TunnelEnd:
    """Judge one end of a tunnel from its own gateway's observation."""
    if observation is None or not observation.reachable:
        return TunnelEnd(gateway.name, tunnel, observed=False)
    obs = observation
    name = tunnel.interface
    problems: list[str] = []
    if not obs.namespace:
        problems.append("namespace missing")
    elif name not in obs.links or name not in obs.wireguard:
        problems.append(f"{name} missing")
    elif tunnel.listen_port not in obs.udp_ports:
        problems.append(f"no UDP socket {tunnel.listen_port}")
    interface = obs.wireguard.get(name)
    peer = tunnel_peer(interface, None) if interface is not None else None
    if obs.namespace and interface is not None and peer is None:
        problems.append(f"{name} has no peer")
    if obs.namespace and peer is not None:
        ref = reference_time(obs, now)
        if peer.latest_handshake == 0:
            problems.append(f"{name} never had a handshake")
        elif ref is not None and ref - peer.latest_handshake > verify.handshake_critical:
            problems.append(f"{name} handshake {ref - peer.latest_handshake:.0f} s ago")
    if obs.bird is None:
        problems.append("BIRD not running")
    else:
        for session in sessions:
            protocol = obs.bird.get(session)
            if protocol is None:
                problems.append(f"{session} not configured")
            elif not protocol.established:
                problems.append(f"{session} {protocol.bgp_state or protocol.state}")
    return TunnelEnd(gateway.name, tunnel, observed=True, problems=tuple(problems))


PathState = Literal["up", "down", "unknown"]


@dataclass(slots=True)
class _Count:
    """Paths of one site pair (or of one hub gateway and one spoke site) by state."""

    up: int = 0
    down: int = 0
    unknown: int = 0

    def add(self, state: PathState) -> None:
        if state == "up":
            self.up += 1
        elif state == "down":
            self.down += 1
        else:
            self.unknown += 1

    @property
    def expected(self) -> int:
        return self.up + self.down + self.unknown


def path_state(a: TunnelEnd, b: TunnelEnd) -> PathState:
    """A path is up when every observed end is healthy; unknown when neither was observed."""
    if not a.observed and not b.observed:
        return "unknown"
    return "up" if all(end.healthy for end in (a, b) if end.observed) else "down"


def _describe(a: TunnelEnd, b: TunnelEnd) -> str:
    """``V1-1~V2-1 (V1-1: wg3 missing; V2-1: IBGP_V1_1 Active)``."""
    parts = [f"{end.gateway}: {', '.join(end.problems)}" for end in (a, b) if end.problems]
    return f"{a.gateway}~{b.gateway} ({'; '.join(parts)})"


@dataclass(frozen=True)
class Matrix:
    """The site x site matrix and the broken paths behind each cell.

    Attributes:
        pairs: Every ordered site pair with at least one planned path.
        broken: Per unordered site pair (lower site first), the paths that are not up.
    """

    pairs: Mapping[tuple[int, int], PairStatus]
    broken: Mapping[tuple[int, int], tuple[str, ...]]

    def broken_paths(self, local: int, remote: int) -> str:
        """The broken paths of a pair, for a message (at most a few, then a count)."""
        paths = self.broken.get((min(local, remote), max(local, remote)), ())
        shown = "; ".join(paths[:_SHOWN_PATHS])
        if len(paths) > _SHOWN_PATHS:
            shown += f"; and {len(paths) - _SHOWN_PATHS} more"
        return shown


def pair_severity(up: int, down: int, unknown: int) -> Severity:
    """Severity of a site pair from its paths.

    All up: ok. None up and none unknown: critical (outage). Nothing known down, some
    unknown: unknown. Otherwise warning (redundancy degraded, or paths known down and the
    rest unknown: possibly worse, but not proven an outage).
    """
    if down == 0 and unknown == 0:
        return "ok"
    if up == 0 and unknown == 0:
        return "critical"
    if down == 0:
        return "unknown"
    return "warning"


def _worse(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_ORDER[a] >= SEVERITY_ORDER[b] else b


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


class Texts(dict[object, str]):
    """``str()`` of addresses and prefixes, each computed once per run (IPv6 is slow to print)."""

    def __missing__(self, key: object) -> str:
        text = self[key] = str(key)
        return text


def remote_sites(gateway: GatewayPlan) -> tuple[int, ...]:
    """Sites this gateway must reach (those of its expected routes), in order."""
    return tuple(sorted({site for group in gateway.expected.routes for site in group.sites}))


def _site_pings(
    plan: FleetPlan, observations: Mapping[str, Observation], texts: Texts
) -> dict[tuple[int, int], tuple[list[float], list[float]]]:
    """Loss and average RTT samples of every gateway's pings to each remote site's probes."""
    samples: dict[tuple[int, int], tuple[list[float], list[float]]] = {}
    for gateway in plan.gateways:
        obs = observations.get(gateway.name)
        if obs is None or not obs.reachable or not obs.namespace:
            continue
        for remote in remote_sites(gateway):
            losses, rtts = samples.setdefault((gateway.site.number, remote), ([], []))
            for probe in plan.site(remote).probes:
                result = obs.pings.get(texts[probe])
                if result is None:
                    continue
                losses.append(result.loss_percent)
                if result.rtt_avg is not None:
                    rtts.append(result.rtt_avg)
    return samples


def build_matrix(
    plan: FleetPlan,
    ends: Mapping[tuple[str, str], TunnelEnd],
    observations: Mapping[str, Observation],
    texts: Texts,
) -> Matrix:
    """Count the paths of every site pair and judge each cell.

    Args:
        plan: The fleet plan.
        ends: Every tunnel end by (gateway, peer gateway).
        observations: What was collected, by gateway (for the site pings).
        texts: The run's cache of printed addresses.
    """
    verify = plan.settings.verify
    hub_mode = plan.settings.topology == "hub-and-spoke"
    rank = {gateway.name: position for position, gateway in enumerate(plan.gateways)}
    direct: dict[tuple[int, int], _Count] = {}
    broken: dict[tuple[int, int], list[str]] = {}
    # Hub-and-spoke: per hub gateway, its paths to each spoke site by state.
    via_hub: dict[str, dict[int, _Count]] = {}
    for (name, peer), end in ends.items():
        back = ends.get((peer, name))
        if back is None or rank[name] > rank[peer]:
            continue  # each path once, from its end that comes first in the plan
        near, far = plan.gateway(name), plan.gateway(peer)
        key = (near.site.number, far.site.number)
        state = path_state(end, back)
        direct.setdefault(key, _Count()).add(state)
        if state == "down":
            broken.setdefault(key, []).append(_describe(end, back))
        if hub_mode:
            for hub, spoke in ((near, far), (far, near)):
                if hub.role == "hub" and spoke.role == "spoke":
                    per_site = via_hub.setdefault(hub.name, {})
                    per_site.setdefault(spoke.site.number, _Count()).add(state)

    counts: dict[tuple[int, int], _Count] = {}
    for (a, b), count in direct.items():
        counts[(a, b)] = counts[(b, a)] = count
    for per_site in via_hub.values():
        spokes = sorted(per_site.items())
        for a, first in spokes:
            for b, second in spokes:
                if a == b:
                    continue
                total = counts.setdefault((a, b), _Count())
                up = first.up * second.up
                maybe = (first.up + first.unknown) * (second.up + second.unknown)
                total.up += up
                total.unknown += maybe - up
                total.down += first.expected * second.expected - maybe

    pings = _site_pings(plan, observations, texts)
    pairs: dict[tuple[int, int], PairStatus] = {}
    for (local, remote), count in sorted(counts.items()):
        if count.expected == 0:
            continue
        severity = pair_severity(count.up, count.down, count.unknown)
        losses, rtts = pings.get((local, remote), ([], []))
        loss, rtt = _mean(losses), _mean(rtts)
        if (loss is not None and loss > verify.loss_warning_percent) or (
            rtt is not None and rtt > verify.rtt_warning_ms
        ):
            severity = _worse(severity, "warning")
        pairs[(local, remote)] = PairStatus(
            local=local,
            remote=remote,
            severity=severity,
            paths_up=count.up,
            paths_expected=count.expected,
            loss_percent=loss,
            rtt_avg_ms=rtt,
        )
    return Matrix(pairs, {key: tuple(value) for key, value in broken.items()})


@dataclass(frozen=True)
class Context:
    """Everything a check needs besides its own gateway's observation.

    Attributes:
        plan: The fleet plan.
        observations: What was collected, by gateway.
        now: Fallback clock for observations without ``collected_at``.
        ends: Every tunnel end by (gateway, peer gateway).
        matrix: The site x site matrix.
        prefix_sites: The site each planned prefix belongs to.
        texts: Printed addresses and prefixes (``ctx.texts[address]``).
    """

    plan: FleetPlan
    observations: Mapping[str, Observation]
    now: float | None
    ends: Mapping[tuple[str, str], TunnelEnd]
    matrix: Matrix
    prefix_sites: Mapping[IPNetwork, int]
    texts: Texts = field(default_factory=Texts)

    @property
    def verify(self) -> VerifyThresholds:
        """The verification thresholds of the plan."""
        return self.plan.settings.verify

    def site_name(self, number: int) -> str:
        """The site's inventory name (``site2``)."""
        return self.plan.site(number).name

    def failure(self, local: int, remote: int) -> tuple[Severity, str]:
        """Severity and consequence of a component failure affecting (local, remote).

        Returns ``("critical", "outage: …")`` when the pair has no working path left,
        else ``("warning", "redundancy degraded: …")``.
        """
        pair = self.matrix.pairs.get((local, remote))
        if pair is not None and pair.severity == "critical":
            return "critical", (
                f"outage: no path left between {self.site_name(local)} and {self.site_name(remote)}"
            )
        if pair is None:
            return "warning", "redundancy degraded"
        return "warning", (
            f"redundancy degraded: {pair.paths_up} of {pair.paths_expected} paths "
            f"{self.site_name(local)}->{self.site_name(remote)} up"
        )

    def worst_failure(self, local: int, remotes: Iterable[int]) -> tuple[Severity, str]:
        """Like :meth:`failure`, for a fault that affects several pairs (namespace, BIRD)."""
        outages = [
            remote
            for remote in sorted(set(remotes))
            if self.failure(local, remote)[0] == "critical"
        ]
        if outages:
            names = ", ".join(self.site_name(r) for r in outages)
            return "critical", f"outage: no path left between {self.site_name(local)} and {names}"
        return "warning", f"redundancy degraded: {self.site_name(local)} still has other paths"
