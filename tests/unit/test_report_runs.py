"""Synthetic verification runs of the reference fleet for the report tests (and their sanity).

Built from the reference inventory's plan with hand-made observations, findings and pair
states, so the writers are tested without collectors or checks:

* ``healthy_run``: every tunnel, session, route and ping ok (``jitter`` moves handshake
  times, counters, RTTs and values the way a second healthy run would);
* ``degraded_run``: V1-1's wg5 (towards V3-1) was deleted: critical tunnel and sessions on
  both ends, ECMP redundancy degraded (warning) for site1 <-> site3, and a BIRD last error
  carrying hostile markup;
* ``unreachable_run``: V2-2 does not answer SSH; its peers still report.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

from wgfleet.allocations import load_allocations
from wgfleet.findings import Finding, PairStatus, Severity, Verdict, VerifyRun
from wgfleet.inventory import load_fleet
from wgfleet.observation import Observation
from wgfleet.parsers.bird import BirdProtocol
from wgfleet.parsers.fping import PingResult
from wgfleet.parsers.iproute import NextHop, Route
from wgfleet.parsers.wg import WgInterface, WgPeer
from wgfleet.plan import FleetPlan, GatewayPlan, plan_fleet

REPO = Path(__file__).resolve().parents[2]
NOW = 1_795_646_700.0  # 2026-11-25T22:45:00Z
HOSTILE = "<script>alert(\"x\")</script> & 'quoted' | `tick` \x1b[31m"

Key = tuple[str, str, str]


@functools.cache
def reference_plan() -> FleetPlan:
    """The plan of the reference inventory (3 sites x 2 gateways, full mesh)."""
    fleet = load_fleet(REPO / "inventory")
    allocations = load_allocations(REPO / "inventory" / "allocations.yaml", fleet.settings)
    plan, _ = plan_fleet(fleet, allocations)
    return plan


def _observation(gateway: GatewayPlan, now: float, jitter: int) -> Observation:
    wireguard = {}
    for i, tunnel in enumerate(gateway.tunnels):
        peer = WgPeer(
            public_key=f"PUBLIC-{tunnel.peer}=",
            has_preshared_key=False,
            endpoint=tunnel.endpoint,
            allowed_ips=("0.0.0.0/0", "::/0"),
            latest_handshake=int(now) - 20 - i - jitter,
            rx_bytes=8000 + 100 * i + 37 * jitter,
            tx_bytes=9000 + 100 * i + 41 * jitter,
            keepalive=0,
        )
        wireguard[tunnel.interface] = WgInterface(
            tunnel.interface, f"PUBLIC-{gateway.name}=", True, tunnel.listen_port, None, (peer,)
        )
    bird = {
        s.name: BirdProtocol(
            name=s.name,
            proto="BGP",
            table="---",
            state="up",
            since=int(now) - 3600 + jitter,
            info="Established",
            bgp_state="Established",
            last_error="",
            routes_imported=2,
            routes_exported=2,
        )
        for s in gateway.sessions
    }
    routes = tuple(
        Route(prefix, "bird", tuple(NextHop(None, i) for i in group.interfaces))
        for group in gateway.expected.routes
        for prefix in group.prefixes
    )
    pings = {
        str(a): PingResult(str(a), 3, 3, 0.0, 0.3, 0.4 + jitter / 100, 0.6)
        for a in gateway.expected.ping
    }
    return Observation(
        gateway=gateway.name,
        reachable=True,
        collected_at=now,
        namespace=True,
        wireguard=wireguard,
        udp_ports=frozenset(t.listen_port for t in gateway.tunnels),
        bird=bird,
        routes=routes,
        pings=pings,
    )


def _finding(
    check: str,
    severity: Severity,
    gateway: str,
    obj: str,
    message: str,
    value: float | str | None = None,
    expected: float | str | None = None,
    site_pair: tuple[int, int] | None = None,
) -> Finding:
    return Finding(check, severity, gateway, obj, message, value, expected, site_pair)


def _healthy_findings(plan: FleetPlan, jitter: int) -> dict[Key, Finding]:
    found: list[Finding] = []
    for g in plan.gateways:
        name = g.name
        found += [
            _finding("gateway.reachable", "ok", name, name, "answers over SSH"),
            _finding("namespace.exists", "ok", name, "private", "namespace private exists"),
            _finding("bird.running", "ok", name, "bird", "BIRD answers"),
        ]
        for i, t in enumerate(g.tunnels):
            pair = (g.site.number, t.peer_site)
            age = 20.0 + i + jitter
            found += [
                _finding("tunnel.exists", "ok", name, t.interface, "interface and port ok"),
                _finding(
                    "tunnel.handshake",
                    "ok",
                    name,
                    t.interface,
                    f"handshake {age:.0f} s ago",
                    age,
                    180.0,
                    pair,
                ),
                _finding("ping.tunnel", "ok", name, str(t.peer6), "alive", 0.0, 0.0, pair),
            ]
        for s in g.sessions:
            pair = (g.site.number, plan.gateway(s.peer).site.number)
            found.append(
                _finding("bgp.established", "ok", name, s.name, "Established", site_pair=pair)
            )
        for group in g.expected.routes:
            for prefix in group.prefixes:
                found.append(
                    _finding(
                        "route.ecmp",
                        "ok",
                        name,
                        str(prefix),
                        "2 next hops",
                        float(group.ecmp_width),
                        float(group.ecmp_width),
                        (g.site.number, group.sites[0]),
                    )
                )
    for a in plan.sites:
        for b in plan.sites:
            if a.number != b.number:
                obj = f"{a.name}->{b.name}"
                found.append(
                    _finding(
                        "site.pair", "ok", "", obj, "4/4 paths up", 4.0, 4.0, (a.number, b.number)
                    )
                )
    return {f.key: f for f in found}


def _pairs(plan: FleetPlan, jitter: int) -> dict[tuple[int, int], PairStatus]:
    return {
        (a.number, b.number): PairStatus(a.number, b.number, "ok", 4, 4, 0.0, 0.4 + jitter / 10)
        for a in plan.sites
        for b in plan.sites
        if a.number != b.number
    }


def _run(
    findings: dict[Key, Finding],
    pairs: dict[tuple[int, int], PairStatus],
    observations: dict[str, Observation],
    started: float,
    unreachable: tuple[str, ...] = (),
) -> VerifyRun:
    plan = reference_plan()
    verdict = Verdict(
        findings=tuple(findings.values()),
        pairs=tuple(pairs.values()),
        unreachable=unreachable,
        sites=tuple(s.number for s in plan.sites),
    )
    return VerifyRun(
        plan, observations, verdict, started, started + 2.5 + started % 1, inventory="inventory"
    )


def healthy_run(started: float = NOW, *, jitter: int = 0) -> VerifyRun:
    """A converged fleet: everything ok."""
    plan = reference_plan()
    now = started + 1
    observations = {g.name: _observation(g, now, jitter) for g in plan.gateways}
    return _run(_healthy_findings(plan, jitter), _pairs(plan, jitter), observations, started)


def _put(
    found: dict[Key, Finding],
    check: str,
    severity: Severity,
    gateway: str,
    obj: str,
    message: str,
    value: float | str | None = None,
    expected: float | str | None = None,
    site_pair: tuple[int, int] | None = None,
) -> None:
    finding = Finding(check, severity, gateway, obj, message, value, expected, site_pair)
    found[finding.key] = finding


def degraded_run(started: float = NOW, *, jitter: int = 0) -> VerifyRun:
    """V1-1's wg5 (towards V3-1) deleted: redundancy between site1 and site3 degraded."""
    plan = reference_plan()
    now = started + 1
    observations = {g.name: _observation(g, now, jitter) for g in plan.gateways}
    v11, v31 = observations["V1-1"], observations["V3-1"]
    down = {
        name: replace(p, state="start", bgp_state="Active", info="Active", last_error=HOSTILE)
        for name, p in (v11.bird or {}).items()
        if name.startswith("IBGP_V3_1")
    }
    wg = {k: v for k, v in v11.wireguard.items() if k != "wg5"}
    observations["V1-1"] = replace(v11, wireguard=wg, bird={**(v11.bird or {}), **down})
    old = replace(v31.wireguard["wg1"].peers[0], latest_handshake=int(now) - 150)
    v31_wg = {**v31.wireguard, "wg1": replace(v31.wireguard["wg1"], peers=(old,))}
    v31_bird = {
        n: replace(p, state="start", bgp_state="Connect", info="Connect", last_error="")
        if n.startswith("IBGP_V1_1")
        else p
        for n, p in (v31.bird or {}).items()
    }
    observations["V3-1"] = replace(v31, wireguard=v31_wg, bird=v31_bird)

    found = _healthy_findings(plan, jitter)
    crit: Severity = "critical"
    put = functools.partial(_put, found)
    put("tunnel.exists", crit, "V1-1", "wg5", "interface wg5 is missing", site_pair=(1, 3))
    put("tunnel.handshake", crit, "V1-1", "wg5", "no interface", None, 180.0, (1, 3))
    put("tunnel.handshake", "warning", "V3-1", "wg1", "handshake 150 s ago", 150.0, 180.0, (3, 1))
    for gw, session, state in (("V1-1", "IBGP_V3_1", "Active"), ("V3-1", "IBGP_V1_1", "Connect")):
        pair = (1, 3) if gw == "V1-1" else (3, 1)
        for name in (session, f"{session}_4"):
            text = f"{name} is {state}" + (f": {HOSTILE}" if gw == "V1-1" else "")
            put("bgp.established", crit, gw, name, text, state, "Established", pair)
    for gw, site, pair in (("V1-1", 3, (1, 3)), ("V3-1", 1, (3, 1))):
        for prefix in plan.site(site).prefixes:
            text = "1 of 2 next hops: redundancy degraded"
            put("route.ecmp", "warning", gw, str(prefix), text, 1.0, 2.0, pair)
    put("ping.tunnel", crit, "V1-1", "2001:db8:ff::5", "no answer", 100.0, 0.0, (1, 3))
    for a, b in ((1, 3), (3, 1)):
        text = "3/4 paths up: redundancy degraded"
        put("site.pair", "warning", "", f"site{a}->site{b}", text, 3.0, 4.0, (a, b))
    pairs = _pairs(plan, jitter)
    for a, b in ((1, 3), (3, 1)):
        pairs[(a, b)] = PairStatus(a, b, "warning", 3, 4, 0.0, 0.5)
    return _run(found, pairs, observations, started)


