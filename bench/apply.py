"""Rollout figures on a 3 x 2 lab, printed as ratios against baselines measured in the same run.

1. Time from a bare lab to every BGP session Established (`apply` + convergence), split.
2. A no-op `apply` on the converged lab versus the same gateway reads over plain OpenSSH,
   one `ssh` per gateway, all in parallel (target: <= 2x).
3. SSH connections and round trips (commands) per gateway per `apply`.

Run as root: ``.venv/bin/python bench/apply.py``. Uses its own lab ("bench", port 2296).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wgfleet.commands import gather_script, read_public_key
from wgfleet.fleet import apply_fleet, load
from wgfleet.lab import manager
from wgfleet.lab.topology import build_topology
from wgfleet.parsers.bird import parse_birdc_protocols
from wgfleet.paths import GatewayPaths

NAME, PORT, ROOT = "bench", 2296, Path("/var/lib/wgfleet-lab")
RUNS = 5


def ssh_argv(topo, gw, command: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "ssh", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={topo.state_dir / 'known_hosts'}",
        "-i", str(topo.state_dir / "id_ed25519"), "-p", str(topo.port),
        f"root@{gw.mgmt_address}", command,
    ]  # fmt: skip


def established(topo, plan) -> bool:  # type: ignore[no-untyped-def]
    paths = GatewayPaths()

    def one(gw) -> bool:  # type: ignore[no-untyped-def]
        out = subprocess.run(
            ssh_argv(topo, gw, f"birdc -r -s {paths.bird_socket} show protocols"),
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        sessions = {n: p for n, p in parse_birdc_protocols(out).items() if p.proto == "BGP"}
        wanted = set(plan.gateway(gw.name).expected.sessions)
        return set(sessions) >= wanted and all(sessions[n].established for n in wanted)

    with ThreadPoolExecutor(len(topo.gateways)) as pool:
        return all(pool.map(one, topo.gateways))


def openssh_reads(topo, plan) -> float:  # type: ignore[no-untyped-def]
    """The reads a no-op apply makes, over plain OpenSSH: one ssh per gateway, in parallel."""
    paths = GatewayPaths()
    scripts = {
        gw.name: read_public_key(paths) + "\n"
        + gather_script(paths, [t.interface for t in plan.gateway(gw.name).tunnels])
        for gw in topo.gateways
    }  # fmt: skip
    started = time.perf_counter()

    def one(gw) -> None:  # type: ignore[no-untyped-def]
        subprocess.run(ssh_argv(topo, gw, scripts[gw.name]), capture_output=True, check=True)

    with ThreadPoolExecutor(len(topo.gateways)) as pool:
        list(pool.map(one, topo.gateways))
    return time.perf_counter() - started


def main() -> None:
    topo = build_topology(3, 2, name=NAME, port=PORT, state_root=ROOT)
    manager.down(NAME, ROOT)
    work = Path(tempfile.mkdtemp(prefix="wgfleet-bench-"))
    try:
        manager.up(topo)
        inventory = work / "inventory"
        shutil.copytree(topo.state_dir / "inventory", inventory)
        loaded = load(inventory, save_allocations_file=True)
        started = time.perf_counter()
        report = apply_fleet(loaded, progress=None)
        applied = time.perf_counter() - started
        assert report.exit_status == 0, report.outcomes
        deadline = time.monotonic() + 120
        while not established(topo, loaded.plan):
            if time.monotonic() > deadline:
                raise SystemExit("BGP did not converge within 120 s")
            time.sleep(0.2)
        total = time.perf_counter() - started
        print(f"bare lab -> every BGP session Established: {total:.1f} s "
              f"(apply {applied:.1f} s, then BGP {total - applied:.1f} s)")  # fmt: skip
        first = {name: c for name, c in report.ssh.items()}
        noop, base, counts = [], [], {}
        for _ in range(RUNS):
            started = time.perf_counter()
            rep = apply_fleet(loaded, progress=None)
            noop.append(time.perf_counter() - started)
            assert all(o.status == "ok" for o in rep.outcomes), rep.outcomes
            counts = rep.ssh
            base.append(openssh_reads(topo, loaded.plan))
        wg, ob = statistics.median(noop), statistics.median(base)
        print(f"no-op apply {wg:.2f} s vs plain OpenSSH reads in parallel {ob:.2f} s "
              f"(median of {RUNS}): ratio {wg / ob:.2f}x (target <= 2x)")  # fmt: skip
        conns = sorted({c[0] for c in counts.values()})
        cmds = sorted({c[1] for c in counts.values()})
        print(
            f"per gateway, no-op apply: {conns} SSH connection(s), {cmds} round trips; "
            f"first apply: {sorted({c[1] for c in first.values()})} round trips"
        )
    finally:
        manager.down(NAME, ROOT)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
