"""Synthetic Observations derived from a plan: a converged fleet, and faults as it shows them.

``healthy(plan, name, now)`` is what the collector returns from a converged gateway. The
fault helpers take a whole fleet of observations and return a new one in which every
gateway shows the fault the way the real network would: deleting V1-1's wg3 also makes
V2-1's sessions over wg1 drop, its routes lose a next hop and its pings to V1-1's tunnel
addresses go unanswered. Nothing is mutated in place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from tests.fleets import fake_public_key
from wgfleet.model import IPAddress
from wgfleet.observation import Observation
from wgfleet.parsers.bird import BirdProtocol
from wgfleet.parsers.fping import PingResult
from wgfleet.parsers.iproute import Link, NextHop, Route
from wgfleet.parsers.wg import WgInterface, WgPeer
from wgfleet.plan import FleetPlan, GatewayPlan, Tunnel

NOW = 1_795_646_929.0
BIRD_SINCE = 1_795_646_601
HANDSHAKE_AGE = 30  # seconds: fresh, as after a rekey
RTT_MS = 0.6
BIRD_SOCKET_MISSING = (
    "Unable to connect to server control socket (/run/bird/wgfleet-private.ctl): "
    "No such file or directory"
)

Fleet = dict[str, Observation]


# --- building blocks ---------------------------------------------------------------------


def ping(
    target: IPAddress | str, *, loss: float = 0.0, rtt: float = RTT_MS, count: int = 3
) -> PingResult:
    """An fping summary for ``target``: ``loss`` percent lost, ``rtt`` ms on average."""
    received = round(count * (100 - loss) / 100)
    answered = received > 0
    return PingResult(
        target=str(target),
        sent=count,
        received=received,
        loss_percent=loss,
        rtt_min=rtt * 0.8 if answered else None,
        rtt_avg=rtt if answered else None,
        rtt_max=rtt * 1.2 if answered else None,
    )


def bgp(name: str, state: str = "Established", error: str = "") -> BirdProtocol:
    """A BGP row of ``birdc show protocols all`` in ``state``, with its last error."""
    up = state == "Established"
    info = f"{state}   {error}".strip() if error else state
    return BirdProtocol(
        name=name,
        proto="BGP",
        table="---",
        state="up" if up else "start",
        since=BIRD_SINCE,
        info=info,
        bgp_state=state,
        last_error=error,
        routes_imported=1 if up else None,
        routes_exported=1 if up else None,
    )


def _peer_hop(tunnel: Tunnel, family: int) -> NextHop:
    address = tunnel.peer6 if family == 6 else tunnel.peer4
    return NextHop(gateway=str(address), device=tunnel.interface)


def _remote_sites(gateway: GatewayPlan) -> list[int]:
    return sorted({site for group in gateway.expected.routes for site in group.sites})


def healthy(plan: FleetPlan, name: str, now: float = NOW) -> Observation:
    """What the collector sees on a converged gateway ``name`` at ``now``."""
    gateway = plan.gateway(name)
    links: dict[str, Link] = {
        "lo": Link("lo", 1, "", 65536, True, "UNKNOWN"),
    }
    for interface in gateway.gateway.interfaces:
        links[interface.name] = Link(
            interface.name, len(links) + 1, "veth", 1500, True, "UP", interface.addresses
        )
    wireguard: dict[str, WgInterface] = {}
    for tunnel in gateway.tunnels:
        links[tunnel.interface] = Link(
            tunnel.interface,
            len(links) + 1,
            "wireguard",
            tunnel.mtu,
            True,
            "UNKNOWN",
            (tunnel.local6, tunnel.local4),
        )
        peer = WgPeer(
            public_key=fake_public_key(tunnel.peer),
            has_preshared_key=False,
            endpoint=tunnel.endpoint,
            allowed_ips=("0.0.0.0/0", "::/0"),
            latest_handshake=int(now) - HANDSHAKE_AGE,
            rx_bytes=88_000,
            tx_bytes=89_000,
            keepalive=tunnel.keepalive,
        )
        wireguard[tunnel.interface] = WgInterface(
            tunnel.interface, fake_public_key(name), True, tunnel.listen_port, None, (peer,)
        )
    bird = {
        "devices": BirdProtocol("devices", "Device", "---", "up", BIRD_SINCE, "", None, ""),
        "site_direct": BirdProtocol("site_direct", "Direct", "---", "up", BIRD_SINCE, "", None, ""),
        "kernel4": BirdProtocol("kernel4", "Kernel", "master4", "up", BIRD_SINCE, "", None, ""),
        "kernel6": BirdProtocol("kernel6", "Kernel", "master6", "up", BIRD_SINCE, "", None, ""),
    }
    bird.update({session.name: bgp(session.name) for session in gateway.sessions})
    by_interface = {tunnel.interface: tunnel for tunnel in gateway.tunnels}
    routes = tuple(
        Route(
            prefix,
            "bird",
            tuple(_peer_hop(by_interface[i], prefix.version) for i in group.interfaces),
        )
        for group in gateway.expected.routes
        for prefix in group.prefixes
    )
    pings = {str(a): ping(a) for t in gateway.tunnels for a in (t.peer6, t.peer4)}
    for site in _remote_sites(gateway):
        pings.update({str(p): ping(p) for p in plan.site(site).probes})
    return Observation(
        gateway=name,
        reachable=True,
        collected_at=now,
        namespace=True,
        links=links,
        wireguard=wireguard,
        udp_ports=frozenset(t.listen_port for t in gateway.tunnels),
        bird=bird,
        routes=routes,
        pings=pings,
    )


def healthy_fleet(plan: FleetPlan, now: float = NOW) -> Fleet:
    """Every gateway of ``plan`` converged."""
    return {gateway.name: healthy(plan, gateway.name, now) for gateway in plan.gateways}


# --- one gateway's view ------------------------------------------------------------------


def _reach_probes(plan: FleetPlan, obs: Observation) -> Observation:
    """Site probes without a route any more stop answering (tunnel pings are connected)."""
    probes = {str(p): p for site in plan.sites for p in site.probes}
    pings = dict(obs.pings)
    for target, result in obs.pings.items():
        address = probes.get(target)
        if address is None:
            continue
        if not any(address in route.destination for route in obs.routes if route.nexthops):
            pings[target] = ping(target, loss=100.0, count=result.sent)
    return replace(obs, pings=pings)


def lose_tunnel(
    plan: FleetPlan,
    obs: Observation,
    tunnel: Tunnel,
    *,
    handshake_age: float | None = None,
    error: str = "BGP Error: Hold timer expired",
    state: str = "Connect",
    pings_lost: bool = True,
) -> Observation:
    """This end of ``tunnel`` carries nothing any more: sessions down, next hops gone.

    Args:
        plan: The fleet plan.
        obs: The gateway's observation.
        tunnel: The tunnel (of this gateway) that stopped working.
        handshake_age: Set the latest handshake this many seconds before collection
            (None: leave it).
        error: The sessions' last error.
        state: The sessions' BGP state.
        pings_lost: The peer's tunnel addresses stop answering.
    """
    gateway = plan.gateway(obs.gateway)
    bird = obs.bird
    if bird is not None:
        bird = dict(bird)
        for session in gateway.sessions:
            if session.interface == tunnel.interface and session.name in bird:
                bird[session.name] = bgp(session.name, state, error)
    routes = tuple(
        replace(route, nexthops=hops)
        for route in obs.routes
        if (hops := tuple(h for h in route.nexthops if h.device != tunnel.interface))
    )
    pings = dict(obs.pings)
    if pings_lost:
        for address in (tunnel.peer6, tunnel.peer4):
            if str(address) in pings:
                pings[str(address)] = ping(address, loss=100.0)
    wireguard = obs.wireguard
    interface = wireguard.get(tunnel.interface)
    if handshake_age is not None and interface is not None:
        latest = int(obs.collected_at - handshake_age)
        peers = tuple(replace(p, latest_handshake=latest) for p in interface.peers)
        wireguard = {**wireguard, tunnel.interface: replace(interface, peers=peers)}
    changed = replace(obs, bird=bird, routes=routes, pings=pings, wireguard=wireguard)
    return _reach_probes(plan, changed)


def _tunnel_back(plan: FleetPlan, tunnel: Tunnel, towards: str) -> Tunnel:
    return next(t for t in plan.gateway(tunnel.peer).tunnels if t.peer == towards)


def _peers_lose(
    plan: FleetPlan,
    fleet: Mapping[str, Observation],
    name: str,
    *,
    handshake_age: float | None,
    pings_lost: bool = True,
    tunnels: Iterable[Tunnel] | None = None,
) -> Fleet:
    """Every reachable peer of ``name`` loses its tunnel back to ``name``."""
    result = dict(fleet)
    for tunnel in plan.gateway(name).tunnels if tunnels is None else tunnels:
        back = _tunnel_back(plan, tunnel, name)
        obs = result.get(tunnel.peer)
        if obs is None or not obs.reachable:
            continue
        result[tunnel.peer] = lose_tunnel(
            plan, obs, back, handshake_age=handshake_age, pings_lost=pings_lost
        )
    return result


# --- faults, as the whole fleet shows them -----------------------------------------------


def unreachable(fleet: Mapping[str, Observation], name: str, error: str = "") -> Fleet:
    """``name`` does not answer over SSH (its VPN may still be fine)."""
    why = error or f"cannot connect to {name}: Connection refused"
    return {**fleet, name: Observation(gateway=name, reachable=False, error=why)}


def delete_interface(
    plan: FleetPlan,
    fleet: Mapping[str, Observation],
    name: str,
    interface: str,
    *,
    since: float = 60,
) -> Fleet:
    """``ip -n private link del <interface>`` on ``name``, ``since`` seconds ago."""
    tunnel = next(t for t in plan.gateway(name).tunnels if t.interface == interface)
    obs = fleet[name]
    obs = lose_tunnel(plan, obs, tunnel, state="Active", error="Socket: No such device")
    obs = replace(
        obs,
        links={k: v for k, v in obs.links.items() if k != interface},
        wireguard={k: v for k, v in obs.wireguard.items() if k != interface},
        udp_ports=obs.udp_ports - {tunnel.listen_port},
    )
    result = {**fleet, name: obs}
    return _peers_lose(plan, result, name, handshake_age=HANDSHAKE_AGE + since, tunnels=[tunnel])


def stop_bird(plan: FleetPlan, fleet: Mapping[str, Observation], name: str) -> Fleet:
    """``systemctl stop`` BIRD on ``name``: its kernel routes go, tunnels stay up."""
    obs = replace(fleet[name], bird=None, bird_error=BIRD_SOCKET_MISSING, routes=())
    result = {**fleet, name: _reach_probes(plan, obs)}
    return _peers_lose(plan, result, name, handshake_age=None, pings_lost=False)


def reboot(
    plan: FleetPlan, fleet: Mapping[str, Observation], name: str, *, since: float = 60
) -> Fleet:
    """``name`` rebooted ``since`` seconds ago: no namespace, no tunnels, no BIRD."""
    obs = Observation(
        gateway=name,
        reachable=True,
        collected_at=fleet[name].collected_at or NOW,
        namespace=False,
        bird=None,
        bird_error=BIRD_SOCKET_MISSING,
    )
    result = {**fleet, name: obs}
    return _peers_lose(plan, result, name, handshake_age=HANDSHAKE_AGE + since)


def power_off(
    plan: FleetPlan, fleet: Mapping[str, Observation], name: str, *, since: float = 600
) -> Fleet:
    """``name`` is off: unreachable, and its peers lost their tunnels ``since`` s ago."""
    result = unreachable(fleet, name, f"cannot connect to {name}: timed out")
    return _peers_lose(plan, result, name, handshake_age=HANDSHAKE_AGE + since)


def set_handshake(
    fleet: Mapping[str, Observation], name: str, interface: str, latest: int
) -> Fleet:
    """Set the latest handshake of ``name``'s ``interface`` (0 = never)."""
    obs = fleet[name]
    wg = obs.wireguard[interface]
    peers = tuple(replace(p, latest_handshake=latest) for p in wg.peers)
    wireguard = {**obs.wireguard, interface: replace(wg, peers=peers)}
    return {**fleet, name: replace(obs, wireguard=wireguard)}


