"""End to end: `wgfleet verify` on a converged fleet, then one fault at a time, each repaired.

Every fault must be reported with the right severity on the right objects — redundancy
degraded for the affected site pairs, never an outage while a path is left — and nothing
else may be flagged. Each repair is checked by a healthy verification.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import Lab, wait_healthy
from wgfleet.findings import Finding, VerifyRun
from wgfleet.fleet import apply_fleet, load
from wgfleet.lab import manager
from wgfleet.paths import GatewayPaths
from wgfleet.verify import verify_fleet

pytestmark = pytest.mark.lab
PATHS = GatewayPaths()
FAULT_TIMEOUT = 60.0


def verify(inventory: Path) -> VerifyRun:
    return verify_fleet(load(inventory, save_allocations_file=False))


def wait_for_run(inventory: Path, ready: Callable[[VerifyRun], bool], what: str) -> VerifyRun:
    """Poll verify until ``ready`` holds for the run (a fault takes a BGP hold time to show)."""
    deadline = time.monotonic() + FAULT_TIMEOUT
    while True:
        run = verify(inventory)
        if ready(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {describe(run)}")
        time.sleep(1.0)


def describe(run: VerifyRun) -> str:
    return "\n".join(f"  {f.severity} {f.check} {f.gateway} {f.object}: {f.message}"
                     for f in run.verdict.problems())  # fmt: skip


def flagged(run: VerifyRun) -> dict[tuple[str, str, str], str]:
    return {f.key: f.severity for f in run.verdict.problems()}


def only_about(run: VerifyRun, allowed: Callable[[Finding], bool]) -> None:
    """Nothing else is flagged: every problem satisfies ``allowed``."""
    stray = [f for f in run.verdict.problems() if not allowed(f)]
    assert not stray, "unexpected findings:\n" + "\n".join(
        f"  {f.severity} {f.check} {f.gateway} {f.object}: {f.message}" for f in stray
    )


def repair(inventory: Path, *limit: str) -> None:
    report = apply_fleet(load(inventory, save_allocations_file=False), limit=list(limit) or None,
                         progress=None)  # fmt: skip
    assert report.exit_status == 0, report.outcomes
    wait_healthy(inventory)


def test_a_converged_fleet_verifies_healthy(lab: Lab, converged: Path, run_cli: Any,
                                            tmp_path: Path) -> None:  # fmt: skip
    run = verify(converged)
    assert run.verdict.severity == "ok", describe(run)
    assert run.verdict.unreachable == ()
    assert {p.severity for p in run.verdict.pairs} == {"ok"}
    assert len(run.verdict.pairs) == 6
    assert all(p.paths_up == p.paths_expected == 4 for p in run.verdict.pairs)
    checks = {f.check for f in run.verdict.findings}
    assert {"tunnel.exists", "tunnel.handshake", "bgp.established", "route.ecmp", "ping.tunnel",
            "ping.site", "site.pair"} <= checks  # fmt: skip
    status, out, _ = run_cli("verify", "--inventory", str(converged), "--reports", str(tmp_path))
    assert status == 0, out
    report = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert report["schema"].startswith("wgfleet.verify/")


def test_deleted_wireguard_interface(lab: Lab, converged: Path) -> None:
    lab.sh("V1-1", "ip -n private link del wg3")  # the tunnel towards V2-1
    run = wait_for_run(converged, lambda r: ("bgp.established", "V2-1", "IBGP_V1_1") in flagged(r),
                       "V2-1 to notice its session with V1-1 is down")  # fmt: skip
    found = flagged(run)
    assert found[("tunnel.exists", "V1-1", "wg3")] == "warning"
    assert run.verdict.severity == "warning", describe(run)
    pairs = {(p.local, p.remote): p for p in run.verdict.pairs}
    assert pairs[(1, 2)].severity == pairs[(2, 1)].severity == "warning"
    assert pairs[(1, 2)].paths_up == 3
    assert {k: p.severity for k, p in pairs.items() if k not in {(1, 2), (2, 1)}} == {
        k: "ok" for k in pairs if k not in {(1, 2), (2, 1)}}  # fmt: skip
    only_about(run, lambda f: f.gateway in {"V1-1", "V2-1"} or f.site_pair in {(1, 2), (2, 1)})
    repair(converged, "V1-1")


def test_bird_stopped(lab: Lab, converged: Path) -> None:
    lab.sh("V1-1", f"birdc -s {PATHS.bird_socket} down")
    run = wait_for_run(converged, lambda r: ("bgp.established", "V3-2", "IBGP_V1_1") in flagged(r),
                       "peers to notice BIRD is gone on V1-1")  # fmt: skip
    found = flagged(run)
    assert found[("bird.running", "V1-1", "bird")] == "warning" or any(
        k[0] == "bird.running" and k[1] == "V1-1" and v == "warning" for k, v in found.items()
    )
    assert run.verdict.severity == "warning", describe(run)
    only_about(run, lambda f: f.gateway == "V1-1" or "V1_1" in f.object
               or (f.site_pair is not None and 1 in f.site_pair))  # fmt: skip
    repair(converged, "V1-1")


def test_gateway_unreachable_over_ssh(lab: Lab, converged: Path, run_cli: Any,
                                      tmp_path: Path) -> None:  # fmt: skip
    lab.drop_clients()
    manager.set_ssh(lab.topo.name, "V2-2", False, lab.topo.state_dir.parent)
    try:
        run = verify(converged)
        assert run.verdict.unreachable == ("V2-2",)
        assert flagged(run) == {("gateway.reachable", "V2-2", "ssh"): "unknown"} or set(
            flagged(run)
        ) == {k for k in flagged(run) if k[0] == "gateway.reachable"}
        assert {p.severity for p in run.verdict.pairs} == {"ok"}, "its peers still see it up"
        status, _, _ = run_cli("verify", "--inventory", str(converged), "--reports", str(tmp_path))
        assert status == 3
    finally:
        manager.set_ssh(lab.topo.name, "V2-2", True, lab.topo.state_dir.parent)
    wait_healthy(converged)


def test_udp_of_one_tunnel_dropped(lab: Lab, converged: Path) -> None:
    # V1-1's wg5 (towards V3-1) listens on 5805 in the default namespace.
    lab.sh("V1-1", "nft add table inet wgtest && nft add chain inet wgtest input "
           "'{ type filter hook input priority 0; }' && "
           "nft add rule inet wgtest input udp dport 5805 drop")  # fmt: skip
    try:
        run = wait_for_run(converged,
                           lambda r: ("bgp.established", "V3-1", "IBGP_V1_1") in flagged(r),
                           "the dropped tunnel's BGP session to time out")  # fmt: skip
        assert run.verdict.severity == "warning", describe(run)
        pairs = {(p.local, p.remote): p for p in run.verdict.pairs}
        assert pairs[(1, 3)].severity == "warning" and pairs[(1, 3)].paths_up == 3
        only_about(run, lambda f: f.gateway in {"V1-1", "V3-1"} or f.site_pair in {(1, 3), (3, 1)})
    finally:
        lab.sh("V1-1", "nft delete table inet wgtest", check=False)
    wait_healthy(converged)


def test_gateway_rebooted(lab: Lab, converged: Path) -> None:
    lab.drop_clients()
    manager.reboot(lab.topo.name, "V3-1", lab.topo.state_dir.parent)
    run = wait_for_run(converged, lambda r: ("bgp.established", "V1-1", "IBGP_V3_1") in flagged(r),
                       "peers to notice V3-1 rebooted")  # fmt: skip
    assert run.verdict.severity == "warning", describe(run)
    assert not any(p.severity == "critical" for p in run.verdict.pairs)
    found = flagged(run)
    assert any(k[0] == "namespace.exists" and k[1] == "V3-1" for k in found)
    only_about(run, lambda f: f.gateway == "V3-1" or "V3_1" in f.object
               or (f.site_pair is not None and 3 in f.site_pair))  # fmt: skip
    repair(converged, "V3-1")
