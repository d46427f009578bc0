"""Run a task across the fleet: inventory → plan → Nornir, with outcomes per gateway.

The CLI and the runbook engine share this: it selects gateways (``--limit``), collects
public keys, converges, and turns Nornir's results into one outcome per gateway so that a
gateway that fails or cannot be reached is reported and never silently dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from nornir.core import Nornir
from nornir.core.inventory import Host
from nornir.core.processor import Processor
from nornir.core.task import AggregatedResult, MultiResult, Task

from wgfleet.allocations import load_allocations, save_allocations
from wgfleet.connection import CONNECTION_NAME, WgSsh
from wgfleet.errors import BadInputError, ExitStatus, Problem
from wgfleet.fleet_psk import PskRun, converge_psks, uses_psk
from wgfleet.inventory import load_fleet, load_nornir
from wgfleet.model import Fleet
from wgfleet.outcomes import Outcome, outcomes
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.tasks import apply_gateway, ensure_keys

ALLOCATIONS_FILE = "allocations.yaml"


@dataclass(frozen=True)
class Loaded:
    """A validated inventory with its plan."""

    inventory: Path
    fleet: Fleet
    plan: FleetPlan
    allocations_pending: bool


def load(inventory: Path, *, save_allocations_file: bool) -> Loaded:
    """Validate the inventory and plan it; record new allocations when asked (atomically)."""
    fleet = load_fleet(inventory)
    path = inventory / ALLOCATIONS_FILE
    current = load_allocations(path, fleet.settings)
    plan, new = plan_fleet(fleet, current)
    pending = new != current
    if pending and save_allocations_file:
        save_allocations(path, new)
        pending = False
    return Loaded(inventory, fleet, plan, pending)


def select(nr: Nornir, limit: Sequence[str] | None) -> Nornir:
    """Filter by host name, site group (``site2``) or any group; every name must match."""
    if not limit:
        return nr
    names = {n.strip() for item in limit for n in item.split(",") if n.strip()}
    known = set(nr.inventory.hosts) | set(nr.inventory.groups)
    unknown = sorted(names - known)
    if unknown:
        raise BadInputError(
            [
                Problem("--limit", n, "", "no host or group of that name in the inventory")
                for n in unknown
            ]
        )

    def wanted(host: Host) -> bool:
        return host.name in names or any(g.name in names for g in host.groups)

    return nr.filter(filter_func=wanted)


@dataclass
class RunReport:
    """Outcomes of a fleet-wide run, in inventory order."""

    action: str
    check: bool
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    ssh: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per gateway: SSH connections opened and commands run (round trips)."""

    @property
    def exit_status(self) -> ExitStatus:
        """Failed beats unreachable beats success."""
        statuses = {o.status for o in self.outcomes}
        if "failed" in statuses:
            return ExitStatus.FAILED
        if "unreachable" in statuses:
            return ExitStatus.UNREACHABLE
        return ExitStatus.OK


class Progress:
    """A Nornir processor printing one line per gateway as it finishes (live progress)."""

    def __init__(
        self, total: int, stream: TextIO | None = sys.stderr, label: str = "apply"
    ) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.label = label
        self.started: dict[str, float] = {}
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()

    def task_started(self, task: Task) -> None:
        pass

    def task_completed(self, task: Task, result: AggregatedResult) -> None:
        pass

    def task_instance_started(self, task: Task, host: Host) -> None:
        if task.parent_task is None:
            self.started[host.name] = time.monotonic()

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        if task.parent_task is not None:
            return
        with self._lock:
            self.done += 1
            seconds = time.monotonic() - self.started.get(host.name, time.monotonic())
            self.timings[host.name] = seconds
            state = "FAILED" if result.failed else ("changed" if result.changed else "ok")
            if self.stream is not None:
                print(f"[{self.done}/{self.total}] {self.label} {host.name}: {state} "
                      f"({seconds:.1f} s)", file=self.stream, flush=True)  # fmt: skip

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        pass

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        pass


def nornir_for(loaded: Loaded, workers: int) -> Nornir:
    """Nornir over the inventory with ``workers`` threads (the inventory is already valid)."""
    return load_nornir(
        loaded.inventory, validate=False, runner={"options": {"num_workers": workers}}
    )


def collect_public_keys(
    nr: Nornir,
    loaded: Loaded,
    targets: set[str],
    *,
    check: bool,
    prepare: Collection[str] = (),
    run_id: str | None = None,
) -> tuple[dict[str, str], AggregatedResult]:
    """Ensure keys on the targets (generate if missing) and read them from their peers.

    Peers in ``prepare`` (later waves of the same runbook run) get a key generated too:
    a file on the gateway, nothing live, so that tunnels towards them can be built now.
    A gateway locked by a runbook run other than ``run_id`` fails here, untouched.
    """
    peers = {t.peer for name in targets for t in loaded.plan.gateway(name).tunnels} - targets
    making = targets | (peers & set(prepare))
    keys: dict[str, str] = {}
    result = nr.filter(filter_func=lambda h: h.name in making).run(
        task=ensure_keys, plan=loaded.plan, dry_run=check, on_failed=True, name="ensure_keys",
        run_id=run_id,
    )  # fmt: skip
    if peers - making:
        peer_result = nr.filter(filter_func=lambda h: h.name in peers - making).run(
            task=ensure_keys, plan=loaded.plan, dry_run=True, on_failed=True, name="read_public_key"
        )
        for name, multi in peer_result.items():
            if not multi.failed and multi[0].result:
                keys[name] = multi[0].result
    for name, multi in result.items():
        if not multi.failed and multi[0].result:
            keys[name] = multi[0].result
    return keys, result


