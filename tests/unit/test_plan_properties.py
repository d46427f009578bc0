"""Properties of the planner over random fleets: stable numbers, unique ports and addresses."""

from __future__ import annotations

import ipaddress
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fleets import fleet, site
from wgfleet.allocations import Allocations, dump_allocations, parse_allocations
from wgfleet.model import Fleet, FleetSettings, Topology
from wgfleet.plan import FleetPlan, plan_fleet

POOLS = FleetSettings(pool4=ipaddress.IPv4Network("169.254.0.0/20"))

# A fleet shape: site number -> (gateway count, is hub).
Shape = dict[int, tuple[int, bool]]

shapes = st.dictionaries(
    st.integers(min_value=1, max_value=9),
    st.tuples(st.integers(min_value=1, max_value=3), st.booleans()),
    min_size=1,
    max_size=6,
)
topologies = st.sampled_from(["full-mesh", "hub-and-spoke"])


def build(shape: Shape, topology: Topology) -> Fleet:
    hub_mode = topology == "hub-and-spoke"
    hubs = {n for n, (_, hub) in shape.items() if hub} or {min(shape)}
    sites = [site(n, role="hub" if hub_mode and n in hubs else "spoke") for n in sorted(shape)]
    return fleet(
        sites, {n: count for n, (count, _) in shape.items()}, topology=topology, settings=POOLS
    )


def tunnels(plan: FleetPlan) -> dict[tuple[str, str], tuple[object, ...]]:
    """Every tunnel end's identity: name, ports and addresses, by (gateway, peer)."""
    return {
        (g.name, t.peer): (
            t.interface,
            t.listen_port,
            t.peer_port,
            t.local6,
            t.peer6,
            t.local4,
            t.peer4,
        )
        for g in plan.gateways
        for t in g.tunnels
    }


def check_invariants(plan: FleetPlan) -> None:
    for g in plan.gateways:
        ports = [t.listen_port for t in g.tunnels]
        names = [t.interface for t in g.tunnels]
        sessions = [s.name for s in g.sessions]
        assert len(set(ports)) == len(ports), f"{g.name}: duplicate ListenPort"
        assert len(set(names)) == len(names), f"{g.name}: duplicate interface"
        assert len(set(sessions)) == len(sessions), f"{g.name}: duplicate session"
        assert all(len(n) <= 15 for n in names)
    ends6 = Counter(t.local6.ip for g in plan.gateways for t in g.tunnels)
    ends4 = Counter(t.local4.ip for g in plan.gateways for t in g.tunnels)
    assert all(count == 1 for count in ends6.values()), "an IPv6 p2p address is used twice"
    assert all(count == 1 for count in ends4.values()), "an IPv4 p2p address is used twice"
    marks = [g.mark for g in plan.gateways]
    assert len(set(marks)) == len(marks)
    by_name = {g.name: g for g in plan.gateways}
    for g in plan.gateways:
        for t in g.tunnels:
            back = next(b for b in by_name[t.peer].tunnels if b.peer == g.name)
            assert (back.peer6, back.peer4) == (t.local6.ip, t.local4.ip)
            assert back.peer_port == t.listen_port and t.peer_port == back.listen_port
            assert t.local6.network == back.local6.network


def assert_stable(before: FleetPlan, after: FleetPlan) -> None:
    old, new = tunnels(before), tunnels(after)
    for key in old.keys() & new.keys():
        assert old[key] == new[key], f"tunnel {key} was renumbered: {old[key]} -> {new[key]}"


@settings(max_examples=60, deadline=None)
@given(st.lists(shapes, min_size=2, max_size=4), topologies)
def test_numbers_never_move_as_the_fleet_changes(steps: list[Shape], topology: Topology) -> None:
    allocations = Allocations()
    previous: FleetPlan | None = None
    for shape in steps:
        f = build(shape, topology)
        plan, allocations = plan_fleet(f, allocations)
        # what the user commits is what the next run reads
        text = dump_allocations(allocations)
        assert parse_allocations(text, f.settings, "allocations.yaml") == allocations
        check_invariants(plan)
        if previous is not None:
            assert_stable(previous, plan)
        assert set(allocations.marks) == {g.name for g in f.gateways}
        assert len(allocations.links) == sum(len(g.tunnels) for g in plan.gateways) // 2
        previous = plan


@settings(max_examples=40, deadline=None)
@given(shapes, shapes, topologies)
def test_growth_keeps_every_existing_tunnel(base: Shape, extra: Shape, topology: Topology) -> None:
    grown = {**extra, **base}
    grown.update({n: (max(c, extra.get(n, (0, False))[0]), h) for n, (c, h) in base.items()})
    small = build(base, topology)
    plan1, alloc = plan_fleet(small, Allocations())
    plan2, _ = plan_fleet(build(grown, topology), alloc)
    assert_stable(plan1, plan2)
    check_invariants(plan2)


@settings(max_examples=40, deadline=None)
@given(shapes, st.data(), topologies)
def test_shrink_keeps_every_remaining_tunnel(
    base: Shape, data: st.DataObject, topology: Topology
) -> None:
    keep = data.draw(st.lists(st.sampled_from(sorted(base)), min_size=1, unique=True))
    smaller = {n: (data.draw(st.integers(1, base[n][0])), base[n][1]) for n in keep}
    plan1, alloc = plan_fleet(build(base, topology), Allocations())
    plan2, alloc2 = plan_fleet(build(smaller, topology), alloc)
    assert_stable(plan1, plan2)
    # freed numbers are dropped from the file
    assert set(alloc2.marks) == {g.name for g in plan2.gateways}


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=2, max_value=9))
def test_fresh_allocation_follows_the_article_formula(site_count: int) -> None:
    f = build({n: (2, False) for n in range(1, site_count + 1)}, "full-mesh")
    plan, _ = plan_fleet(f, Allocations())
    for g in plan.gateways:
        assert g.mark == (g.site.number - 1) * 2 + g.gateway.index
        for t in g.tunnels:
            peer_mark = (t.peer_site - 1) * 2 + t.peer_index
            assert t.interface == f"wg{peer_mark}" and t.listen_port == 5800 + peer_mark
            assert t.peer_port == 5800 + g.mark
    check_invariants(plan)
