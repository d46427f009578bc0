"""End to end: `wgfleet apply` from bare lab gateways to the article's converged VPN.

The tests run in order against the session's lab and build on each other, as a rollout
does: check on a bare fleet, roll out two sites, grow to three, converge again (no-op),
check again, reboot a gateway, shrink back, and scan everything for private keys.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import Lab
from tests.lab.helpers import (
    PATHS,
    all_established,
    bgp,
    fingerprint,
    private_links,
    routes,
    wait_for,
    wireguard,
)
from wgfleet.lab import manager

pytestmark = pytest.mark.lab

ALL = ["V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2"]
TWO_SITES = ALL[:4]
CONVERGE_TIMEOUT = 60.0


def expected_sessions(gateways: list[str]) -> dict[str, set[str]]:
    """IBGP_V<r>_<m> and IBGP_V<r>_<m>_4 towards every gateway of the other sites."""
    found: dict[str, set[str]] = {}
    for gw in gateways:
        site = gw[1]
        names = {f"IBGP_{o.replace('-', '_')}" for o in gateways if o[1] != site}
        found[gw] = names | {f"{n}_4" for n in names}
    return found


@pytest.fixture(scope="module")
def inventories(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The lab's inventory (3 sites) and a copy without site 3, sharing one allocations file."""
    root = tmp_path_factory.mktemp("inventory")
    full = root / "full"
    shutil.copytree(lab.topo.state_dir / "inventory", full)
    two = root / "two"
    shutil.copytree(full, two)
    hosts = yaml.safe_load((two / "hosts.yaml").read_text())
    groups = yaml.safe_load((two / "groups.yaml").read_text())
    (two / "hosts.yaml").write_text(
        yaml.safe_dump({k: v for k, v in hosts.items() if k in TWO_SITES})
    )
    (two / "groups.yaml").write_text(
        yaml.safe_dump({k: v for k, v in groups.items() if k != "site3"})
    )
    # One allocations file, as a repository has: growing and shrinking share it.
    (full / "allocations.yaml").symlink_to(two / "allocations.yaml")
    return {"full": full, "two": two}


@pytest.fixture(scope="module")
def outputs() -> Iterator[list[str]]:
    """Everything apply printed, for the private key scan at the end."""
    yield []


@pytest.fixture
def apply(
    run_cli: Callable[..., tuple[int, str, str]], outputs: list[str]
) -> Callable[..., tuple[int, str]]:
    def _apply(inventory: Path, *args: str) -> tuple[int, str]:
        status, out, err = run_cli("apply", "--inventory", str(inventory), *args)
        outputs.extend([out, err])
        return status, out + err

    return _apply


def ifindexes(lab: Lab, gw: str) -> dict[str, int]:
    return {n: link.ifindex for n, link in private_links(lab, gw).items() if n.startswith("wg")}


def handshakes(lab: Lab, gw: str) -> dict[str, int]:
    return {n: i.peers[0].latest_handshake for n, i in wireguard(lab, gw).items() if i.peers}


