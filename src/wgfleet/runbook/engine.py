"""Run a runbook: locks, waves, gates, rollback of a failed wave, and the change record.

The engine never decides *what* a gateway should look like (the plan does) nor *how* to
change it (the tasks do): it decides *when*, wave by wave, and what to undo when a step
or gate fails. Every event goes to the journal before the engine goes on.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wgfleet.errors import BadInputError, ExitStatus, Problem, WgfleetError
from wgfleet.fallback import wave_fallbacks
from wgfleet.fleet import Loaded, apply_fleet, nornir_for, select
from wgfleet.outcomes import failure_message
from wgfleet.runbook import (
    Runbook,
)
from wgfleet.runbook.describe import describe
from wgfleet.runbook.record import (
    Journal,
    read_journal,
    record_directory,
    resume_point,
)
from wgfleet.runbook.schema import check_change, check_targets
from wgfleet.runbook.steps import Options, WaveSteps
from wgfleet.runbook.summary import render_summary
from wgfleet.runbook.waves import Wave, plan_waves
from wgfleet.tasks.bird import confirm_bird, undo_bird
from wgfleet.tasks.psk import forget_previous_keys
from wgfleet.tasks.runbook import (
    Snapshot,
    acquire_lock,
    release_lock,
)

__all__ = [
    "Engine",
    "LockedError",
    "Options",
    "Outcome",
    "RunbookError",
    "journaled_rotation",
    "journaled_snapshot",
    "targets",
]


class RunbookError(WgfleetError):
    """A runbook could not run, or stopped; the message says where and what was undone."""


class LockedError(RunbookError):
    """Another run holds the lock of a targeted gateway."""

    exit_status = ExitStatus.FAILED


@dataclass
class Outcome:
    """How a run ended."""

    result: str
    record: Path | None
    message: str = ""

    @property
    def exit_status(self) -> ExitStatus:
        """0 for success (and a dry run), 4 otherwise."""
        return ExitStatus.OK if self.result in ("success", "checked") else ExitStatus.FAILED


def targets(runbook: Runbook, loaded: Loaded, limit: Sequence[str] | None) -> list[str]:
    """The gateways a run targets: the runbook's targets, narrowed by ``--limit``."""
    if runbook.limit_required and not limit:
        raise BadInputError(
            [Problem(runbook.file, "", "targets", "this runbook needs --limit HOST|GROUP")]
        )
    nr = nornir_for(loaded, 1)
    known = set(nr.inventory.hosts) | set(nr.inventory.groups)
    problems = check_targets(runbook, known)
    if problems:
        raise BadInputError(problems)
    selected = set(select(nr, list(runbook.targets) if runbook.targets else None).inventory.hosts)
    if limit:
        selected &= set(select(nr, limit).inventory.hosts)
    return [g.name for g in loaded.plan.gateways if g.name in selected]


