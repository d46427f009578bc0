"""Preshared keys in the pure core: inventory, plan, pairs, decisions, facts, convergence, checks.

``gather_v1-1_psk.txt`` is the gather script's real output on a lab V1-1 converged with
``fleet.preshared_keys: true`` (fingerprints only: the capture was checked to hold none of
the gateway's keys).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from tests.fleets import hub_spoke_fleet
from tests.unit import observations as obs
from wgfleet import commands as cmd
from wgfleet.allocations import Allocations, load_allocations
from wgfleet.checks import evaluate
from wgfleet.converge import psk_matches, tunnel_steps, wg_matches
from wgfleet.errors import BadInputError
from wgfleet.facts import GatewayFacts, parse_gather, parse_psk_fingerprints
from wgfleet.inventory import load_fleet
from wgfleet.observation import Observation, PskState
from wgfleet.parsers import ParseError
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.psk import PskPair, TunnelEnd, by_gateway, decide, psk_pairs
from wgfleet.tasks.psk import new_psk

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
PATHS = GatewayPaths()


def _inventory(tmp_path: Path, value: object) -> Path:
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory", inventory)
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text())
    defaults["data"]["fleet"]["preshared_keys"] = value
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return inventory


def _plan(preshared: bool) -> FleetPlan:
    fleet = load_fleet(REPO / "inventory")
    fleet = dataclasses.replace(
        fleet, settings=dataclasses.replace(fleet.settings, preshared_keys=preshared)
    )
    allocations = load_allocations(REPO / "inventory" / "allocations.yaml", fleet.settings)
    return plan_fleet(fleet, allocations)[0]


@pytest.fixture(scope="module")
def plan() -> FleetPlan:
    return _plan(True)


@pytest.fixture(scope="module")
def facts() -> GatewayFacts:
    return parse_gather((DATA / "gather_v1-1_psk.txt").read_text(encoding="utf-8"))


def _fp(key: str) -> str:
    return hashlib.sha256(f"{key}\n".encode()).hexdigest()[:16]


# --- inventory and plan ---------------------------------------------------------------------


def test_preshared_keys_are_off_by_default_and_on_for_every_tunnel_when_asked(
    plan: FleetPlan,
) -> None:
    assert not any(t.preshared_key for g in _plan(False).gateways for t in g.tunnels)
    assert all(t.preshared_key for g in plan.gateways for t in g.tunnels)


def test_the_inventory_reads_preshared_keys(tmp_path: Path) -> None:
    assert load_fleet(_inventory(tmp_path, True)).settings.preshared_keys is True


def test_a_preshared_keys_that_is_not_a_boolean_names_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as caught:
        load_fleet(_inventory(tmp_path, "yes"))
    text = str(caught.value)
    assert "defaults.yaml" in text and "preshared_keys" in text and "true or false" in text


# --- pairs and decisions ----------------------------------------------------------------------


def test_pairs_of_the_reference_fleet_name_both_ends_once(plan: FleetPlan) -> None:
    pairs = psk_pairs(plan, [g.name for g in plan.gateways])
    assert len(pairs) == 12  # every tunnel of the 3 x 2 full mesh
    assert len(set(pairs)) == 12
    first = PskPair(TunnelEnd("V1-1", "wg3"), TunnelEnd("V2-1", "wg1"))
    assert pairs[0] == first and str(first) == "V1-1 wg3 / V2-1 wg1"
    assert psk_pairs(plan, ["V1-1"]) == [p for p in pairs if p.a.gateway == "V1-1"]
    assert by_gateway(psk_pairs(plan, ["V1-1"]))["V1-1"] == ["wg3", "wg4", "wg5", "wg6"]
    assert by_gateway(psk_pairs(plan, ["V1-1"]))["V2-2"] == ["wg1"]
    assert psk_pairs(_plan(False), ["V1-1"]) == []


def _fingerprints(plan: FleetPlan, key: str = "a" * 16) -> dict[str, dict[str, PskState]]:
    return {
        g.name: {t.interface: PskState(file=key, live=key) for t in g.tunnels}
        for g in plan.gateways
    }


def test_matching_files_at_both_ends_need_nothing(plan: FleetPlan) -> None:
    everyone = {g.name for g in plan.gateways}
    decision = decide(plan, everyone, _fingerprints(plan))
    assert decision.provision == () and decision.held == {}


def test_a_fresh_fleet_gets_a_key_for_every_pair(plan: FleetPlan) -> None:
    fresh = {g.name: {} for g in plan.gateways}
    decision = decide(plan, {g.name for g in plan.gateways}, fresh)  # type: ignore[arg-type]
    assert len(decision.provision) == 12 and decision.held == {}


def test_a_missing_or_different_file_at_one_end_renews_the_pair(plan: FleetPlan) -> None:
    prints = _fingerprints(plan)
    prints["V2-1"]["wg1"] = PskState(file=None, live="a" * 16)  # V1-1 wg3's other end
    prints["V3-2"]["wg2"] = PskState(file="b" * 16, live="b" * 16)  # V1-2 wg6's other end
    decision = decide(plan, {g.name for g in plan.gateways}, prints)
    assert [str(p) for p in decision.provision] == ["V1-1 wg3 / V2-1 wg1", "V1-2 wg6 / V3-2 wg2"]


def test_a_pair_whose_other_end_is_not_in_the_run_is_held_and_says_how_to_fix_it(
    plan: FleetPlan,
) -> None:
    prints = _fingerprints(plan)
    prints["V2-1"]["wg1"] = PskState()
    decision = decide(plan, {"V1-1"}, prints)
    assert decision.provision == ()
    assert list(decision.held) == ["V1-1"]
    why = decision.held["V1-1"]["wg3"]
    assert "V2-1" in why and "--limit V1-1,V2-1" in why


def test_a_pair_whose_other_end_comes_in_a_later_wave_gets_its_key_now(plan: FleetPlan) -> None:
    fresh = {g.name: {} for g in plan.gateways}
    wave = {"V1-1", "V2-1", "V3-1"}
    later = {"V1-2", "V2-2", "V3-2"}
    decision = decide(plan, wave, fresh, later)  # type: ignore[arg-type]
    assert decision.held == {}
    assert len(decision.provision) == 9  # every tunnel of wave 1's gateways, both ends
    assert (
        decide(plan, wave, fresh, {"V1-2"})
        .held["V1-1"]["wg4"]
        .endswith(  # type: ignore[arg-type]
            "(--limit V1-1,V2-2)"
        )
    )


def test_a_pair_whose_other_end_could_not_be_read_is_held(plan: FleetPlan) -> None:
    prints = _fingerprints(plan)
    prints["V1-1"]["wg3"] = PskState()
    del prints["V2-1"]
    decision = decide(plan, {g.name for g in plan.gateways}, prints)
    assert all("V2-1" not in (p.a.gateway, p.b.gateway) for p in decision.provision)
    assert "could not be read" in decision.held["V1-1"]["wg3"]
    assert "V2-1" not in decision.held  # nothing to say for a gateway not reached


def test_new_keys_are_wireguard_keys_and_never_repeat() -> None:
    keys = {new_psk() for _ in range(64)}
    assert len(keys) == 64
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in keys)


# --- facts from the gateway -------------------------------------------------------------------


def test_fingerprints_parse_from_a_real_gather(facts: GatewayFacts) -> None:
    assert sorted(facts.psk) == ["wg3", "wg4", "wg5", "wg6"]
    assert facts.psk["wg3"] == PskState(file="b48180be875917d7", live="b48180be875917d7")
    assert all(s.file == s.live and s.file is not None for s in facts.psk.values())
    assert all(i.peers[0].has_preshared_key for i in facts.wireguard.values())


def test_fingerprint_lines_tell_none_from_a_key() -> None:
    parsed = parse_psk_fingerprints("live wg3 -\nfile wg3 0123456789abcdef\n\nlive wg4 -\n")
    assert parsed == {"wg3": PskState(file="0123456789abcdef"), "wg4": PskState()}


@pytest.mark.parametrize(
    "line",
    ["live wg3", "live wg3 0123", "seen wg3 0123456789abcdef", "live wg3 0123456789ABCDEF x",
     "file wg3 ZHVtbXktcHJlc2hhcmVkLWtleS1mb3ItdGVzdHMhISE="],
)  # fmt: skip
def test_anything_else_in_the_fingerprint_section_is_refused(line: str) -> None:
    with pytest.raises(ParseError):
        parse_psk_fingerprints(line)


# --- convergence -----------------------------------------------------------------------------


def _keys(facts: GatewayFacts, plan: FleetPlan) -> dict[str, str]:
    tunnels = plan.gateway("V1-1").tunnels
    return {t.peer: facts.wireguard[t.interface].peers[0].public_key for t in tunnels}


def test_a_gateway_converged_with_preshared_keys_needs_nothing(
    plan: FleetPlan, facts: GatewayFacts
) -> None:
    gateway = plan.gateway("V1-1")
    keys = _keys(facts, plan)
    assert all(wg_matches(t, facts, keys[t.peer]) for t in gateway.tunnels)
    assert tunnel_steps(gateway, facts, PATHS, keys, "userspace") == []


def test_a_live_key_other_than_the_file_is_synced_from_the_file(
    plan: FleetPlan, facts: GatewayFacts
) -> None:
    gateway = plan.gateway("V1-1")
    changed = dataclasses.replace(
        facts, psk={**facts.psk, "wg5": PskState(file="1" * 16, live=facts.psk["wg5"].live)}
    )
    steps = tunnel_steps(gateway, changed, PATHS, _keys(facts, plan), "userspace")
    assert [s.description for s in steps] == ["update wg5 towards V3-1 in place"]
    (wrapped,) = steps[0].commands
    command = shlex.split(wrapped)[-1]  # the script `ip netns exec private sh -c` runs
    assert f"test -s {PATHS.psk_file('wg5')}" in command
    assert f"printf 'PresharedKey = '; cat {PATHS.psk_file('wg5')}" in command


def test_a_missing_key_file_never_matches(plan: FleetPlan, facts: GatewayFacts) -> None:
    tunnel = plan.gateway("V1-1").tunnels[0]
    gone = dataclasses.replace(facts, psk={**facts.psk, tunnel.interface: PskState(live="1" * 16)})
    assert not psk_matches(tunnel, gone)
    assert not psk_matches(tunnel, dataclasses.replace(facts, psk={}))


def test_turning_preshared_keys_off_clears_them_and_removes_the_files(
    facts: GatewayFacts,
) -> None:
    gateway = _plan(False).gateway("V1-1")
    keys = _keys(facts, _plan(False))
    assert not any(wg_matches(t, facts, keys[t.peer]) for t in gateway.tunnels)
    steps = tunnel_steps(gateway, facts, PATHS, keys, "userspace")
    updates = [s for s in steps if s.description.startswith("update")]
    assert len(updates) == 4
    assert all(f"PresharedKey = {cmd.NO_PSK}" in s.commands[0] for s in updates)
    removal = steps[-1]
    assert removal.description == (
        "remove the preshared key files of wg3, wg4, wg5, wg6 (none planned)"
    )
    assert removal.commands == (
        "rm -f "
        + " ".join(PATHS.psk_file(f"wg{n}") + end for n in (3, 4, 5, 6) for end in ("", ".prev")),
    )


def test_held_tunnels_are_left_exactly_as_they_are(plan: FleetPlan, facts: GatewayFacts) -> None:
    gateway = plan.gateway("V1-1")
    broken = dataclasses.replace(facts, psk={})
    steps = tunnel_steps(
        gateway, broken, PATHS, _keys(facts, plan), "userspace", skip=frozenset({"wg3", "wg4"})
    )
    assert [s.description.split(" towards")[0] for s in steps] == ["update wg5", "update wg6"]


# --- verification ----------------------------------------------------------------------------


def _with_psk(
    plan: FleetPlan, observation: Observation, prints: dict[str, str | None]
) -> Observation:
    wireguard = {}
    for name, interface in observation.wireguard.items():
        has = prints.get(name) is not None
        peers = tuple(dataclasses.replace(p, has_preshared_key=has) for p in interface.peers)
        wireguard[name] = dataclasses.replace(interface, peers=peers)
    psk = {name: PskState(file=value, live=value) for name, value in prints.items()}
    return dataclasses.replace(observation, wireguard=wireguard, psk=psk)


def _psk_fleet(plan: FleetPlan) -> dict[str, Observation]:
    """A healthy fleet where every pair shares a key (its fingerprint from the pair)."""
    fleet = dict(obs.healthy_fleet(plan))
    for gateway in plan.gateways:
        prints: dict[str, str | None] = {}
        for tunnel in gateway.tunnels:
            ends = "/".join(sorted((gateway.name, tunnel.peer)))
            prints[tunnel.interface] = _fp(ends)
        fleet[gateway.name] = _with_psk(plan, fleet[gateway.name], prints)
    return fleet


def test_a_fleet_with_matching_keys_verifies_ok(plan: FleetPlan) -> None:
    verdict = evaluate(plan, _psk_fleet(plan))
    found = [f for f in verdict.findings if f.check == "tunnel.psk"]
    assert len(found) == 24 and all(f.severity == "ok" for f in found)
    assert "the same as V2-1's" in found[0].message
    assert verdict.severity == "ok"


def test_keys_that_differ_between_the_ends_are_found_before_the_handshake_fails(
    plan: FleetPlan,
) -> None:
    fleet = _psk_fleet(plan)
    v21 = fleet["V2-1"]
    fleet["V2-1"] = dataclasses.replace(v21, psk={**v21.psk, "wg1": PskState("f" * 16, "f" * 16)})
    verdict = evaluate(plan, fleet)
    bad = {(f.gateway, f.object): f for f in verdict.problems() if f.check == "tunnel.psk"}
    assert set(bad) == {("V1-1", "wg3"), ("V2-1", "wg1")}
    finding = bad[("V1-1", "wg3")]
    assert finding.severity == "warning"  # the other paths between sites 1 and 2 still work
    assert "differs from V2-1's wg1" in finding.message and "next handshake" in finding.message


def test_a_missing_extra_or_pending_key_is_a_warning(plan: FleetPlan) -> None:
    fleet = _psk_fleet(plan)
    v11 = fleet["V1-1"]
    prints: dict[str, str | None] = {n: s.live for n, s in v11.psk.items()}
    prints["wg3"] = None
    fleet["V1-1"] = _with_psk(plan, v11, prints)
    v12 = fleet["V1-2"]
    fleet["V1-2"] = dataclasses.replace(
        v12, psk={**v12.psk, "wg3": PskState("e" * 16, v12.psk["wg3"].live)}
    )
    messages = {
        (f.gateway, f.object): (f.severity, f.message)
        for f in evaluate(plan, fleet).problems()
        if f.check == "tunnel.psk"
    }
    assert messages[("V1-1", "wg3")][0] == "warning"
    assert "no preshared key" in messages[("V1-1", "wg3")][1]
    assert messages[("V1-2", "wg3")] == (
        "warning",
        "V1-2 wg3 towards V2-1: the live preshared key is not the one in its key file "
        "(apply pending)",
    )
    # Without preshared keys planned, a live one is the finding.
    fleet = dict(obs.healthy_fleet(_plan(False)))
    fleet["V1-1"] = _with_psk(plan, fleet["V1-1"], {"wg3": "a" * 16})
    (extra,) = [f for f in evaluate(_plan(False), fleet).findings if f.check == "tunnel.psk"]
    assert extra.severity == "warning" and "the plan does not" in extra.message


def test_hub_and_spoke_pairs_are_the_hub_tunnels_only() -> None:
    fleet = hub_spoke_fleet(hubs=2, spokes=3)
    fleet = dataclasses.replace(
        fleet, settings=dataclasses.replace(fleet.settings, preshared_keys=True)
    )
    plan, _ = plan_fleet(fleet, Allocations())
    pairs = psk_pairs(plan, [g.name for g in plan.gateways])
    tunnels = sum(len(g.tunnels) for g in plan.gateways)
    assert len(pairs) * 2 == tunnels  # every tunnel end belongs to exactly one pair
    ends = [end for pair in pairs for end in pair.ends]
    assert len(set(ends)) == tunnels
    hubs = {s.number for s in plan.sites if s.role == "hub"}
    for pair in pairs:  # spokes only ever pair with a hub
        sites = {plan.gateway(end.gateway).site.number for end in pair.ends}
        assert sites & hubs
