"""End to end: preshared keys on the lab, from switching them on to switching them off.

Starts from the converged fleet (no preshared keys) and leaves it so. One module-scoped
inventory with ``fleet.preshared_keys: true``; each test leaves the fleet healthy with it.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import Lab, wait_healthy
from tests.lab.helpers import PATHS
from wgfleet.fleet import apply_fleet, load
from wgfleet.plan import FleetPlan
from wgfleet.runbook.engine import Engine, Options
from wgfleet.runbook.schema import load_runbook
from wgfleet.verify import verify_fleet

pytestmark = pytest.mark.lab
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def _plan(inventory: Path) -> FleetPlan:
    return load(inventory, save_allocations_file=False).plan


def keys_on(lab: Lab, plan: FleetPlan) -> dict[tuple[str, str], str]:
    """Every tunnel end's preshared key file (read as root on the lab, never by wgfleet)."""
    found = {}
    for gateway in plan.gateways:
        for tunnel in gateway.tunnels:
            _, out, _ = lab.sh(gateway.name, f"cat {PATHS.psk_file(tunnel.interface)} 2>/dev/null",
                               check=False)  # fmt: skip
            found[(gateway.name, tunnel.interface)] = out.strip()
    return found


def live_keys(lab: Lab, gw: str) -> dict[str, str]:
    """The preshared key each live interface of ``gw`` uses, by interface."""
    _, out, _ = lab.sh(gw, "ip netns exec private wg show all preshared-keys")
    return {line.split("\t")[0]: line.split("\t")[2] for line in out.splitlines() if line}


def public_keys(lab: Lab, plan: FleetPlan) -> dict[str, str]:
    """Every gateway's public key, as its key file says."""
    return {g.name: lab.sh(g.name, f"cat {PATHS.public_key}")[1] for g in plan.gateways}


def assert_pairs_agree(lab: Lab, plan: FleetPlan) -> dict[tuple[str, str], str]:
    """Both ends of every tunnel hold the same key, in their file and live; keys differ
    between tunnels. Returns the keys."""
    keys = keys_on(lab, plan)
    live = {gw.name: live_keys(lab, gw.name) for gw in plan.gateways}
    for gateway in plan.gateways:
        for tunnel in gateway.tunnels:
            back = next(t for t in plan.gateway(tunnel.peer).tunnels if t.peer == gateway.name)
            mine = keys[(gateway.name, tunnel.interface)]
            assert len(mine) == 44, f"{gateway.name} {tunnel.interface} has no key file"
            assert mine == keys[(tunnel.peer, back.interface)], f"{gateway.name} {tunnel.interface}"
            assert live[gateway.name][tunnel.interface] == mine
    assert len(set(keys.values())) == len(keys) // 2, "one key per tunnel"
    return keys


def secrets_in(keys: Iterable[str], *roots: Path) -> list[str]:
    """Files under ``roots`` that hold any of the keys (the control machine's side)."""
    wanted = {k.encode() for k in keys if k}
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and any(k in path.read_bytes() for k in wanted):
                hits.append(str(path))
    return hits


def run_book(book: Path, inventory: Path, records: Path) -> tuple[str, Path | None, str]:
    engine = Engine(
        load_runbook(book),
        load(inventory, save_allocations_file=False),
        Options(yes=True, records=records, out=io.StringIO()),
    )
    outcome = engine.run()
    printed = engine.options.out.getvalue()  # type: ignore[attr-defined]
    print(printed)
    return outcome.result, outcome.record, printed