def test_check_on_a_bare_fleet_changes_nothing(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    before = {gw: fingerprint(lab, gw) for gw in ALL}
    status, out = apply(inventories["full"], "--check")
    assert status == 0, out
    assert "would change" in out
    assert "would generate a private key" in out
    assert "$ ip netns add private" in out
    assert "setsid -w wireguard-go wg3" in out
    assert {gw: fingerprint(lab, gw) for gw in ALL} == before
    assert not (inventories["two"] / "allocations.yaml").exists(), (
        "check must not record allocations"
    )


def test_rollout_of_two_sites(lab: Lab, inventories: dict[str, Path], apply: Any) -> None:
    status, out = apply(inventories["two"])
    assert status == 0, out
    expected = expected_sessions(TWO_SITES)
    wait_for(lambda: all_established(lab, TWO_SITES, expected), timeout=CONVERGE_TIMEOUT,
             what="BGP between sites 1 and 2")  # fmt: skip
    assert wireguard(lab, "V3-1") == {}, "site 3 is not in this inventory: untouched"


def test_adding_a_site_touches_only_what_must_change(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    before = {gw: (ifindexes(lab, gw), handshakes(lab, gw)) for gw in TWO_SITES}
    status, out = apply(inventories["full"])
    assert status == 0, out
    wait_for(lambda: all_established(lab, ALL, expected_sessions(ALL)), timeout=CONVERGE_TIMEOUT,
             what="every BGP session of the full mesh")  # fmt: skip
    for gw in TWO_SITES:
        now_index, now_handshake = ifindexes(lab, gw), handshakes(lab, gw)
        old_index, old_handshake = before[gw]
        # The tunnels between sites 1 and 2 were neither re-created nor reset.
        assert {k: now_index[k] for k in old_index} == old_index, gw
        assert all(now_handshake[k] >= old_handshake[k] > 0 for k in old_handshake), gw
        assert len(now_index) == 4


def ecmp_complete(lab: Lab) -> list[tuple[str, str, dict[Any, int]]]:
    """Gateways and families whose remote prefixes lack a next hop (empty when complete)."""
    missing = []
    for gw in ALL:
        for family in ("-6", "-4"):
            remote = {r.destination: r.width for r in routes(lab, gw, family)}
            if len(remote) != 2 or set(remote.values()) != {2}:
                missing.append((gw, family, remote))
    return missing


def test_converged_fleet_routes_with_ecmp_and_pings_across_sites(
    lab: Lab, inventories: dict[str, Path]
) -> None:
    # Sessions reach Established before every route is exchanged: poll for the routes.
    wait_for(
        lambda: not ecmp_complete(lab),
        timeout=CONVERGE_TIMEOUT,
        what="two next hops per remote prefix",
    )
    _, out, _ = lab.sh("V1-1", "ip netns exec private fping " + " ".join(
        str(t.peer6) for t in _plan(inventories["full"]).gateway("V1-1").tunnels))  # fmt: skip
    assert out.count("is alive") == 4
    site1 = lab.topo.sites[0].netns
    for target in ("2001:db8:a3::1", "10.0.3.1"):
        ping = ["ip", "netns", "exec", site1, "ping", "-c", "2", "-W", "2", target]
        subprocess.run(ping, check=True, capture_output=True)


def _plan(inventory: Path) -> Any:
    from wgfleet.fleet import load

    return load(inventory, save_allocations_file=False).plan


def test_second_apply_changes_nothing_and_resets_nothing(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    index = {gw: ifindexes(lab, gw) for gw in ALL}
    shakes = {gw: handshakes(lab, gw) for gw in ALL}
    since = {gw: {n: s.since for n, s in bgp(lab, gw).items()} for gw in ALL}
    status, out = apply(inventories["full"])
    assert status == 0, out
    assert "changed" not in out.split("GATEWAY")[-1], out
    assert "6 ok" in out
    for gw in ALL:
        assert ifindexes(lab, gw) == index[gw]
        assert all(handshakes(lab, gw)[k] >= v for k, v in shakes[gw].items())
        assert {n: s.since for n, s in bgp(lab, gw).items()} == since[gw]


def test_check_on_a_converged_fleet_changes_nothing(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    before = {gw: fingerprint(lab, gw) for gw in ALL}
    status, out = apply(inventories["full"], "--check")
    assert status == 0, out
    assert "would change" not in out
    assert {gw: fingerprint(lab, gw) for gw in ALL} == before


def test_a_rebooted_gateway_is_brought_back(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    lab.drop_clients()
    manager.reboot(lab.topo.name, "V2-1", lab.topo.state_dir.parent)
    assert wireguard(lab, "V2-1") == {}
    status, out = apply(inventories["full"], "--limit", "V2-1")
    assert status == 0, out
    wait_for(lambda: all_established(lab, ALL, expected_sessions(ALL)), timeout=CONVERGE_TIMEOUT,
             what="BGP after the reboot")  # fmt: skip


def test_removing_a_site_cleans_its_tunnels_up(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    status, out = apply(inventories["two"])
    assert status == 0, out
    for gw in TWO_SITES:
        assert len(ifindexes(lab, gw)) == 2, gw
        assert set(bgp(lab, gw)) == expected_sessions(TWO_SITES)[gw]
        _, files, _ = lab.sh(gw, f"ls {PATHS.wireguard_dir}")
        assert len([f for f in files.split() if f.endswith(".conf")]) == 2
    wait_for(lambda: all_established(lab, TWO_SITES, expected_sessions(TWO_SITES)),
             timeout=CONVERGE_TIMEOUT, what="sites 1 and 2 still peering")  # fmt: skip
    # Grow back, so that later tests find the article's fleet converged.
    status, out = apply(inventories["full"])
    assert status == 0, out
    wait_for(lambda: all_established(lab, ALL, expected_sessions(ALL)), timeout=CONVERGE_TIMEOUT,
             what="the full mesh again")  # fmt: skip


def test_a_changed_peer_setting_is_updated_in_place(
    lab: Lab, inventories: dict[str, Path], apply: Any, tmp_path: Path
) -> None:
    changed = tmp_path / "keepalive"
    shutil.copytree(inventories["full"], changed, symlinks=True)
    hosts = yaml.safe_load((changed / "hosts.yaml").read_text())
    hosts["V1-1"]["data"]["gateway"]["keepalive"] = 25
    (changed / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    before = ifindexes(lab, "V1-1")
    since = {n: s.since for n, s in bgp(lab, "V1-1").items()}
    status, out = apply(changed, "--limit", "V1-1", "--diff")
    assert status == 0, out
    assert "+PersistentKeepalive = 25" in out and "syncconf" in out
    assert "setconf" not in out and "link del" not in out
    live = wireguard(lab, "V1-1")
    assert {n: i.peers[0].keepalive for n, i in live.items()} == dict.fromkeys(before, 25)
    assert ifindexes(lab, "V1-1") == before, "updated in place, not re-created"
    assert {n: s.since for n, s in bgp(lab, "V1-1").items()} == since, "no BGP session reset"
    status, out = apply(inventories["full"], "--limit", "V1-1")
    assert status == 0, out
    assert {n: i.peers[0].keepalive for n, i in wireguard(lab, "V1-1").items()} == dict.fromkeys(
        before, 0
    )


def test_a_failing_command_names_its_step_and_stops_the_change(
    lab: Lab, inventories: dict[str, Path], apply: Any
) -> None:
    # V1-1's wg3 replaced by a veth of that name: WireGuard cannot configure it.
    lab.sh(
        "V1-1", "ip -n private link del wg3 && ip -n private link add wg3 type veth peer name wg3p"
    )
    try:
        status, out = apply(inventories["full"], "--limit", "V1-1")
        assert status == 4, out
        assert "V1-1: update wg3 towards V2-1 in place failed (exit 1): " in out
        assert "command: ip netns exec private sh -c" in out and "wg syncconf wg3" in out
    finally:
        lab.sh("V1-1", "ip -n private link del wg3", check=False)
    status, out = apply(inventories["full"], "--limit", "V1-1")
    assert status == 0, out
    wait_for(lambda: all_established(lab, ALL, expected_sessions(ALL)), timeout=CONVERGE_TIMEOUT,
             what="V1-1's wg3 back")  # fmt: skip


def test_no_private_key_leaves_a_gateway(
    lab: Lab, inventories: dict[str, Path], outputs: list[str], tmp_path: Path, run_cli: Any
) -> None:
    keys = {gw: lab.sh(gw, f"cat {PATHS.private_key}")[1].strip() for gw in ALL}
    assert all(len(k) == 44 for k in keys.values())
    # What wgfleet writes on the control machine: rendered files, allocations, outputs.
    status, _, _ = run_cli(
        "render", "--inventory", str(inventories["full"]), "--out", str(tmp_path / "r")
    )
    assert status == 0
    from wgfleet.fleet import apply_fleet, load

    report = apply_fleet(
        load(inventories["full"], save_allocations_file=False), check=True, progress=None
    )
    texts = [*outputs, repr(report)]
    for path in [
        *tmp_path.rglob("*"),
        *inventories["two"].rglob("*"),
        *inventories["full"].rglob("*"),
    ]:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    for gw, key in keys.items():
        assert not any(key in text for text in texts), f"{gw}'s private key left the gateway"


def test_tasks_run_from_a_plain_nornir_script(
    inventories: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from nornir_utils.plugins.functions import print_result

    from wgfleet.fleet import load
    from wgfleet.inventory import load_nornir
    from wgfleet.tasks import apply_gateway, ensure_keys

    loaded = load(inventories["full"], save_allocations_file=False)
    nr = load_nornir(inventories["full"])
    try:
        keys = nr.run(task=ensure_keys, plan=loaded.plan, dry_run=True)
        assert not keys.failed
        public_keys = {name: multi[0].result for name, multi in keys.items()}
        result = nr.run(task=apply_gateway, plan=loaded.plan, public_keys=public_keys, dry_run=True)
        assert not result.failed
        assert not any(multi.changed for multi in result.values()), "converged: no change"
        capsys.readouterr()
        print_result(result)
        shown = capsys.readouterr().out
    finally:
        nr.close_connections()
    assert "apply_gateway" in shown and "converge_tunnels" in shown
    assert all(gw in shown for gw in ALL)
    assert "4 tunnels, 8 BGP sessions" in shown
