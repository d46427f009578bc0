"""Change-window figures on a 3 x 2 lab (printed, never asserted).

1. Wall time of `rollout.yaml` rolling a changed setting out (BGP hold time 6 -> 9), split
   into waves and gate waits, against a plain `wgfleet apply` of the same change in the same
   run (the baseline: no waves, no gates, no confirmation).
2. Packets lost between two site hosts (ping every 50 ms) during the rollout and during
   `rotate-keys.yaml`, against the budget of one BGP hold time: over each path separately
   (path k pinned to the tunnel V1-k <-> V3-k, tests/lab/pathping.py) and over the site
   host's own ECMP default route, with each outage's wave and the time both paths lost
   packets at once (never both paths at once is the goal).
3. The same for `rotate-keys.yaml` on the fleet with preshared keys (rotated too), and its
   wall time against the run without.

Run as root: ``.venv/bin/python bench/runbook.py``. Uses its own lab ("bench", port 2296).
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lab.pathping import Measurement, PathPing, phases_from_journal

from wgfleet.fleet import apply_fleet, load
from wgfleet.lab import manager
from wgfleet.lab.topology import LabTopology, build_topology
from wgfleet.runbook.engine import Engine, Options
from wgfleet.runbook.record import read_journal
from wgfleet.runbook.schema import load_runbook
from wgfleet.verify import verify_fleet

NAME, PORT, ROOT = "bench", 2296, Path("/var/lib/wgfleet-lab")
RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"


def losses(what: str, measured: Measurement, record: Path) -> None:
    waves = phases_from_journal(read_journal(record / "journal.jsonl"))
    print(f"  pings lost during {what} (every 50 ms, site 1 -> site 3; budget one hold time):")
    print(measured.report(waves))


def healthy(inventory: Path) -> None:
    loaded = load(inventory, save_allocations_file=False)
    deadline = time.monotonic() + 120
    while verify_fleet(loaded).verdict.severity != "ok":
        if time.monotonic() > deadline:
            raise SystemExit("the lab did not become healthy")
        time.sleep(1)


def run_book(name: str, inventory: Path, records: Path) -> Path:
    engine = Engine(
        load_runbook(RUNBOOKS / f"{name}.yaml"),
        load(inventory, save_allocations_file=False),
        Options(yes=True, records=records, out=io.StringIO()),
    )
    outcome = engine.run()
    assert outcome.result == "success", outcome.message
    assert outcome.record is not None
    return outcome.record


def with_setting(source: Path, target: Path, key: str, value: object) -> Path:
    """A copy of the inventory at ``source`` with one ``data.fleet`` setting changed."""
    shutil.copytree(source, target)
    defaults = yaml.safe_load((target / "defaults.yaml").read_text())
    defaults["data"]["fleet"][key] = value
    (target / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return target


def timed_run(
    topo: LabTopology, name: str, inventory: Path, records: Path
) -> tuple[Path, float, Measurement]:
    """Run a shipped runbook under a per-path ping: (record, seconds, what was lost)."""
    with PathPing(topo) as pinger:
        started = time.perf_counter()
        record = run_book(name, inventory, records)
        seconds = time.perf_counter() - started
        measured = pinger.stop()
    return record, seconds, measured


def main() -> None:
    topo = build_topology(3, 2, name=NAME, port=PORT, state_root=ROOT)
    manager.down(NAME, ROOT)
    work = Path(tempfile.mkdtemp(prefix="wgfleet-bench-"))
    try:
        manager.up(topo)
        base = work / "inventory"
        shutil.copytree(topo.state_dir / "inventory", base)
        apply_fleet(load(base, save_allocations_file=True), progress=None)
        healthy(base)
        changed = with_setting(base, work / "changed", "bgp", {"hold_time": 9})

        started = time.perf_counter()
        apply_fleet(load(changed, save_allocations_file=False), progress=None)
        plain = time.perf_counter() - started
        healthy(changed)
        apply_fleet(load(base, save_allocations_file=False), progress=None)
        healthy(base)

        record, total, measured = timed_run(topo, "rollout", changed, work / "changes")
        events = read_journal(record / "journal.jsonl")
        gates = [e for e in events if e["event"] == "gate"]
        waves = [e for e in events if e["event"] == "wave-start"]
        waits = ", ".join(f"{gate['seconds']:.1f} s" for gate in gates)
        print(
            f"rollout.yaml (hold time 6 -> 9): {total:.1f} s in {len(waves)} waves; "
            f"gate waits {waits}; plain `apply` of the same change {plain:.1f} s "
            f"-> ratio {total / plain:.1f}x"
        )
        losses("the rollout (hold time 6 s before, 9 s after)", measured, record)
        healthy(changed)

        record, total, measured = timed_run(topo, "rotate-keys", changed, work / "changes")
        print(f"rotate-keys.yaml: {total:.1f} s")
        losses("rotate-keys.yaml (hold time 9 s)", measured, record)

        # The same with preshared keys: each tunnel's key renewed at both ends as well.
        psk = with_setting(changed, work / "psk", "preshared_keys", True)
        started = time.perf_counter()
        apply_fleet(load(psk, save_allocations_file=False), progress=None)
        setup = time.perf_counter() - started
        print(f"preshared keys set up on 12 tunnels (24 ends) by one apply: {setup:.1f} s")
        healthy(psk)
        record, with_psk, measured = timed_run(topo, "rotate-keys", psk, work / "changes")
        print(f"rotate-keys.yaml with preshared keys: {with_psk:.1f} s "
              f"(-> {with_psk / total:.2f}x the run without)")  # fmt: skip
        losses("rotate-keys.yaml with preshared keys (hold time 9 s)", measured, record)
    finally:
        manager.down(NAME, ROOT)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