@pytest.fixture(scope="module")
def with_psk(lab: Lab, converged: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The converged inventory with preshared keys on, applied; switched off again after."""
    inventory = tmp_path_factory.mktemp("psk") / "inventory"
    shutil.copytree(converged, inventory)
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text())
    defaults["data"]["fleet"]["preshared_keys"] = True
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    report = apply_fleet(load(inventory, save_allocations_file=False), progress=None)
    assert report.exit_status == 0, report.outcomes
    for outcome in report.outcomes:
        assert outcome.status == "changed"
        assert "set a new preshared key for" in outcome.diff
    keys = assert_pairs_agree(lab, _plan(inventory))
    text = "".join(o.message + o.diff for o in report.outcomes)
    assert not any(k in text for k in keys.values()), "a key in the apply report"
    yield inventory
    # Switching them off clears the live keys and deletes the files, at every end.
    report = apply_fleet(load(converged, save_allocations_file=False), progress=None)
    assert report.exit_status == 0, report.outcomes
    plan = _plan(converged)
    assert set(keys_on(lab, plan).values()) == {""}
    for gateway in plan.gateways:
        assert set(live_keys(lab, gateway.name).values()) == {"(none)"}
        _, out, _ = lab.sh(gateway.name, f"ls {PATHS.wireguard_dir}")
        assert ".psk" not in out
    wait_healthy(converged)


def test_preshared_keys_are_set_up_at_both_ends_and_verified(
    lab: Lab, with_psk: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    plan = _plan(with_psk)
    for gateway in plan.gateways:
        _, out, _ = lab.sh(gateway.name, f"stat -c '%a %U' {PATHS.wireguard_dir}/*.psk")
        assert set(out.split("\n")[:-1]) == {"600 root"}
    run = wait_healthy(with_psk)
    found = [f for f in run.verdict.findings if f.check == "tunnel.psk"]  # type: ignore[attr-defined]
    assert len(found) == 24 and {f.severity for f in found} == {"ok"}
    # Every report format the CLI stores: the checks are there, no key is.
    status, out, _ = run_cli("verify", "-i", str(with_psk), "--reports", str(tmp_path / "reports"))
    assert status == 0, out
    assert "tunnel.psk" in (tmp_path / "reports" / "latest" / "report.json").read_text()
    assert secrets_in(keys_on(lab, plan).values(), tmp_path) == []
    # A second apply changes nothing and writes no key.
    keys = keys_on(lab, plan)
    report = apply_fleet(load(with_psk, save_allocations_file=False), progress=None)
    assert {o.status for o in report.outcomes} == {"ok"}
    assert keys_on(lab, plan) == keys
    # One connection per gateway; one round trip more than without preshared keys (the
    # fingerprints of both ends are read before anything is decided).
    assert set(report.ssh.values()) == {(1, 3)}


def test_an_end_with_another_key_is_found_and_apply_gives_the_pair_a_new_one(
    lab: Lab, with_psk: Path, tmp_path: Path
) -> None:
    plan = _plan(with_psk)
    before = keys_on(lab, plan)
    # V2-1's wg1 (towards V1-1) gets a key of its own, file and live: the session goes on
    # (no handshake until the next rekey) but the next handshake would fail.
    lab.sh("V2-1", f"umask 077; wg genpsk > {PATHS.psk_file('wg1')} && "
                   f"ip netns exec private wg set wg1 peer $(ip netns exec private wg show wg1 "
                   f"peers) preshared-key {PATHS.psk_file('wg1')}")  # fmt: skip
    run = verify_fleet(load(with_psk, save_allocations_file=False))
    bad = {(f.gateway, f.object): f.message for f in run.verdict.problems()
           if f.check == "tunnel.psk"}  # fmt: skip
    assert set(bad) == {("V1-1", "wg3"), ("V2-1", "wg1")}
    assert "differs from V2-1's wg1" in bad[("V1-1", "wg3")]

    # Only one end in the run: that tunnel is held, said so, and left as it is.
    report = apply_fleet(load(with_psk, save_allocations_file=False), limit=["V1-1"], progress=None)
    (outcome,) = report.outcomes
    assert "left wg3 as it is" in outcome.message and "--limit V1-1,V2-1" in outcome.message
    assert keys_on(lab, plan)[("V1-1", "wg3")] == before[("V1-1", "wg3")]

    # Both ends: a new key for that pair only.
    report = apply_fleet(
        load(with_psk, save_allocations_file=False), limit=["V1-1", "V2-1"], progress=None
    )
    assert report.exit_status == 0, report.outcomes
    after = assert_pairs_agree(lab, plan)
    changed = {end for end in after if after[end] != before[end]}
    assert changed == {("V1-1", "wg3"), ("V2-1", "wg1")}
    for gw in ("V1-1", "V2-1"):  # the replaced key is not kept: apply has no rollback
        assert ".psk.prev" not in lab.sh(gw, f"ls -a {PATHS.wireguard_dir}")[1]
    wait_healthy(with_psk)


def test_rotate_keys_rotates_the_preshared_keys_and_keeps_none_on_the_control_machine(
    lab: Lab, with_psk: Path, tmp_path: Path
) -> None:
    plan = _plan(with_psk)
    before = keys_on(lab, plan)
    result, record, printed = run_book(RUNBOOKS / "rotate-keys.yaml", with_psk, tmp_path / "rec")
    assert result == "success", printed
    assert "preshared keys of 9 tunnels: written at both ends" in printed  # wave 1
    after = assert_pairs_agree(lab, plan)
    assert all(after[end] != before[end] for end in after), "every tunnel has a new key"
    # The gate waited for fresh handshakes with the new private keys: the new preshared
    # keys work. The old ones are gone from the gateways once the wave held.
    for gateway in plan.gateways:
        _, out, _ = lab.sh(gateway.name, f"ls -a {PATHS.wireguard_dir}")
        assert ".psk.prev" not in out and "private.key.prev" not in out
    assert record is not None
    assert secrets_in([*before.values(), *after.values()], tmp_path, with_psk) == []
    wait_healthy(with_psk)


def test_a_failed_rotation_puts_the_previous_keys_back_at_both_ends(
    lab: Lab, with_psk: Path, tmp_path: Path
) -> None:
    plan = _plan(with_psk)
    keys_before = keys_on(lab, plan)
    public_before = public_keys(lab, plan)
    book = tmp_path / "rotate-short-gate.yaml"
    book.write_text(
        "name: rotate-short-gate\ndescription: rotate-keys with a gate that cannot pass\n"
        "strategy: one-gateway-per-site\non_failure: rollback\ntimeouts: {gate: 15}\n"
        "wave:\n  - rotate-keys: {preshared: true}\n"
        "  - gate: {sessions: established, ecmp: restored, handshakes: fresh}\n"
    )
    # V1-1's tunnel towards V3-1 (wg5, port 5805) passes no UDP: its new handshake cannot
    # happen, so wave 1's gate fails and the rotation must be undone at both ends.
    lab.sh("V1-1", "nft add table inet psktest && nft add chain inet psktest input "
           "'{ type filter hook input priority 0; }' && "
           "nft add rule inet psktest input udp dport 5805 drop")  # fmt: skip
    try:
        result, _, printed = run_book(book, with_psk, tmp_path / "rec")
        assert result == "rolled-back", printed
    finally:
        lab.sh("V1-1", "nft delete table inet psktest", check=False)
    assert keys_on(lab, plan) == keys_before
    assert public_keys(lab, plan) == public_before
    assert_pairs_agree(lab, plan)
    # With the old keys back everywhere, every tunnel handshakes again.
    wait_healthy(with_psk)


def test_an_interrupted_rotation_is_rolled_back_or_resumed_with_the_right_keys(
    lab: Lab, with_psk: Path, tmp_path: Path
) -> None:
    plan = _plan(with_psk)
    keys_before = keys_on(lab, plan)
    public_before = public_keys(lab, plan)
    book = tmp_path / "rotate-stepwise.yaml"
    book.write_text(
        "name: rotate-stepwise\ndescription: rotate-keys, a pause, the gate\n"
        "wave:\n  - rotate-keys: {preshared: true}\n  - pause: 'wave {wave} rotated: go on?'\n"
        "  - gate: {sessions: established, ecmp: restored, handshakes: fresh}\n"
    )

    def interrupt(question: str) -> str:
        raise KeyboardInterrupt

    def engine(ask: Any) -> Engine:
        return Engine(load_runbook(book), load(with_psk, save_allocations_file=False),
                      Options(ask=ask, records=tmp_path / "rec", out=io.StringIO()))  # fmt: skip

    # Interrupted in wave 1, after its keys were replaced: rolled back to the old keys.
    with pytest.raises(KeyboardInterrupt):
        engine(interrupt).run()
    (record,) = (tmp_path / "rec").iterdir()
    assert keys_on(lab, plan)[("V1-1", "wg3")] != keys_before[("V1-1", "wg3")]
    assert engine(interrupt).rollback(record).result == "rolled-back"
    assert keys_on(lab, plan) == keys_before
    assert public_keys(lab, plan) == public_before
    assert_pairs_agree(lab, plan)
    wait_healthy(with_psk)

    # Interrupted again, then resumed: every key new, both ends agree, none left behind.
    with pytest.raises(KeyboardInterrupt):
        engine(interrupt).run()
    record = max((tmp_path / "rec").iterdir())
    outcome = engine(lambda question: "yes").resume(record)
    assert outcome.result == "success", outcome.message
    after = assert_pairs_agree(lab, plan)
    assert all(after[end] != keys_before[end] for end in after)
    for gateway in plan.gateways:
        _, out, _ = lab.sh(gateway.name, f"ls -a {PATHS.wireguard_dir}")
        assert ".psk.prev" not in out and "private.key.prev" not in out
    wait_healthy(with_psk)


def test_add_site_brings_a_fresh_site_in_with_keys_made_for_later_waves(
    lab: Lab, with_psk: Path, tmp_path: Path
) -> None:
    # The fleet without site 3, applied: sites 1 and 2 drop their tunnels towards it.
    smaller = tmp_path / "two-sites"
    shutil.copytree(with_psk, smaller)
    groups = yaml.safe_load((smaller / "groups.yaml").read_text())
    del groups["site3"]
    (smaller / "groups.yaml").write_text(yaml.safe_dump(groups))
    hosts = yaml.safe_load((smaller / "hosts.yaml").read_text())
    (smaller / "hosts.yaml").write_text(
        yaml.safe_dump({k: v for k, v in hosts.items() if not k.startswith("V3-")})
    )
    report = apply_fleet(load(smaller, save_allocations_file=False), progress=None)
    assert report.exit_status == 0, report.outcomes
    # Site 3's gateways as new ones: no key, no tunnel, no BIRD of ours.
    for gw in ("V3-1", "V3-2"):
        lab.sh(gw, f"birdc -s {PATHS.bird_socket} down >/dev/null 2>&1; "
                   "for i in $(ip netns exec private wg show interfaces); do "
                   "ip -n private link del $i; done; "
                   f"rm -rf {PATHS.wireguard_dir} {PATHS.bird_config}*")  # fmt: skip

    # add-site.yaml, one gateway per site: V3-2 (wave 2) gets its private key and the
    # preshared keys it shares with wave 1's gateways in wave 1, so their tunnels towards
    # it are built then and come up when V3-2's side does.
    result, _, printed = run_book(RUNBOOKS / "add-site.yaml", with_psk, tmp_path / "rec")
    assert result == "success", printed
    assert "left" not in printed, "no tunnel left out"
    assert "V3-2: changed prepared for its own wave" in printed
    assert_pairs_agree(lab, _plan(with_psk))
    wait_healthy(with_psk)