def unreachable_run(started: float = NOW) -> VerifyRun:
    """V2-2 does not answer SSH: unknown for its own objects, its peers still observed."""
    plan = reference_plan()
    now = started + 1
    observations = {g.name: _observation(g, now, 0) for g in plan.gateways}
    error = "ssh: connect to 127.77.2.2 port 2222: timed out after 10 s"
    observations["V2-2"] = Observation("V2-2", reachable=False, error=error)
    found = _healthy_findings(plan, 0)
    for key, finding in list(found.items()):
        if finding.gateway == "V2-2":
            found[key] = replace(finding, severity="unknown", message="gateway unreachable")
    _put(found, "gateway.reachable", "critical", "V2-2", "V2-2", error)
    pairs = _pairs(plan, 0)
    for a, b in ((1, 2), (2, 1), (3, 2), (2, 3)):
        pairs[(a, b)] = PairStatus(a, b, "warning", 2, 4, 0.0, 0.4)
    return _run(found, pairs, observations, started, unreachable=("V2-2",))


# -- sanity of the synthetic runs --------------------------------------------------------


def test_healthy_run_is_ok_everywhere() -> None:
    run = healthy_run()
    assert run.verdict.severity == "ok"
    assert len(run.observations) == 6
    assert {p.severity for p in run.verdict.pairs} == {"ok"}


def test_degraded_run_has_warnings_and_criticals() -> None:
    run = degraded_run()
    assert run.verdict.severity == "critical"
    severities = {(p.local, p.remote): p.severity for p in run.verdict.pairs}
    assert severities[(1, 3)] == severities[(3, 1)] == "warning"
    assert severities[(1, 2)] == "ok"
    assert "wg5" not in run.observations["V1-1"].wireguard


def test_unreachable_run_keeps_the_gateway() -> None:
    run = unreachable_run()
    assert run.verdict.unreachable == ("V2-2",)
    assert not run.observations["V2-2"].reachable
