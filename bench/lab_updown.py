"""Lab figures: `lab up` / `lab down` wall time and memory per gateway, 3 x 2 and 6 x 2.

Printed, never asserted. Memory is read from /proc (RSS and PSS of every process in the
lab's PID namespaces plus the front door). Baseline in the same run: creating and deleting
the same number of bare network namespaces with `ip netns`, so the ratio shows what the
hosts, sshd front door and wiring cost on top of the kernel's own namespace work.

Run as root: ``.venv/bin/python bench/lab_updown.py``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from wgfleet.lab import manager
from wgfleet.lab.topology import build_topology

STATE_ROOT = Path("/var/lib/wgfleet-lab")
NAME = "bench"
PORT = 2296


def _memory_kib(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


def _lab_pids(state_dir: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(state_dir) in cmdline:
            pids.append(int(entry.name))
    # Processes inside the hosts (sshd sessions, none at rest) share the hosts' PID namespace.
    return pids


def _baseline(count: int) -> tuple[float, float]:
    names = [f"wgl-{NAME}-base{i}" for i in range(count)]
    started = time.perf_counter()
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    up = time.perf_counter() - started
    started = time.perf_counter()
    for name in names:
        subprocess.run(["ip", "netns", "del", name], check=True)
    return up, time.perf_counter() - started


def measure(sites: int, gateways: int) -> None:
    topo = build_topology(sites, gateways, name=NAME, port=PORT, state_root=STATE_ROOT)
    manager.down(NAME, STATE_ROOT)
    started = time.perf_counter()
    try:
        manager.up(topo)
        up_s = time.perf_counter() - started
        rss, pss = _memory_kib(_lab_pids(topo.state_dir))
    finally:
        started = time.perf_counter()
        manager.down(NAME, STATE_ROOT)
        down_s = time.perf_counter() - started
    base_up, base_down = _baseline(len(topo.all_netns()))
    count = len(topo.gateways)
    print(
        f"{sites} x {gateways} ({count} gateways): up {up_s:.2f} s, down {down_s:.2f} s; "
        f"per gateway RSS {rss / count / 1024:.1f} MiB, PSS {pss / count / 1024:.1f} MiB; "
        f"baseline {len(topo.all_netns())} bare netns up {base_up:.2f} s / down {base_down:.2f} s "
        f"-> ratio up {up_s / base_up:.1f}x, down {down_s / base_down:.1f}x"
    )


def main() -> None:
    for sites, gateways in ((3, 2), (6, 2)):
        measure(sites, gateways)


if __name__ == "__main__":
    main()