def replace_peer(
    fleet: Mapping[str, Observation], name: str, interface: str, **changes: Any
) -> Fleet:
    """Change fields of the (first) peer of ``name``'s ``interface``."""
    obs = fleet[name]
    wg = obs.wireguard[interface]
    peers = (replace(wg.peers[0], **changes), *wg.peers[1:])
    wireguard = {**obs.wireguard, interface: replace(wg, peers=peers)}
    return {**fleet, name: replace(obs, wireguard=wireguard)}


def add_extra_tunnel(
    fleet: Mapping[str, Observation], name: str, interface: str = "wg9", port: int = 5809
) -> Fleet:
    """A WireGuard interface the plan does not have, in the private namespace of ``name``."""
    obs = fleet[name]
    peer = WgPeer(
        fake_public_key("stranger"), False, "[2001:db8:9::9]:5801", ("0.0.0.0/0",), 0, 0, 148, 25
    )
    link = Link(
        interface,
        len(obs.links) + 1,
        "wireguard",
        1420,
        True,
        "UNKNOWN",
        (ipaddress.ip_interface("2001:db8:ff:9::/127"),),
    )
    wg = WgInterface(interface, fake_public_key(name), True, port, None, (peer,))
    return {
        **fleet,
        name: replace(
            obs,
            links={**obs.links, interface: link},
            wireguard={**obs.wireguard, interface: wg},
            udp_ports=obs.udp_ports | {port},
        ),
    }


def add_extra_session(
    fleet: Mapping[str, Observation], name: str, session: str = "IBGP_V9_9", state: str = "Active"
) -> Fleet:
    """A BGP session the plan does not have, in BIRD on ``name``."""
    obs = fleet[name]
    assert obs.bird is not None
    error = "" if state == "Established" else "Socket: Connection refused"
    return {**fleet, name: replace(obs, bird={**obs.bird, session: bgp(session, state, error)})}


def set_ping(
    fleet: Mapping[str, Observation], name: str, target: IPAddress | str, **kwargs: float
) -> Fleet:
    """Replace ``name``'s fping result for ``target`` (see :func:`ping`)."""
    obs = fleet[name]
    count = int(kwargs.pop("count", 3))
    return {
        **fleet,
        name: replace(obs, pings={**obs.pings, str(target): ping(target, count=count, **kwargs)}),
    }
