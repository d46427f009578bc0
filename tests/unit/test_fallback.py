"""Fallback routes via the site partner while a wave changes a gateway (reference fleet)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fleets import hub_spoke_fleet
from wgfleet import commands as cmd
from wgfleet.allocations import Allocations, load_allocations
from wgfleet.fallback import (
    FALLBACK_METRIC,
    FallbackRoute,
    fallback_routes,
    partner,
    wave_fallbacks,
)
from wgfleet.inventory import load_fleet
from wgfleet.plan import FleetPlan, plan_fleet

REPO = Path(__file__).resolve().parents[2]


def _plan() -> FleetPlan:
    fleet = load_fleet(REPO / "inventory")
    allocations = load_allocations(REPO / "inventory" / "allocations.yaml", fleet.settings)
    return plan_fleet(fleet, allocations)[0]


def test_a_gateway_falls_back_to_its_partner_for_every_remote_prefix() -> None:
    plan = _plan()
    assert partner(plan, "V1-1", {"V1-1"}) == "V1-2"
    assert partner(plan, "V1-1", {"V1-1", "V1-2"}) is None
    lan = plan.gateway("V1-1").gateway.interfaces[0].name
    assert fallback_routes(plan, "V1-1", "V1-2") == tuple(
        sorted(
            FallbackRoute(prefix, via, lan)
            for prefix, via in (
                ("2001:db8:a2::/64", "2001:db8:a1::12"),
                ("2001:db8:a3::/64", "2001:db8:a1::12"),
                ("10.0.2.0/24", "10.0.1.12"),
                ("10.0.3.0/24", "10.0.1.12"),
            )
        )
    )


def test_one_gateway_per_site_waves_get_fallbacks_and_partners_stay_untouched() -> None:
    plan = _plan()
    found = wave_fallbacks(plan, ["V1-1", "V2-1", "V3-1"])
    assert {name: other for name, (other, _) in found.items()} == {
        "V1-1": "V1-2",
        "V2-1": "V2-2",
        "V3-1": "V3-2",
    }
    # Both gateways of a site in one wave (strategy all), or the partner failed: nothing
    # to fall back to.
    assert wave_fallbacks(plan, [g.name for g in plan.gateways]) == {}
    assert "V1-1" not in wave_fallbacks(plan, ["V1-1"], unavailable=["V1-2"])


def test_a_site_of_one_gateway_has_no_partner() -> None:
    plan, _ = plan_fleet(hub_spoke_fleet(hubs=1, spokes=2, gateways_per_site=1), Allocations())
    assert wave_fallbacks(plan, [g.name for g in plan.gateways][:1]) == {}


def test_the_routes_are_added_idempotently_and_removed_quietly(tmp_path: Path) -> None:
    routes = [("2001:db8:a3::/64", "2001:db8:a1::12", "lan0")]
    add = cmd.fallback_script("private", routes, FALLBACK_METRIC, add=True)
    assert "ip -n private route replace 2001:db8:a3::/64 via 2001:db8:a1::12 dev lan0 " in add
    assert f"metric {FALLBACK_METRIC} proto static" in add
    remove = cmd.fallback_script("private", routes, FALLBACK_METRIC, add=False)
    assert "route del 2001:db8:a3::/64" in remove and remove.rstrip().endswith("|| true")
    # An `ip` that fails: adding stops with its status, removing carries on.
    fake = tmp_path / "ip"
    fake.write_text("#!/bin/sh\nexit 2\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    assert subprocess.run(["sh", "-c", add], env=env, check=False).returncode == 2
    assert subprocess.run(["sh", "-c", remove], env=env, check=False).returncode == 0
