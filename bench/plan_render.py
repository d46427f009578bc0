"""Benchmark: plan + render time and peak memory as the fleet grows (printed, never asserted).

Sizes: full meshes of 10, 20, 40 and 80 sites x 2 gateways, and a hub-and-spoke fleet of
500 spoke sites x 2 with 2 hub sites x 2. For each: tunnel ends (one per tunnel per side),
plan and render wall time, time per tunnel end, peak traced memory (tracemalloc, measured
in a separate run so tracing does not slow the timed one), and the ratio of time per
tunnel end to the previous size: a ratio near 1 means the work grows linearly with tunnel
ends. The baseline, measured in the same run, renders the same WireGuard peer files with
plain f-strings: the ratio wgfleet/baseline is the price of Jinja2 templates and of
planning.

Run: ``.venv/bin/python bench/plan_render.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fleets import hub_spoke_fleet, mesh_fleet, public_keys

from wgfleet.allocations import Allocations
from wgfleet.model import Fleet
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.render import render_fleet

CASES: list[tuple[str, Callable[[], Fleet]]] = [
    ("mesh 10x2", lambda: mesh_fleet(10)),
    ("mesh 20x2", lambda: mesh_fleet(20)),
    ("mesh 40x2", lambda: mesh_fleet(40)),
    ("mesh 80x2", lambda: mesh_fleet(80)),
    ("hub 2x2 + spoke 500x2", lambda: hub_spoke_fleet(hubs=2, spokes=500)),
]


def baseline(plan: FleetPlan, keys: dict[str, str]) -> int:
    """Render every WireGuard peer file with plain f-strings; return the bytes produced."""
    size = 0
    for g in plan.gateways:
        for t in g.tunnels:
            text = (
                f"[Interface]\nListenPort = {t.listen_port}\n\n[Peer]\n"
                f"PublicKey = {keys[t.peer]}\nEndpoint = {t.endpoint}\n"
                f"AllowedIPs = 0.0.0.0/0, ::/0\nPersistentKeepalive = {t.keepalive}\n"
            )
            size += len(text)
    return size


def run(fleet: Fleet) -> tuple[int, float, float, float, int]:
    """Return tunnel ends, plan seconds, render seconds, baseline seconds, files rendered."""
    keys = public_keys(fleet)
    gc.collect()
    start = time.perf_counter()
    plan, _ = plan_fleet(fleet, Allocations())
    planned = time.perf_counter()
    rendered = render_fleet(plan, keys)
    done = time.perf_counter()
    baseline(plan, keys)
    base = time.perf_counter() - done
    ends = sum(len(g.tunnels) for g in plan.gateways)
    files = sum(len(r.files) for r in rendered)
    return ends, planned - start, done - planned, base, files


def peak_memory(fleet: Fleet) -> int:
    """Peak traced memory of plan + render, in bytes."""
    keys = public_keys(fleet)
    gc.collect()
    tracemalloc.start()
    plan, _ = plan_fleet(fleet, Allocations())
    rendered = render_fleet(plan, keys)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del plan, rendered
    return peak


def main() -> None:
    """Print one row per fleet size."""
    header = (
        f"{'fleet':<22} {'ends':>6} {'files':>6} {'plan s':>7} {'render s':>9} "
        f"{'us/end':>7} {'x prev':>6} {'peak MB':>8} {'MB/1k ends':>10} {'vs f-str':>8}"
    )
    print(header)
    print("-" * len(header))
    previous: float | None = None
    for name, build in CASES:
        fleet = build()
        ends, plan_s, render_s, base_s, files = run(fleet)
        per_end = (plan_s + render_s) / ends * 1e6
        peak = peak_memory(fleet) / 2**20
        ratio = f"{per_end / previous:.2f}" if previous and name.startswith("mesh") else "-"
        print(
            f"{name:<22} {ends:>6} {files:>6} {plan_s:>7.2f} {render_s:>9.2f} "
            f"{per_end:>7.1f} {ratio:>6} {peak:>8.1f} {peak / ends * 1000:>10.2f} "
            f"{(plan_s + render_s) / base_s:>7.0f}x"
        )
        previous = per_end if name.startswith("mesh") else previous
    print(
        "\nus/end: plan + render time per tunnel end; x prev: that figure divided by the "
        "previous mesh's\n(near 1 = linear in tunnel ends; each mesh step has ~4x the ends). "
        "vs f-str: plan + render\ntime over the baseline's (the same peer files from plain "
        "f-strings, measured in this run)."
    )


if __name__ == "__main__":
    main()
