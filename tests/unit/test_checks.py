"""The checks judge observations against the plan with the severity policy of issue 5.

Component failures are warnings while the site pair keeps a working path and critical
when it has none; every scenario lists *all* the findings that are not ok, so anything
flagged beyond them fails the test.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fleets import fake_public_key, hub_spoke_fleet, mesh_fleet, reference_fleet
from tests.unit import observations as obs
from tests.unit.observations import NOW, healthy_fleet
from wgfleet.allocations import Allocations
from wgfleet.checks import evaluate
from wgfleet.facts import parse_verify
from wgfleet.findings import CHECKS, Finding, Severity, Verdict
from wgfleet.model import Fleet, VerifyThresholds
from wgfleet.parsers.iproute import NextHop
from wgfleet.plan import FleetPlan, plan_fleet

DATA = Path(__file__).parent / "data"
Key = tuple[str, str, str]


def _plan(fleet: Fleet | None = None) -> FleetPlan:
    plan, _ = plan_fleet(fleet or reference_fleet(), Allocations())
    return plan


@pytest.fixture(scope="module")
def plan() -> FleetPlan:
    return _plan()


def problems(verdict: Verdict) -> dict[Key, Severity]:
    """Every finding that is not ok, by (check, gateway, object)."""
    return {f.key: f.severity for f in verdict.findings if f.severity != "ok"}


def finding(verdict: Verdict, check: str, gateway: str, object: str) -> Finding:
    (found,) = [f for f in verdict.findings if f.key == (check, gateway, object)]
    return found


def pairs(verdict: Verdict) -> dict[tuple[int, int], tuple[Severity, int, int]]:
    return {(p.local, p.remote): (p.severity, p.paths_up, p.paths_expected) for p in verdict.pairs}


def _all(severity: Severity, *keys: Key) -> dict[Key, Severity]:
    return dict.fromkeys(keys, severity)


SITE_PAIRS = [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]


# --- (1) converged ------------------------------------------------------------------------


def test_a_converged_fleet_has_only_ok_findings_and_ok_pairs(plan: FleetPlan) -> None:
    verdict = evaluate(plan, healthy_fleet(plan))

    assert problems(verdict) == {}
    assert verdict.severity == "ok"
    assert verdict.unreachable == ()
    assert verdict.sites == (1, 2, 3)
    assert pairs(verdict) == dict.fromkeys(SITE_PAIRS, ("ok", 4, 4))
    assert all(p.loss_percent == 0.0 and p.rtt_avg_ms == obs.RTT_MS for p in verdict.pairs)


def test_every_check_reports_its_healthy_objects_too(plan: FleetPlan) -> None:
    verdict = evaluate(plan, healthy_fleet(plan))
    v11 = [f for f in verdict.findings if f.gateway == "V1-1"]
    counts = {check: sum(f.check == check for f in v11) for check in CHECKS}
    assert counts == {
        "gateway.reachable": 1,
        "namespace.exists": 1,
        "bird.running": 1,
        "tunnel.exists": 4,
        "tunnel.peer": 4,
        "tunnel.handshake": 4,
        "tunnel.psk": 0,  # none planned, none live: nothing to say
        "tunnel.extra": 1,
        "bgp.established": 8,
        "bgp.extra": 1,
        "route.ecmp": 4,  # 2001:db8:a2::/64, 10.0.2.0/24, 2001:db8:a3::/64, 10.0.3.0/24
        "ping.tunnel": 8,
        "ping.site": 4,
        "site.pair": 0,
    }
    assert sum(f.check == "site.pair" for f in verdict.findings) == 6
    assert len(verdict.findings) == 6 * len(v11) + 6


def test_healthy_findings_carry_values_for_reports(plan: FleetPlan) -> None:
    verdict = evaluate(plan, healthy_fleet(plan))
    handshake = finding(verdict, "tunnel.handshake", "V1-1", "wg3")
    assert handshake.value == obs.HANDSHAKE_AGE
    assert handshake.site_pair == (1, 2)
    ecmp = finding(verdict, "route.ecmp", "V1-1", "2001:db8:a2::/64")
    assert (ecmp.value, ecmp.expected) == (2, 2)
    assert ecmp.message == "V1-1 2001:db8:a2::/64 (site2): 2 next hops via wg3, wg4"
    pair = finding(verdict, "site.pair", "", "site1->site2")
    assert (pair.value, pair.expected, pair.site_pair) == (4, 4, (1, 2))
    session = finding(verdict, "bgp.established", "V2-1", "IBGP_V1_1_4")
    assert session.message == (
        "V2-1 IBGP_V1_1_4 (ipv4 over wg1 towards V1-1 169.254.1.0): Established, "
        "1 routes imported, 1 exported"
    )


# --- (2) a WireGuard interface deleted ------------------------------------------------------


def test_a_deleted_tunnel_degrades_redundancy_between_its_two_sites(plan: FleetPlan) -> None:
    fleet = obs.delete_interface(plan, healthy_fleet(plan), "V1-1", "wg3")
    verdict = evaluate(plan, fleet)

    assert problems(verdict) == _all(
        "warning",
        ("tunnel.exists", "V1-1", "wg3"),
        ("bgp.established", "V1-1", "IBGP_V2_1"),
        ("bgp.established", "V1-1", "IBGP_V2_1_4"),
        ("route.ecmp", "V1-1", "2001:db8:a2::/64"),
        ("route.ecmp", "V1-1", "10.0.2.0/24"),
        ("ping.tunnel", "V1-1", "2001:db8:ff::1"),
        ("ping.tunnel", "V1-1", "169.254.1.1"),
        # V2-1's view of its tunnel wg1 towards V1-1: handshake still recent, sessions down.
        ("bgp.established", "V2-1", "IBGP_V1_1"),
        ("bgp.established", "V2-1", "IBGP_V1_1_4"),
        ("route.ecmp", "V2-1", "2001:db8:a1::/64"),
        ("route.ecmp", "V2-1", "10.0.1.0/24"),
        ("ping.tunnel", "V2-1", "2001:db8:ff::"),
        ("ping.tunnel", "V2-1", "169.254.1.0"),
        ("site.pair", "", "site1->site2"),
        ("site.pair", "", "site2->site1"),
    )
    assert pairs(verdict)[(1, 2)] == ("warning", 3, 4)
    assert pairs(verdict)[(2, 1)] == ("warning", 3, 4)
    assert pairs(verdict)[(1, 3)] == ("ok", 4, 4)
    assert finding(verdict, "tunnel.handshake", "V2-1", "wg1").severity == "ok"


def test_messages_name_gateway_object_observed_and_expected(plan: FleetPlan) -> None:
    fleet = obs.delete_interface(plan, healthy_fleet(plan), "V1-1", "wg3")
    verdict = evaluate(plan, fleet)

    exists = finding(verdict, "tunnel.exists", "V1-1", "wg3")
    assert exists.message.startswith(
        "V1-1 wg3 towards V2-1: interface missing from namespace private (apply to repair; "
        "redundancy degraded: 3 of 4 paths site1->site2 up)"
    )
    session = finding(verdict, "bgp.established", "V2-1", "IBGP_V1_1")
    assert session.message.startswith(
        "V2-1 IBGP_V1_1 (ipv6 over wg1 towards V1-1 2001:db8:ff::): Connect, last error: "
        "BGP Error: Hold timer expired, expected Established"
    )
    assert session.value == "Connect"
    ecmp = finding(verdict, "route.ecmp", "V1-1", "2001:db8:a2::/64")
    assert "1 of 2 next hops, via wg4; missing wg3" in ecmp.message
    assert (ecmp.value, ecmp.expected) == (1, 2)
    pair = finding(verdict, "site.pair", "", "site1->site2")
    assert pair.message.startswith("site1 -> site2: redundancy degraded: 3 of 4 paths up; down: ")
    assert "V1-1~V2-1 (V1-1: wg3 missing, IBGP_V2_1 Active" in pair.message
    ping = finding(verdict, "ping.tunnel", "V1-1", "2001:db8:ff::1")
    assert ping.message.startswith("V1-1 ping 2001:db8:ff::1 (V2-1 over wg3): 100% loss of 3")


# --- (3) BIRD stopped -----------------------------------------------------------------------


def test_bird_stopped_is_one_finding_plus_its_consequences(plan: FleetPlan) -> None:
    verdict = evaluate(plan, obs.stop_bird(plan, healthy_fleet(plan), "V1-1"))

    expected = _all(
        "warning",
        ("bird.running", "V1-1", "bird"),
        ("route.ecmp", "V1-1", "2001:db8:a2::/64"),
        ("route.ecmp", "V1-1", "10.0.2.0/24"),
        ("route.ecmp", "V1-1", "2001:db8:a3::/64"),
        ("route.ecmp", "V1-1", "10.0.3.0/24"),
        ("ping.site", "V1-1", "2001:db8:a2::1"),
        ("ping.site", "V1-1", "10.0.2.1"),
        ("ping.site", "V1-1", "2001:db8:a3::1"),
        ("ping.site", "V1-1", "10.0.3.1"),
        ("site.pair", "", "site1->site2"),
        ("site.pair", "", "site2->site1"),
        ("site.pair", "", "site1->site3"),
        ("site.pair", "", "site3->site1"),
    )
    for peer in ("V2-1", "V2-2", "V3-1", "V3-2"):
        expected |= _all(
            "warning",
            ("bgp.established", peer, "IBGP_V1_1"),
            ("bgp.established", peer, "IBGP_V1_1_4"),
            ("route.ecmp", peer, "2001:db8:a1::/64"),
            ("route.ecmp", peer, "10.0.1.0/24"),
        )
    assert problems(verdict) == expected
    assert not [f for f in verdict.findings if f.gateway == "V1-1" and f.check == "bgp.established"]
    bird = finding(verdict, "bird.running", "V1-1", "bird")
    assert "Unable to connect to server control socket" in bird.message
    assert "no route, expected 2 next hops via wg3, wg4" in (
        finding(verdict, "route.ecmp", "V1-1", "2001:db8:a2::/64").message
    )
    assert pairs(verdict)[(1, 2)] == ("warning", 2, 4)
    assert pairs(verdict)[(2, 3)] == ("ok", 4, 4)
    one_two = next(p for p in verdict.pairs if (p.local, p.remote) == (1, 2))
    assert one_two.loss_percent == 50.0  # V1-1's probes all lost, V1-2's all answered


# --- (4) unreachable over SSH ---------------------------------------------------------------


def test_an_unreachable_gateway_is_unknown_and_its_peers_view_is_used(plan: FleetPlan) -> None:
    verdict = evaluate(plan, obs.unreachable(healthy_fleet(plan), "V1-1"))

    assert problems(verdict) == {("gateway.reachable", "V1-1", ""): "unknown"}
    assert verdict.unreachable == ("V1-1",)
    assert verdict.severity == "unknown"
    assert pairs(verdict) == dict.fromkeys(SITE_PAIRS, ("ok", 4, 4))
    assert "Connection refused" in finding(verdict, "gateway.reachable", "V1-1", "").message


def test_an_unreachable_gateway_with_broken_tunnels_is_judged_by_its_peers(
    plan: FleetPlan,
) -> None:
    fleet = obs.power_off(plan, healthy_fleet(plan), "V1-1")
    verdict = evaluate(plan, fleet)

    assert verdict.unreachable == ("V1-1",)
    assert pairs(verdict)[(1, 2)] == ("warning", 2, 4)
    assert pairs(verdict)[(3, 1)] == ("warning", 2, 4)
    assert finding(verdict, "tunnel.handshake", "V2-1", "wg1").severity == "warning"


def test_a_gateway_without_observation_was_not_checked(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    del fleet["V1-1"]
    verdict = evaluate(plan, fleet)

    assert problems(verdict) == {}
    assert verdict.unreachable == ()
    assert not [f for f in verdict.findings if f.gateway == "V1-1"]


def test_a_path_with_neither_end_observed_is_unknown(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    for name in ("V1-1", "V1-2", "V2-1"):
        fleet = obs.unreachable(fleet, name)
    verdict = evaluate(plan, fleet)

    # site1-site2: only V2-2's two paths are observed; V1-x~V2-1 are not known.
    assert pairs(verdict)[(1, 2)] == ("unknown", 2, 4)
    assert pairs(verdict)[(1, 3)] == ("ok", 4, 4)
    assert verdict.unreachable == ("V1-1", "V1-2", "V2-1")


# --- (5) a whole site down ------------------------------------------------------------------


def test_both_gateways_of_a_site_down_is_an_outage_of_its_pairs(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    for name in ("V3-1", "V3-2"):
        fleet = obs.power_off(plan, fleet, name)
    verdict = evaluate(plan, fleet)

    assert verdict.unreachable == ("V3-1", "V3-2")
    assert pairs(verdict) == {
        (1, 2): ("ok", 4, 4),
        (2, 1): ("ok", 4, 4),
        (1, 3): ("critical", 0, 4),
        (3, 1): ("critical", 0, 4),
        (2, 3): ("critical", 0, 4),
        (3, 2): ("critical", 0, 4),
    }
    expected = _all("unknown", ("gateway.reachable", "V3-1", ""), ("gateway.reachable", "V3-2", ""))
    expected |= _all(
        "critical",
        ("site.pair", "", "site1->site3"),
        ("site.pair", "", "site3->site1"),
        ("site.pair", "", "site2->site3"),
        ("site.pair", "", "site3->site2"),
    )
    for gateway in plan.gateways:
        if gateway.site.number == 3:
            continue
        for tunnel in gateway.tunnels:
            if tunnel.peer_site != 3:
                continue
            expected[("tunnel.handshake", gateway.name, tunnel.interface)] = "critical"
            for address in (tunnel.peer6, tunnel.peer4):
                expected[("ping.tunnel", gateway.name, str(address))] = "critical"
        for session in gateway.sessions:
            if session.peer.startswith("V3-"):
                expected[("bgp.established", gateway.name, session.name)] = "critical"
        for prefix in plan.site(3).prefixes:
            expected[("route.ecmp", gateway.name, str(prefix))] = "critical"
        for probe in plan.site(3).probes:
            expected[("ping.site", gateway.name, str(probe))] = "critical"
    assert problems(verdict) == expected
    assert verdict.severity == "critical"
    message = finding(verdict, "route.ecmp", "V1-1", "2001:db8:a3::/64").message
    assert message.endswith("(outage: no path left between site1 and site3)")


def test_both_gateways_of_a_site_rebooted_makes_their_own_findings_critical(
    plan: FleetPlan,
) -> None:
    fleet = healthy_fleet(plan)
    for name in ("V3-1", "V3-2"):
        fleet = obs.reboot(plan, fleet, name)
    verdict = evaluate(plan, fleet)

    assert finding(verdict, "namespace.exists", "V3-1", "private").severity == "critical"
    assert finding(verdict, "bird.running", "V3-2", "bird").severity == "critical"
    assert finding(verdict, "tunnel.exists", "V3-1", "wg1").severity == "critical"
    assert "outage: no path left between site3 and site1, site2" in (
        finding(verdict, "namespace.exists", "V3-1", "private").message
    )
    assert pairs(verdict)[(3, 1)] == ("critical", 0, 4)


# --- (6) extra tunnel and session -----------------------------------------------------------


def test_extra_tunnels_and_sessions_are_warnings(plan: FleetPlan) -> None:
    fleet = obs.add_extra_tunnel(healthy_fleet(plan), "V1-1", "wg9")
    fleet = obs.add_extra_session(fleet, "V2-2", "IBGP_V9_9")
    verdict = evaluate(plan, fleet)

    assert problems(verdict) == _all(
        "warning", ("tunnel.extra", "V1-1", "wg9"), ("bgp.extra", "V2-2", "IBGP_V9_9")
    )
    assert pairs(verdict) == dict.fromkeys(SITE_PAIRS, ("ok", 4, 4))
    extra = finding(verdict, "tunnel.extra", "V1-1", "wg9")
    assert extra.message.startswith(
        "V1-1 wg9: WireGuard interface in namespace private, UDP 5809, peer [2001:db8:9::9]:5801 "
        "is not in the plan"
    )
    assert "Active" in finding(verdict, "bgp.extra", "V2-2", "IBGP_V9_9").message
    # The "nothing extra" findings are gone where something extra was found.
    assert not [f for f in verdict.findings if f.key == ("tunnel.extra", "V1-1", "")]


def test_an_extra_wireguard_interface_outside_the_namespace_says_so(plan: FleetPlan) -> None:
    fleet = obs.add_extra_tunnel(healthy_fleet(plan), "V1-1", "wg9")
    v11 = fleet["V1-1"]
    fleet["V1-1"] = replace(v11, links={k: v for k, v in v11.links.items() if k != "wg9"})
    verdict = evaluate(plan, fleet)
    assert "outside the namespace" in finding(verdict, "tunnel.extra", "V1-1", "wg9").message


# --- (7) handshakes -------------------------------------------------------------------------


def test_handshake_never_is_distinguished_from_too_old(plan: FleetPlan) -> None:
    fleet = obs.set_handshake(healthy_fleet(plan), "V1-1", "wg3", 0)
    fleet = obs.set_handshake(fleet, "V1-1", "wg5", int(NOW) - 400)
    fleet = obs.set_handshake(fleet, "V1-1", "wg6", int(NOW) - 150)
    verdict = evaluate(plan, fleet)

    never = finding(verdict, "tunnel.handshake", "V1-1", "wg3")
    old = finding(verdict, "tunnel.handshake", "V1-1", "wg5")
    late = finding(verdict, "tunnel.handshake", "V1-1", "wg6")
    assert (never.severity, never.value) == ("warning", "never")
    assert never.message.startswith(
        "V1-1 wg3 towards V2-1: never had a handshake (check V2-1's wg1 and UDP 5801 on the way"
    )
    assert (old.severity, old.value) == ("warning", 400)
    assert "latest handshake 400 s ago, down above 180 s" in old.message
    assert (late.severity, late.value) == ("warning", 150)
    assert "suspect above 135 s" in late.message
    # A dead handshake takes its path down; a late one does not.
    assert pairs(verdict)[(1, 2)] == ("warning", 3, 4)
    assert pairs(verdict)[(1, 3)] == ("warning", 3, 4)


def test_handshake_thresholds_come_from_the_plan() -> None:
    base = reference_fleet()
    strict = replace(
        base,
        settings=replace(
            base.settings, verify=VerifyThresholds(handshake_warning=10, handshake_critical=20)
        ),
    )
    plan = _plan(strict)
    verdict = evaluate(plan, healthy_fleet(plan))  # every handshake is 30 s old
    # Every path is down by that measure, so every pair is an outage.
    assert {p.severity for p in verdict.pairs} == {"critical"}
    assert {f.severity for f in verdict.findings if f.check == "tunnel.handshake"} == {"critical"}


def test_handshakes_age_on_the_gateway_clock_else_on_now(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    fleet["V1-1"] = replace(fleet["V1-1"], collected_at=0.0)
    aged = evaluate(plan, fleet, now=NOW + 1000)
    assert finding(aged, "tunnel.handshake", "V1-1", "wg3").value == 1030
    assert finding(aged, "tunnel.handshake", "V1-2", "wg3").value == obs.HANDSHAKE_AGE
    unknown = evaluate(plan, fleet)
    assert finding(unknown, "tunnel.handshake", "V1-1", "wg3").severity == "unknown"


# --- (8) a rebooted gateway -----------------------------------------------------------------


def test_a_rebooted_gateway_is_reported_once_per_root_cause(plan: FleetPlan) -> None:
    verdict = evaluate(plan, obs.reboot(plan, healthy_fleet(plan), "V1-1"))

    expected = _all(
        "warning",
        ("namespace.exists", "V1-1", "private"),
        ("bird.running", "V1-1", "bird"),
        ("tunnel.exists", "V1-1", "wg3"),
        ("tunnel.exists", "V1-1", "wg4"),
        ("tunnel.exists", "V1-1", "wg5"),
        ("tunnel.exists", "V1-1", "wg6"),
        ("site.pair", "", "site1->site2"),
        ("site.pair", "", "site2->site1"),
        ("site.pair", "", "site1->site3"),
        ("site.pair", "", "site3->site1"),
    )
    for peer in ("V2-1", "V2-2", "V3-1", "V3-2"):
        tunnel = next(t for t in plan.gateway(peer).tunnels if t.peer == "V1-1")
        expected |= _all(
            "warning",
            ("bgp.established", peer, "IBGP_V1_1"),
            ("bgp.established", peer, "IBGP_V1_1_4"),
            ("route.ecmp", peer, "2001:db8:a1::/64"),
            ("route.ecmp", peer, "10.0.1.0/24"),
            ("ping.tunnel", peer, str(tunnel.peer6)),
            ("ping.tunnel", peer, str(tunnel.peer4)),
        )
    assert problems(verdict) == expected
    assert pairs(verdict)[(1, 2)] == ("warning", 2, 4)
    assert "namespace private is missing" in (
        finding(verdict, "tunnel.exists", "V1-1", "wg3").message
    )
    assert verdict.unreachable == ()


# --- tunnels in detail ----------------------------------------------------------------------


def test_a_missing_udp_socket_fails_the_tunnel(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    fleet["V1-1"] = replace(fleet["V1-1"], udp_ports=fleet["V1-1"].udp_ports - {5803})
    verdict = evaluate(plan, fleet)
    exists = finding(verdict, "tunnel.exists", "V1-1", "wg3")
    assert exists.severity == "warning"
    assert "no UDP socket on port 5803 in the default namespace" in exists.message
    assert pairs(verdict)[(1, 2)] == ("warning", 3, 4)


def test_an_interface_not_moved_into_the_namespace_fails_the_tunnel(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    v11 = fleet["V1-1"]
    fleet["V1-1"] = replace(v11, links={k: v for k, v in v11.links.items() if k != "wg4"})
    verdict = evaluate(plan, fleet)
    exists = finding(verdict, "tunnel.exists", "V1-1", "wg4")
    assert "WireGuard interface exists but is not in namespace private" in exists.message
    # WireGuard still answers for it, so its peer and handshake are still reported.
    assert finding(verdict, "tunnel.handshake", "V1-1", "wg4").severity == "ok"


def test_wrong_listen_port_and_admin_down_are_reported(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    v11 = fleet["V1-1"]
    wg5 = replace(v11.wireguard["wg5"], listen_port=5999)
    link6 = replace(v11.links["wg6"], up=False)
    fleet["V1-1"] = replace(
        v11,
        wireguard={**v11.wireguard, "wg5": wg5},
        links={**v11.links, "wg6": link6},
    )
    verdict = evaluate(plan, fleet)
    assert "listens on 5999, plan says 5805" in (
        finding(verdict, "tunnel.exists", "V1-1", "wg5").message
    )
    assert "link is down" in finding(verdict, "tunnel.exists", "V1-1", "wg6").message


def test_peer_key_is_checked_against_the_remote_ends_own_key(plan: FleetPlan) -> None:
    fleet = obs.replace_peer(healthy_fleet(plan), "V1-1", "wg3", public_key=fake_public_key("X"))
    verdict = evaluate(plan, fleet)
    peer = finding(verdict, "tunnel.peer", "V1-1", "wg3")
    assert peer.severity == "warning"
    assert f"peer key {fake_public_key('X')[:10]}… but V2-1's wg1 has key" in peer.message
    ok = finding(verdict, "tunnel.peer", "V1-1", "wg4")
    assert ok.message.endswith("key matches V2-2's wg1")


def test_peer_key_is_not_checked_when_the_remote_was_not_observed(plan: FleetPlan) -> None:
    fleet = obs.replace_peer(healthy_fleet(plan), "V1-1", "wg3", public_key=fake_public_key("X"))
    fleet = obs.unreachable(fleet, "V2-1")
    verdict = evaluate(plan, fleet)
    peer = finding(verdict, "tunnel.peer", "V1-1", "wg3")
    assert peer.severity == "ok"
    assert "key matches" not in peer.message


def test_a_peer_that_roamed_after_a_handshake_is_fine(plan: FleetPlan) -> None:
    fleet = obs.replace_peer(healthy_fleet(plan), "V1-1", "wg3", endpoint="[2001:db8:2::9]:40001")
    assert finding(evaluate(plan, fleet), "tunnel.peer", "V1-1", "wg3").severity == "ok"


def test_endpoint_allowed_ips_and_peer_count_are_checked(plan: FleetPlan) -> None:
    fleet = obs.replace_peer(
        healthy_fleet(plan), "V1-1", "wg3", endpoint="[2001:db8:2::9]:5801", latest_handshake=0
    )
    fleet = obs.replace_peer(fleet, "V1-1", "wg4", allowed_ips=("10.0.2.0/24",))
    v11 = fleet["V1-1"]
    wg5 = v11.wireguard["wg5"]
    second = replace(wg5.peers[0], public_key=fake_public_key("other"))
    fleet["V1-1"] = replace(
        v11, wireguard={**v11.wireguard, "wg5": replace(wg5, peers=(*wg5.peers, second))}
    )
    verdict = evaluate(plan, fleet)
    assert "endpoint [2001:db8:2::9]:5801, plan says [2001:db8:2::1]:5801" in (
        finding(verdict, "tunnel.peer", "V1-1", "wg3").message
    )
    assert "allowed IPs 10.0.2.0/24, plan says 0.0.0.0/0, ::/0" in (
        finding(verdict, "tunnel.peer", "V1-1", "wg4").message
    )
    assert "2 peers, plan says 1" in finding(verdict, "tunnel.peer", "V1-1", "wg5").message


def test_a_tunnel_without_peer_takes_its_path_down(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    v11 = fleet["V1-1"]
    wg3 = replace(v11.wireguard["wg3"], peers=())
    fleet["V1-1"] = replace(v11, wireguard={**v11.wireguard, "wg3": wg3})
    verdict = evaluate(plan, fleet)
    assert problems(verdict) == {
        ("tunnel.peer", "V1-1", "wg3"): "warning",
        ("site.pair", "", "site1->site2"): "warning",
        ("site.pair", "", "site2->site1"): "warning",
    }
    assert "no peer configured" in finding(verdict, "tunnel.peer", "V1-1", "wg3").message
    assert "V1-1: wg3 has no peer" in finding(verdict, "site.pair", "", "site1->site2").message


def test_an_equivalent_endpoint_spelling_is_accepted(plan: FleetPlan) -> None:
    fleet = obs.replace_peer(healthy_fleet(plan), "V1-1", "wg3", endpoint="[2001:0db8:2:0::1]:5801")
    assert finding(evaluate(plan, fleet), "tunnel.peer", "V1-1", "wg3").severity == "ok"


# --- routes and pings -----------------------------------------------------------------------


def test_an_unexpected_next_hop_is_a_warning_not_a_loss(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    v11 = fleet["V1-1"]
    routes = tuple(
        replace(r, nexthops=(*r.nexthops, NextHop("2001:db8:ff::5", "wg5")))
        if str(r.destination) == "2001:db8:a2::/64"
        else r
        for r in v11.routes
    )
    fleet["V1-1"] = replace(v11, routes=routes)
    verdict = evaluate(plan, fleet)
    ecmp = finding(verdict, "route.ecmp", "V1-1", "2001:db8:a2::/64")
    assert ecmp.severity == "warning"
    assert "3 next hops, plan says 2; unexpected via wg5" in ecmp.message
    assert pairs(verdict)[(1, 2)] == ("ok", 4, 4)


def test_ping_loss_and_rtt_thresholds(plan: FleetPlan) -> None:
    fleet = obs.set_ping(healthy_fleet(plan), "V1-1", "2001:db8:ff::1", loss=33.3)
    fleet = obs.set_ping(fleet, "V1-1", "169.254.1.1", rtt=250.0)
    verdict = evaluate(plan, fleet)
    lossy = finding(verdict, "ping.tunnel", "V1-1", "2001:db8:ff::1")
    slow = finding(verdict, "ping.tunnel", "V1-1", "169.254.1.1")
    assert (lossy.severity, lossy.value) == ("warning", 33.3)
    assert "33.3% loss of 3" in lossy.message
    assert slow.severity == "warning"
    assert "avg 250.0 ms (RTT above 100 ms)" in slow.message
    assert pairs(verdict)[(1, 2)] == ("ok", 4, 4)  # tunnel pings are per path, not per pair


def test_site_probe_loss_makes_the_pair_a_warning(plan: FleetPlan) -> None:
    fleet = obs.set_ping(healthy_fleet(plan), "V1-1", "2001:db8:a2::1", loss=100.0)
    verdict = evaluate(plan, fleet)
    assert finding(verdict, "ping.site", "V1-1", "2001:db8:a2::1").severity == "warning"
    pair = next(p for p in verdict.pairs if (p.local, p.remote) == (1, 2))
    assert (pair.severity, pair.paths_up, pair.loss_percent) == ("warning", 4, 25.0)
    assert "probes lossy or slow" in finding(verdict, "site.pair", "", "site1->site2").message
    assert pairs(verdict)[(2, 1)] == ("ok", 4, 4)


def test_a_missing_ping_result_is_unknown(plan: FleetPlan) -> None:
    fleet = healthy_fleet(plan)
    v11 = fleet["V1-1"]
    fleet["V1-1"] = replace(v11, pings={k: v for k, v in v11.pings.items() if k != "10.0.3.1"})
    verdict = evaluate(plan, fleet)
    assert problems(verdict) == {("ping.site", "V1-1", "10.0.3.1"): "unknown"}


# --- ordering, scale, real output -----------------------------------------------------------


def test_findings_and_pairs_are_ordered_whatever_the_input_order(plan: FleetPlan) -> None:
    fleet = obs.delete_interface(plan, healthy_fleet(plan), "V1-1", "wg3")
    names = list(fleet)
    random.Random(5).shuffle(names)
    shuffled = {name: fleet[name] for name in names}
    verdict = evaluate(plan, fleet)
    assert evaluate(plan, shuffled) == verdict

    order = [g.name for g in plan.gateways] + [""]
    gateways = [f.gateway for f in verdict.findings]
    assert gateways == sorted(gateways, key=order.index)
    v11 = [f for f in verdict.findings if f.gateway == "V1-1"]
    checks = list(CHECKS)
    assert [f.check for f in v11] == sorted((f.check for f in v11), key=checks.index)
    exists = [f.object for f in v11 if f.check == "tunnel.exists"]
    assert exists == ["wg3", "wg4", "wg5", "wg6"]
    assert [(p.local, p.remote) for p in verdict.pairs] == SITE_PAIRS
    assert [f.object for f in verdict.findings if f.check == "site.pair"] == [
        f"site{a}->site{b}" for a, b in SITE_PAIRS
    ]
    assert verdict.problems()[0].severity == "warning"


def test_natural_order_puts_wg10_after_wg9() -> None:
    plan = _plan(mesh_fleet(6))
    v11 = [f.object for f in evaluate(plan, healthy_fleet(plan)).findings if f.gateway == "V1-1"]
    exists = [o for o in v11 if o.startswith("wg")][:10]
    assert exists == [f"wg{n}" for n in range(3, 13)]


def test_a_large_mesh_evaluates_healthy() -> None:
    plan = _plan(mesh_fleet(20))
    verdict = evaluate(plan, healthy_fleet(plan))
    assert problems(verdict) == {}
    assert len(verdict.pairs) == 20 * 19
    assert {(p.paths_up, p.paths_expected) for p in verdict.pairs} == {(4, 4)}


def test_hub_and_spoke_counts_spoke_pairs_through_the_hubs() -> None:
    plan = _plan(hub_spoke_fleet(1, 3))
    verdict = evaluate(plan, healthy_fleet(plan))
    assert problems(verdict) == {}
    # Spoke to spoke: 2 spoke gateways x 2 hub gateways x 2 spoke gateways.
    assert pairs(verdict)[(2, 3)] == ("ok", 8, 8)
    assert pairs(verdict)[(1, 2)] == ("ok", 4, 4)

    down = evaluate(plan, obs.power_off(plan, healthy_fleet(plan), "V1-1"))
    assert pairs(down)[(2, 3)] == ("warning", 4, 8)
    assert pairs(down)[(1, 2)] == ("warning", 2, 4)

    both = obs.power_off(plan, obs.power_off(plan, healthy_fleet(plan), "V1-1"), "V1-2")
    assert pairs(evaluate(plan, both))[(2, 3)] == ("critical", 0, 8)


def test_a_real_converged_capture_is_all_ok() -> None:
    plan = _plan()
    text = (DATA / "verify_v1-1_converged.txt").read_text()
    observation = parse_verify("V1-1", text)
    verdict = evaluate(plan, {"V1-1": observation})

    v11 = [f for f in verdict.findings if f.gateway == "V1-1"]
    assert [f for f in v11 if f.severity != "ok"] == []
    assert len(v11) == 41
    assert finding(verdict, "tunnel.handshake", "V1-1", "wg3").value == 90
    # Only V1-1's paths were seen: V1-2's are unknown, nothing is known down.
    assert pairs(verdict)[(1, 2)] == ("unknown", 2, 4)
    assert pairs(verdict)[(2, 3)] == ("unknown", 0, 4)
