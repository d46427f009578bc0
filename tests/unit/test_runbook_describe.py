"""What ``runbook run --check`` says each step would do (the shipped runbooks, reference fleet)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from wgfleet.allocations import load_allocations
from wgfleet.inventory import load_fleet
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.runbook.describe import describe
from wgfleet.runbook.schema import load_runbook, parse_runbook

REPO = Path(__file__).resolve().parents[2]
WAVE1 = ["V1-1", "V2-1", "V3-1"]


def _plan(preshared: bool) -> FleetPlan:
    fleet = load_fleet(REPO / "inventory")
    settings = dataclasses.replace(fleet.settings, preshared_keys=preshared)
    fleet = dataclasses.replace(fleet, settings=settings)
    return plan_fleet(fleet, load_allocations(REPO / "inventory" / "allocations.yaml", settings))[0]


@pytest.mark.parametrize("preshared", [True, False])
def test_rotate_keys_names_the_keys_it_would_replace(preshared: bool) -> None:
    book = load_runbook(REPO / "runbooks" / "rotate-keys.yaml")
    rotate, gate = book.wave
    text = describe(book, rotate, WAVE1, _plan(preshared))
    assert text.startswith("generate a new private key on V1-1, V2-1, V3-1")
    assert text.endswith("then update them and their peers V1-2, V2-2, V3-2 together")
    if preshared:
        assert "a new preshared key for each of their 9 tunnels (both ends)" in text
    else:
        assert "fleet.preshared_keys is off" in text
    assert describe(book, gate, WAVE1, _plan(False)) == (
        "wait up to 120 s until BGP sessions Established and ECMP width restored and "
        "handshakes fresh for V1-1, V2-1, V3-1 and their peers"
    )


def test_every_kind_of_step_is_described() -> None:
    book = parse_runbook(
        "name: t\ndescription: d\ntimeouts: {gate: 30}\n"
        "before:\n  - verify: {require: no-critical, wait: 20}\n  - pause: go?\n"
        "wave:\n  - apply: {parts: [tunnels, bird]}\n  - gate: {sessions: established}\n",
        "t.yaml",
    )
    plan = _plan(False)
    verify, pause = book.before
    apply, gate = book.wave
    assert describe(book, verify, [], plan) == (
        "verify the fleet, requiring no-critical, retrying for up to 20 s"
    )
    assert describe(book, pause, [], plan) == "ask a person to confirm (skipped with --yes)"
    assert describe(book, apply, ["V1-1"], plan) == "apply tunnels, bird to V1-1"
    assert describe(book, gate, ["V1-1"], plan) == (
        "wait up to 30 s until BGP sessions Established for V1-1 and their peers"
    )
    decommission = load_runbook(REPO / "runbooks" / "decommission-gateway.yaml")
    step = next(s for s in decommission.wave if s.kind == "decommission")
    assert describe(decommission, step, ["V3-2"], plan) == (
        "remove wgfleet's BIRD instance, tunnels and files from V3-2"
    )
