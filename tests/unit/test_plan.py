"""The planner reproduces the article exactly and derives sessions and expected state."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fleets import (
    REFERENCE_GATEWAYS,
    fleet,
    gateway,
    hub_spoke_fleet,
    mesh_fleet,
    reference_fleet,
    site,
)
from wgfleet.allocations import Allocations, allocate
from wgfleet.errors import BadInputError
from wgfleet.model import FleetSettings, SiteInterface
from wgfleet.plan import FleetPlan, peerings, plan_fleet

REPO = Path(__file__).resolve().parents[2]


def _plan(f=None) -> FleetPlan:
    plan, _ = plan_fleet(f or reference_fleet(), Allocations())
    return plan


def _mark(name: str) -> int:
    s, n = (int(x) for x in name[1:].split("-"))
    return (s - 1) * 2 + n


def test_the_inventory_loader_builds_the_reference_fleet() -> None:
    from wgfleet.inventory import load_fleet

    assert load_fleet(REPO / "inventory") == reference_fleet()


def test_marks_follow_the_article() -> None:
    plan = _plan()
    assert [(g.name, g.mark) for g in plan.gateways] == [(n, _mark(n)) for n in REFERENCE_GATEWAYS]


@pytest.mark.parametrize("name", REFERENCE_GATEWAYS)
def test_tunnel_names_ports_and_endpoints_follow_the_article(name: str) -> None:
    g = _plan().gateway(name)
    peers = [p for p in REFERENCE_GATEWAYS if p[1] != name[1]]
    assert [t.peer for t in g.tunnels] == peers
    for t in g.tunnels:
        r, m = t.peer[1:].split("-")
        assert t.interface == f"wg{_mark(t.peer)}"
        assert t.listen_port == 5800 + _mark(t.peer)
        assert t.endpoint == f"[2001:db8:{r}::{m}]:{5800 + _mark(name)}"
        assert t.keepalive == 0


def test_v1_1_matches_the_article_word_for_word() -> None:
    g = _plan().gateway("V1-1")
    assert [(t.interface, t.listen_port) for t in g.tunnels] == [
        ("wg3", 5803),
        ("wg4", 5804),
        ("wg5", 5805),
        ("wg6", 5806),
    ]
    assert g.tunnels[0].endpoint == "[2001:db8:2::1]:5801"
    assert [str(t.local6) for t in g.tunnels] == [
        "2001:db8:ff::/127",
        "2001:db8:ff::2/127",
        "2001:db8:ff::4/127",
        "2001:db8:ff::6/127",
    ]
    # `fping 2001:db8:ff::{1,3,5,7}` from the article
    assert [str(t.peer6) for t in g.tunnels] == [f"2001:db8:ff::{i}" for i in (1, 3, 5, 7)]
    assert [str(t.local4) for t in g.tunnels] == [f"169.254.1.{i}/31" for i in (0, 2, 4, 6)]
    assert [str(t.peer4) for t in g.tunnels] == [f"169.254.1.{i}" for i in (1, 3, 5, 7)]
    assert g.expected.sessions[::2] == ("IBGP_V2_1", "IBGP_V2_2", "IBGP_V3_1", "IBGP_V3_2")


def test_v2_1_reaches_v1_1_through_wg1_on_port_5801() -> None:
    t = _plan().gateway("V2-1").tunnels[0]
    assert (t.interface, t.listen_port, t.peer, t.endpoint) == (
        "wg1",
        5801,
        "V1-1",
        "[2001:db8:1::1]:5803",
    )
    assert (str(t.local6), str(t.peer6)) == ("2001:db8:ff::1/127", "2001:db8:ff::")


def test_subnets_are_handed_out_in_pair_order_lower_gateway_even() -> None:
    plan = _plan()
    order = [(a.name, b.name) for a, b in peerings(reference_fleet())]
    assert order[:5] == [
        ("V1-1", "V2-1"),
        ("V1-1", "V2-2"),
        ("V1-1", "V3-1"),
        ("V1-1", "V3-2"),
        ("V1-2", "V2-1"),
    ]
    for i, (a, b) in enumerate(order):
        ta = next(t for t in plan.gateway(a).tunnels if t.peer == b)
        tb = next(t for t in plan.gateway(b).tunnels if t.peer == a)
        assert ta.local6 == ipaddress.IPv6Interface(f"2001:db8:ff::{2 * i:x}/127")
        assert tb.local6.ip == ta.peer6 and ta.local6.ip == tb.peer6
        assert ta.local4 == ipaddress.IPv4Interface(f"169.254.1.{2 * i}/31")
        assert tb.local4.ip == ta.peer4 and ta.local4.ip == tb.peer4


def test_two_sessions_per_tunnel_one_per_family() -> None:
    g = _plan().gateway("V1-1")
    v6, v4 = g.sessions[0], g.sessions[1]
    assert (v6.name, v6.family, str(v6.local_address), str(v6.peer_address)) == (
        "IBGP_V2_1",
        "ipv6",
        "2001:db8:ff::",
        "2001:db8:ff::1",
    )
    assert (v4.name, v4.family, str(v4.local_address), str(v4.peer_address)) == (
        "IBGP_V2_1_4",
        "ipv4",
        "169.254.1.0",
        "169.254.1.1",
    )
    assert (v6.local_asn, v6.peer_asn, v6.interface) == (65001, 65002, "wg3")
    assert len(g.sessions) == 2 * len(g.tunnels)


def test_expected_state_lists_ecmp_width_per_remote_prefix() -> None:
    g = _plan().gateway("V1-1")
    widths = g.expected.prefix_widths()
    assert widths == {
        ipaddress.ip_network("2001:db8:a2::/64"): 2,
        ipaddress.ip_network("10.0.2.0/24"): 2,
        ipaddress.ip_network("2001:db8:a3::/64"): 2,
        ipaddress.ip_network("10.0.3.0/24"): 2,
    }
    assert [r.interfaces for r in g.expected.routes] == [("wg3", "wg4"), ("wg5", "wg6")]
    assert g.expected.interfaces == ("wg3", "wg4", "wg5", "wg6")
    assert [str(a) for a in g.expected.ping[::2]] == [f"2001:db8:ff::{i}" for i in (1, 3, 5, 7)]
    assert len(g.expected.sessions) == 8


def test_ecmp_width_counts_the_remote_site_gateways() -> None:
    f = fleet([site(1), site(2), site(3)], {1: 1, 2: 3, 3: 2})
    g = _plan(f).gateway("V1-1")
    assert [(r.sites, r.ecmp_width) for r in g.expected.routes] == [((2,), 3), ((3,), 2)]


def test_hub_and_spoke_peers_spokes_with_hubs_only() -> None:
    plan = _plan(hub_spoke_fleet(hubs=2, spokes=3))
    hub, spoke = plan.gateway("V1-1"), plan.gateway("V3-1")
    assert (hub.role, spoke.role) == ("hub", "spoke")
    assert [t.peer for t in spoke.tunnels] == ["V1-1", "V1-2", "V2-1", "V2-2"]
    assert [t.peer for t in hub.tunnels] == [f"V{s}-{n}" for s in (2, 3, 4, 5) for n in (1, 2)]
    # a spoke reaches the other spokes through every hub gateway
    assert [(r.sites, r.ecmp_width) for r in spoke.expected.routes] == [
        ((1,), 2),
        ((2,), 2),
        ((4, 5), 4),
    ]
    assert [(r.sites, r.ecmp_width) for r in hub.expected.routes] == [
        ((2,), 2),
        ((3,), 2),
        ((4,), 2),
        ((5,), 2),
    ]
    to_spoke = next(s for s in hub.sessions if s.peer == "V3-1")
    to_hub = next(s for s in hub.sessions if s.peer == "V2-1")
    assert (to_spoke.export_transit, to_hub.export_transit) == (True, False)
    from_hub = next(s for s in spoke.sessions if s.peer == "V1-1")
    assert (from_hub.import_transit, from_hub.export_transit) == (True, False)


def test_hub_and_spoke_fresh_numbering_still_follows_pair_order() -> None:
    plan = _plan(hub_spoke_fleet(hubs=1, spokes=2))
    order = [(a.name, b.name) for a, b in peerings(hub_spoke_fleet(hubs=1, spokes=2))]
    assert order == [
        ("V1-1", "V2-1"),
        ("V1-1", "V2-2"),
        ("V1-1", "V3-1"),
        ("V1-1", "V3-2"),
        ("V1-2", "V2-1"),
        ("V1-2", "V2-2"),
        ("V1-2", "V3-1"),
        ("V1-2", "V3-2"),
    ]
    assert str(plan.gateway("V3-2").tunnels[1].local6) == "2001:db8:ff::f/127"


def test_hub_and_spoke_without_a_hub_is_refused() -> None:
    f = fleet([site(1), site(2)], topology="hub-and-spoke")
    with pytest.raises(BadInputError, match="at least one site with role: hub"):
        plan_fleet(f, Allocations())


def test_new_gateway_takes_the_lowest_free_mark_and_subnets() -> None:
    f = reference_fleet()
    _, first = plan_fleet(f, Allocations())
    without = replace(f, gateways=tuple(g for g in f.gateways if g.name != "V2-1"))
    _, shrunk = plan_fleet(without, first)
    assert "V2-1" not in shrunk.marks and len(shrunk.links) == 12 - 4
    grown = replace(without, sites=(*f.sites, site(4)), gateways=(*without.gateways, gateway(4, 1)))
    plan, after = plan_fleet(grown, shrunk)
    assert after.marks["V4-1"] == 3  # the mark V2-1 left free
    new_links = {k: v for k, v in after.links.items() if "V4-1" in k}
    # the four subnets V2-1 freed (indexes 0, 4, 8, 9) first, then the next one (12)
    assert [str(n) for n in sorted(link.ipv6 for link in new_links.values())] == [
        "2001:db8:ff::/127",
        "2001:db8:ff::8/127",
        "2001:db8:ff::10/127",
        "2001:db8:ff::12/127",
        "2001:db8:ff::18/127",
    ]
    assert plan.gateway("V1-1").tunnels[-1].interface == "wg3"


def test_router_id_comes_from_the_first_site_ipv4_address_or_the_mark() -> None:
    f = reference_fleet()
    bare = replace(f.gateways[0], interfaces=(SiteInterface("lan0", ()),))
    plan = _plan(replace(f, gateways=(bare, *f.gateways[1:])))
    assert str(plan.gateway("V1-1").router_id) == "10.255.0.1"
    assert str(plan.gateway("V1-2").router_id) == "10.0.1.12"


def test_duplicate_router_ids_are_refused() -> None:
    f = reference_fleet()
    clone = replace(f.gateways[1], interfaces=f.gateways[0].interfaces)
    with pytest.raises(BadInputError, match=r"router id 10\.0\.1\.11"):
        plan_fleet(replace(f, gateways=(f.gateways[0], clone, *f.gateways[2:])), Allocations())


def test_a_pool_too_small_is_reported_with_the_setting() -> None:
    small = FleetSettings(pool4=ipaddress.IPv4Network("169.254.1.0/29"))
    f = replace(reference_fleet(), settings=small)
    with pytest.raises(BadInputError) as caught:
        plan_fleet(f, Allocations())
    assert "defaults.yaml: data.fleet: pools.ipv4: 169.254.1.0/29 is too small" in str(caught.value)


def test_mark_space_is_bounded_by_ports_and_interface_names() -> None:
    settings = FleetSettings(listen_port_base=65532)
    with pytest.raises(BadInputError, match="no mark left"):
        allocate(Allocations(), [f"g{i}" for i in range(4)], [], settings)


def test_peerings_are_linear_in_pairs_for_a_large_mesh() -> None:
    pairs = peerings(mesh_fleet(40))
    assert len(pairs) == 80 * 79 // 2 - 40
    assert len(set(pairs)) == len(pairs)