def apply_fleet(
    loaded: Loaded,
    *,
    limit: Sequence[str] | None = None,
    check: bool = False,
    workers: int = 20,
    templates_dir: Path | None = None,
    progress: TextIO | None = sys.stderr,
    parts: tuple[str, ...] = ("keys", "namespace", "tunnels", "bird"),
    bird_confirm_timeout: int | None = None,
    prepare: Sequence[str] = (),
    run_id: str | None = None,
) -> RunReport:
    """Converge the selected gateways; return one outcome per gateway.

    ``parts`` and ``bird_confirm_timeout`` serve runbooks: converge only some parts (keys
    are always read; generated only with ``keys``), and try BIRD configs with an automatic
    revert (see :func:`wgfleet.tasks.converge_bird`). ``prepare`` names the gateways of
    later waves of the same run: their private keys and the preshared keys they share with
    the selected gateways are made now (files only, nothing live on them changes), so that
    the tunnels towards them are built in this wave and come up when theirs comes.
    A gateway whose lock a runbook run holds is refused, unless ``run_id`` is that run's.
    """
    started = time.monotonic()
    nr = nornir_for(loaded, workers)
    try:
        selected = select(nr, limit)
        targets = [
            h for h in selected.inventory.hosts if h in {g.name for g in loaded.plan.gateways}
        ]
        prepared = set(prepare) - set(targets)
        keys, key_result = collect_public_keys(
            nr, loaded, set(targets), check=check or "keys" not in parts, prepare=prepared,
            run_id=run_id,
        )  # fmt: skip
        failed_keys = [name for name in targets if key_result[name].failed]
        report = RunReport("apply", check)
        report.outcomes += outcomes(key_result, failed_keys, {})
        ready = [name for name in targets if name not in failed_keys]
        psk = PskRun()
        if "tunnels" in parts and uses_psk(loaded.plan):
            psk = converge_psks(nr, loaded.plan, ready, check=check, writable=prepared)
            report.outcomes += [Outcome(n, "failed", m) for n, m in psk.failed.items()]
            ready = [name for name in ready if name not in psk.failed]
        meter = Progress(len(ready), progress)  # timings always; lines only with a stream
        processors: list[Processor] = [meter]
        runner = nr.filter(filter_func=lambda h: h.name in ready).with_processors(processors)
        result = runner.run(
            task=apply_gateway,
            plan=loaded.plan,
            public_keys=keys,
            templates_dir=templates_dir,
            dry_run=check,
            on_failed=True,
            name="apply_gateway",
            parts=tuple(p for p in parts if p != "keys"),
            bird_confirm_timeout=bird_confirm_timeout,
            held=psk.held,
        )
        timings = meter.timings
        report.outcomes += outcomes(result, ready, timings)
        report.outcomes += [
            Outcome(name, "changed", "prepared for its own wave (key files only, nothing live)")
            for name in sorted(prepared - set(psk.failed))
            if (name in key_result and key_result[name].changed) or psk.diffs.get(name)
        ]
        for outcome in report.outcomes:
            if outcome.host in key_result and key_result[outcome.host].changed:
                outcome.status = "changed" if outcome.status == "ok" else outcome.status
                outcome.diff = (key_result[outcome.host][0].diff or "") + outcome.diff
            if psk.diffs.get(outcome.host):
                outcome.status = "changed" if outcome.status == "ok" else outcome.status
                outcome.diff = f"--- preshared keys ---\n{psk.diffs[outcome.host]}" + outcome.diff
        order = {name: i for i, name in enumerate(targets)}
        report.outcomes.sort(key=lambda o: order.get(o.host, len(order)))
        report.seconds = time.monotonic() - started
        report.ssh = ssh_counters(nr)
        return report
    finally:
        nr.close_connections(on_good=True, on_failed=True)


def ssh_counters(nr: Nornir) -> dict[str, tuple[int, int]]:
    """SSH connections opened and commands run per gateway so far."""
    counters: dict[str, tuple[int, int]] = {}
    for name, host in nr.inventory.hosts.items():
        plugin = host.connections.get(CONNECTION_NAME)
        if isinstance(plugin, WgSsh):
            session = plugin.session
            counters[name] = (session.connections_opened, session.commands_run)
    return counters


def format_summary(report: RunReport) -> str:
    """A table: gateway, status, time, message; then totals."""
    rows = [("GATEWAY", "STATUS", "TIME", "DETAIL")]
    for o in report.outcomes:
        status = o.status.upper() if o.status in ("failed", "unreachable") else o.status
        if report.check and o.status == "changed":
            status = "would change"
        first = o.message.splitlines()[0] if o.message else ""
        rows.append((o.host, status, f"{o.seconds:.1f} s", first))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    ]
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    total = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    mode = " (check: nothing was changed)" if report.check else ""
    lines.append(f"{len(report.outcomes)} gateways: {total} in {report.seconds:.1f} s{mode}")
    return "\n".join(lines)