class Engine(WaveSteps):
    """One run of one runbook."""

    def __init__(self, runbook: Runbook, loaded: Loaded, options: Options) -> None:
        self.runbook = runbook
        self.loaded = loaded
        self.options = options
        self.run_id = uuid.uuid4().hex[:12]
        self.owner = f"{getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()})"
        self.change = options.change or runbook.change
        if options.change is not None:
            problem = check_change(options.change)
            if problem:
                raise BadInputError([Problem("command line", "runbook", "--change", problem)])
        self.journal: Journal | None = None
        self.record: Path | None = None
        self.failed: set[str] = set()
        self.targets: set[str] = set()
        self.done: set[str] = set()
        self.snapshots: dict[str, Snapshot] = {}
        self.remaining = 0.0
        self.rotated: list[str] = []
        self.rotated_psks: dict[str, list[str]] = {}

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Plan the waves, then check (dry run) or execute them."""
        selected = targets(self.runbook, self.loaded, self.options.limit)
        # A runbook of only before/after steps (verify.yaml) has no waves.
        waves = (
            plan_waves(self.loaded.plan, selected, self.runbook.strategy, self.runbook.batch_size)
            if self.runbook.wave
            else []
        )
        self._show(selected, waves)
        if self.options.check:
            return self._check(waves)
        started = datetime.now(UTC)
        self.record = record_directory(self.options.records, self.runbook.name, started)
        self.journal = Journal(self.record / "journal.jsonl")
        self._start(selected, waves)
        locked = self._lock(selected) if self.runbook.changes_gateways else []
        return self._finish(locked, lambda: self._execute(waves))

    def resume(self, record: Path) -> Outcome:
        """Go on with a run that was interrupted, from the wave it stopped in (re-run whole:
        every step is idempotent), under the same run id and locks."""
        events, start = self._reopen(record)
        waves = [Wave(n, tuple(g)) for n, g in enumerate(start["waves"], start=1)]
        selected = list(start["targets"])
        self._show(selected, waves)
        point = resume_point(events)
        if point.state == "finished":
            raise RunbookError(f"{record} is finished: nothing to resume")
        first = point.next_wave_index
        snapshot = journaled_snapshot(events, first + 1)
        self._start(selected, waves, resumed_from=first + 1)
        self.done = {g for w in waves[:first] for g in w.gateways}
        locked = self._lock(selected) if self.runbook.changes_gateways else []
        if point.state == "in-wave" and first < len(waves):
            # Our own tried BIRD config of the interrupted wave: revert it, then redo the wave.
            self._nornir(waves[first].gateways).run(task=undo_bird, plan=self.loaded.plan)
            self._fallback_off(waves[first])
            # Keys it already replaced go back first, so that the redone rotation keeps the
            # originals as ``.prev`` (what a rollback of the resumed wave must restore).
            self.rotated, self.rotated_psks = journaled_rotation(events, first + 1)
            self._restore_keys()
        return self._finish(
            locked,
            lambda: self._execute(waves, first=first, before=first == 0, snapshot=snapshot),
        )

    def rollback(self, record: Path) -> Outcome:
        """Roll back the wave an interrupted run stopped in, release its locks, and end it."""
        events, start = self._reopen(record)
        point = resume_point(events)
        if point.state not in ("in-wave", "failed"):
            raise RunbookError(f"{record}: no wave to roll back (state {point.state})")
        number = point.next_wave_index + 1
        wave = Wave(number, tuple(start["waves"][number - 1]))
        self.snapshots = journaled_snapshot(events, number)
        if not self.snapshots:
            raise RunbookError(f"{record}: wave {number} has no snapshot to roll back to")
        self.rotated, self.rotated_psks = journaled_rotation(events, number)
        self._rollback(wave)
        self._fallback_off(wave)
        self._event("wave-end", wave=number, status="rolled-back")
        message = f"wave {number} rolled back after the interruption"
        self._event("run-end", result="rolled-back", message=message)
        self._unlock(list(start["targets"]))
        self._summary()
        return Outcome("rolled-back", self.record, message)

    def _reopen(self, record: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        events = read_journal(record / "journal.jsonl")
        start = next((e for e in events if e.get("event") == "run-start"), None)
        if start is None:
            raise RunbookError(f"{record}: no run-start in the journal")
        self.run_id = str(start["run_id"])
        self.change = start.get("change")
        self.targets = set(start["targets"])
        self.record = record
        self.journal = Journal(record / "journal.jsonl")
        return events, start

    def _start(self, selected: list[str], waves: list[Wave], **extra: Any) -> None:
        self._event("run-start", runbook=self.runbook.name, file=self.runbook.file,
                    change=self.change, owner=self.owner, check=False, run_id=self.run_id,
                    strategy=self.runbook.strategy, targets=selected,
                    waves=[list(w.gateways) for w in waves], **extra)  # fmt: skip

    def _show(self, selected: list[str], waves: list[Wave]) -> None:
        self.targets = set(selected)
        self.done = set()
        self._say(f"runbook {self.runbook.name}: {len(selected)} gateways in {len(waves)} waves")
        for wave in waves:
            self._say(f"  wave {wave.number}: {', '.join(wave.gateways)}")

    def _finish(self, locked: list[str], execute: Callable[[], tuple[str, str]]) -> Outcome:
        result, message = "failed", ""
        try:
            result, message = execute()
        except KeyboardInterrupt:
            message = (
                "interrupted; the locks stay: `wgfleet runbook resume` or "
                f"`wgfleet runbook rollback {self.record}`"
            )
            self._event("run-end", result="interrupted", message=message)
            self._summary()
            raise
        except WgfleetError as exc:
            message = str(exc)
        self._event("run-end", result=result, message=message)
        self._unlock(locked)
        self._summary()
        return Outcome(result, self.record, message)

    def _execute(
        self,
        waves: list[Wave],
        *,
        first: int = 0,
        before: bool = True,
        snapshot: dict[str, Snapshot] | None = None,
    ) -> tuple[str, str]:
        for step in self.runbook.before if before else ():
            if not self._step(step, None, waves):
                return "failed", f"stopped at {step.title} before any change"
        spared: list[str] = []
        for index, planned in enumerate(waves[first:], start=first):
            # A failed gateway's site partner is never touched in a later wave.
            keep = self._touchable(planned.gateways)
            spared += [g for g in planned.gateways if g not in keep]
            wave = Wave(planned.number, tuple(keep))
            if not keep:
                self._event("wave-end", wave=wave.number, status="skipped")
                continue
            self._event("wave-start", wave=wave.number, gateways=list(wave.gateways))
            self.done |= set(wave.gateways)
            fallback = self._fallback_on(wave)
            try:
                ok, message = self._wave(wave, waves, snapshot if index == first else None)
                if not ok and self.runbook.on_failure == "rollback":
                    self._rollback(wave)
            finally:
                self._fallback_off(wave, fallback)
            if not ok:
                if self.runbook.on_failure == "rollback":
                    self._event("wave-end", wave=wave.number, status="rolled-back")
                    later = [g for w in waves[index + 1 :] for g in w.gateways]
                    return "rolled-back", (
                        f"wave {wave.number} failed ({message}) and was rolled back; "
                        f"not touched: {', '.join(later) or 'nothing left'}"
                    )
                self._event("wave-end", wave=wave.number, status="failed")
                return "failed", f"wave {wave.number} failed: {message}"
            self._event("wave-end", wave=wave.number, status="ok")
        for step in self.runbook.after:
            if not self._step(step, None, waves):
                return "failed", f"post-check {step.title} failed"
        if self.failed:
            return "failed", (
                f"finished with {len(self.failed)} tolerated failure(s): "
                f"{', '.join(sorted(self.failed))}; their site partners were not touched: "
                f"{', '.join(spared) or 'none'}"
            )
        return "success", ""

    def _wave(
        self, wave: Wave, waves: list[Wave], snapshot: dict[str, Snapshot] | None = None
    ) -> tuple[bool, str]:
        # A resumed wave keeps the snapshot taken before it first started.
        self.snapshots = snapshot or self._snapshot(wave)
        self.rotated, self.rotated_psks = [], {}  # keys this wave replaced (for rollback)
        self._event("snapshot", wave=wave.number,
                    gateways={n: s.to_json() for n, s in self.snapshots.items()})  # fmt: skip
        active = wave
        for position, step in enumerate(self.runbook.wave):
            self.remaining = sum(
                self.runbook.timeout_for(s) or 0.0 for s in self.runbook.wave[position:]
            )
            # Gateways that failed within max_failures sit out the rest of the wave.
            active = Wave(wave.number, tuple(g for g in wave.gateways if g not in self.failed))
            if not active.gateways:
                return False, "every gateway of the wave failed"
            if not self._step(step, active, waves):
                return False, f"{step.title} failed"
        confirmed = self._nornir(active.gateways).run(task=confirm_bird, plan=self.loaded.plan)
        bad = [name for name, multi in confirmed.items() if multi.failed]
        if bad:
            return False, f"confirming BIRD failed on {', '.join(bad)}"
        if self.rotated or self.rotated_psks:
            # The wave holds: the replaced keys are no longer needed, and old secrets
            # left on disk would outlive the rotation.
            names = sorted(set(self.rotated) | set(self.rotated_psks))
            self._nornir(names).run(task=forget_previous_keys, plan=self.loaded.plan,
                                    keys=self.rotated, psks=self.rotated_psks)  # fmt: skip
        return True, ""

    # --- rollback, locks, helpers -----------------------------------------------------------

    def _lock(self, names: list[str]) -> list[str]:
        record = {
            "owner": self.owner,
            "started": datetime.now(UTC).isoformat(),
            "runbook": self.runbook.name,
            "change": self.change,
            "run_id": self.run_id,
        }
        result = self._nornir(names).run(task=acquire_lock, record=record)
        taken = [n for n, m in result.items() if not m.failed]
        refused = {n: failure_message(m) for n, m in result.items() if m.failed}
        if refused:
            self._unlock(taken)
            message = "\n".join(refused.values())
            self._event("run-end", result="failed", message=message)
            self._summary()
            raise LockedError(f"runbook {self.runbook.name} did not start:\n{message}")
        return taken

    def _unlock(self, names: list[str]) -> None:
        if not names:
            return
        result = self._nornir(names).run(task=release_lock, run_id=self.run_id)
        kept = sorted(name for name, multi in result.items() if multi.failed)
        if kept:
            message = (
                f"lock left on {', '.join(kept)} (could not be released); clear it with "
                f"`wgfleet runbook unlock {' '.join(kept)}` once reachable"
            )
            self._event("unlock", status="failed", gateways=kept, message=message)
            self._say(message)

    def _check(self, waves: list[Wave]) -> Outcome:
        plan = self.loaded.plan
        for step in self.runbook.before:
            self._say(f"{step.title}: would {describe(self.runbook, step, [], plan)}")
        for wave in waves:
            self._say(f"=== wave {wave.number}: {', '.join(wave.gateways)}")
            for step in self.runbook.wave:
                would = describe(self.runbook, step, wave.gateways, plan)
                self._say(f"  {step.title}: would {would}")
            if any(step.kind in ("apply", "rotate-keys") for step in self.runbook.wave):
                planned = wave_fallbacks(plan, wave.gateways)
                pairs = ", ".join(f"{n} via {p}" for n, (p, _) in sorted(planned.items()))
                self._say(f"  while it changes: fallback routes {pairs or '(none: no partner)'}")
            report = apply_fleet(self.loaded, limit=list(wave.gateways), check=True,
                                 workers=self.options.workers, progress=None,
                                 templates_dir=self.options.templates)  # fmt: skip
            for outcome in report.outcomes:
                self._say(f"=== wave {wave.number}: {outcome.host}: {outcome.status}")
                if outcome.diff:
                    self._say(outcome.diff)
        for step in self.runbook.after:
            self._say(f"{step.title}: would {describe(self.runbook, step, [], plan)}")
        self._say("check: nothing was changed")
        return Outcome("checked", None)

    def _summary(self) -> None:
        if self.record is not None:
            events = read_journal(self.record / "journal.jsonl")
            (self.record / "summary.md").write_text(render_summary(events))


def journaled_snapshot(events: list[dict[str, Any]], wave: int) -> dict[str, Snapshot]:
    """The snapshot taken before wave ``wave`` first started, from the journal."""
    for event in events:
        if event.get("event") == "snapshot" and event.get("wave") == wave:
            return {n: Snapshot.from_json(raw) for n, raw in event["gateways"].items()}
    return {}


def journaled_rotation(
    events: list[dict[str, Any]], wave: int
) -> tuple[list[str], dict[str, list[str]]]:
    """The private keys (gateways) and preshared keys (gateway → interfaces) that wave
    ``wave`` replaced, from the journal's ``rotated`` events of its latest attempt."""
    keys: list[str] = []
    psks: dict[str, list[str]] = {}
    for event in events:
        if event.get("event") == "wave-start" and event.get("wave") == wave:
            keys, psks = [], {}  # a resumed wave starts over
        if event.get("event") == "rotated" and event.get("wave") == wave:
            keys = list(event.get("keys", keys))
            psks = {str(k): list(v) for k, v in event.get("psk", psks).items()}
    return keys, psks
