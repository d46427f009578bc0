"""Verification figures, printed as ratios against baselines measured in the same run.

1. `verify` on the 3 x 2 lab versus the same collection commands over plain OpenSSH, one
   `ssh` per gateway, all in parallel (target: <= 1.5x).
2. `verify` on a 10 x 2 lab: how the time grows with the fleet (per gateway and per tunnel
   end), collection and evaluation shown apart.

Run as root: ``.venv/bin/python bench/verify.py``. Uses its own lab ("bench", port 2296).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wgfleet.checks import evaluate
from wgfleet.commands import verify_script
from wgfleet.fleet import apply_fleet, load
from wgfleet.lab import manager
from wgfleet.lab.topology import build_topology
from wgfleet.paths import GatewayPaths
from wgfleet.tasks.verify import ping_groups
from wgfleet.verify import verify_fleet

NAME, PORT, ROOT = "bench", 2296, Path("/var/lib/wgfleet-lab")
RUNS = 5


def openssh_collect(topo, plan) -> float:  # type: ignore[no-untyped-def]
    """The same collection scripts over plain OpenSSH, one ssh per gateway, in parallel."""
    paths = GatewayPaths()
    count = plan.settings.verify.ping_count
    scripts = {
        g.name: verify_script(paths, ping_groups(plan, g.name), count) for g in topo.gateways
    }

    def one(gw) -> None:  # type: ignore[no-untyped-def]
        subprocess.run(
            ["ssh", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={topo.state_dir / 'known_hosts'}",
             "-i", str(topo.state_dir / "id_ed25519"), "-p", str(topo.port),
             f"root@{gw.mgmt_address}", scripts[gw.name]],
            capture_output=True, check=True,
        )  # fmt: skip

    started = time.perf_counter()
    with ThreadPoolExecutor(len(topo.gateways)) as pool:
        list(pool.map(one, topo.gateways))
    return time.perf_counter() - started


def measure(sites: int, gateways: int, *, baseline: bool) -> tuple[float, int]:
    topo = build_topology(sites, gateways, name=NAME, port=PORT, state_root=ROOT)
    manager.down(NAME, ROOT)
    work = Path(tempfile.mkdtemp(prefix="wgfleet-bench-"))
    try:
        manager.up(topo)
        inventory = work / "inventory"
        shutil.copytree(topo.state_dir / "inventory", inventory)
        loaded = load(inventory, save_allocations_file=True)
        report = apply_fleet(loaded, progress=None, workers=len(topo.gateways))
        assert report.exit_status == 0, report.outcomes
        deadline = time.monotonic() + 180
        # Converged = every session and route in place; a lost ping on a loaded machine
        # with hundreds of wireguard-go processes is noise for this measurement.
        while any(
            f.severity != "ok" and not f.check.startswith(("ping.", "site.pair"))
            for f in verify_fleet(loaded, workers=len(topo.gateways)).verdict.findings
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"{sites} x {gateways} did not converge in 180 s")
            time.sleep(2)
        times, base, evals = [], [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            run = verify_fleet(loaded, workers=len(topo.gateways))
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            evaluate(loaded.plan, run.observations)
            evals.append(time.perf_counter() - started)
            if baseline:
                base.append(openssh_collect(topo, loaded.plan))
        ends = sum(len(g.tunnels) for g in loaded.plan.gateways)
        med = statistics.median(times)
        evaluation = statistics.median(evals) * 1000
        per_gateway = med / len(topo.gateways) * 1000
        line = (
            f"{sites} x {gateways}: verify {med:.2f} s (median of {RUNS}; evaluation "
            f"{evaluation:.0f} ms) for {len(topo.gateways)} gateways, {ends} tunnel ends: "
            f"{per_gateway:.0f} ms per gateway"
        )
        if baseline:
            ob = statistics.median(base)
            line += f"; plain OpenSSH {ob:.2f} s -> ratio {med / ob:.2f}x (target <= 1.5x)"
        print(line, flush=True)
        return med, ends
    finally:
        manager.down(NAME, ROOT)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    small, small_ends = measure(3, 2, baseline=True)
    large, large_ends = measure(10, 2, baseline=False)
    print(
        f"growth 3x2 -> 10x2: time x{large / small:.1f} for tunnel ends "
        f"x{large_ends / small_ends:.1f} (gateways are collected in parallel)"
    )


if __name__ == "__main__":
    main()
