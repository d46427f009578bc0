"""Gate conditions and verification requirements of runbooks, on synthetic observations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fleets import reference_fleet
from tests.unit import observations as obs
from wgfleet.allocations import Allocations
from wgfleet.checks import evaluate
from wgfleet.findings import VerifyRun
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.runbook import GateArgs
from wgfleet.runbook.gates import gate_pending, satisfies

ALL = {"V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2"}
SESSIONS = GateArgs(sessions="established", ecmp="restored")


@pytest.fixture(scope="module")
def plan() -> FleetPlan:
    return plan_fleet(reference_fleet(), Allocations())[0]


def run_of(plan: FleetPlan, fleet: obs.Fleet) -> VerifyRun:
    return VerifyRun(plan, fleet, evaluate(plan, fleet), 0.0, 0.0)


def test_a_healthy_fleet_passes_every_gate(plan: FleetPlan) -> None:
    run = run_of(plan, obs.healthy_fleet(plan))
    assert gate_pending(plan, run, SESSIONS, ALL, ALL) == []
    assert satisfies(run, "healthy") and satisfies(run, "no-critical")


def test_a_missing_tunnel_holds_the_gate(plan: FleetPlan) -> None:
    fleet = obs.delete_interface(plan, obs.healthy_fleet(plan), "V1-1", "wg3")
    run = run_of(plan, fleet)
    pending = gate_pending(plan, run, SESSIONS, ALL, ALL)
    assert any(p.startswith("V1-1 IBGP_V2_1:") for p in pending)
    assert any(p.startswith("V2-1 IBGP_V1_1:") for p in pending)
    assert not satisfies(run, "healthy")
    assert satisfies(run, "no-critical") and satisfies(run, "any")


def test_paths_towards_later_waves_do_not_hold_the_gate(plan: FleetPlan) -> None:
    # Wave 1 of a first rollout: V2-1 has not been converged yet (a later wave).
    fleet = obs.delete_interface(plan, obs.healthy_fleet(plan), "V1-1", "wg3")
    run = run_of(plan, fleet)
    done = ALL - {"V2-1"}
    assert gate_pending(plan, run, SESSIONS, ALL, done) == []


def test_only_the_affected_gateways_count(plan: FleetPlan) -> None:
    fleet = obs.delete_interface(plan, obs.healthy_fleet(plan), "V1-1", "wg3")
    run = run_of(plan, fleet)
    assert gate_pending(plan, run, SESSIONS, {"V3-1", "V3-2"}, ALL) == []


def test_an_unreachable_gateway_holds_the_gate_and_fails_every_requirement(
    plan: FleetPlan,
) -> None:
    run = run_of(plan, obs.unreachable(obs.healthy_fleet(plan), "V2-2"))
    assert gate_pending(plan, run, SESSIONS, ALL, ALL) == ["V2-2 unreachable"]
    assert not satisfies(run, "no-critical")
    assert satisfies(run, "any")


def test_a_gate_checks_only_what_it_names(plan: FleetPlan) -> None:
    fleet = obs.delete_interface(plan, obs.healthy_fleet(plan), "V1-1", "wg3")
    run = run_of(plan, fleet)
    ecmp_only = gate_pending(plan, run, GateArgs(ecmp="restored"), ALL, ALL)
    assert ecmp_only and all(" IBGP_" not in p for p in ecmp_only)
    assert gate_pending(plan, run, replace(SESSIONS, sessions=None, ecmp=None), ALL, ALL) == []
