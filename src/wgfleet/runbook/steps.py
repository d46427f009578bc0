"""The steps of a runbook and the engine's shared means: Nornir runs, journal, output.

:class:`WaveSteps` carries what a run knows (runbook, plan, options, failures, snapshots,
keys replaced) and runs one step at a time: verify, pause, apply, gate, rotate-keys,
decommission; it also sets a wave's fallback routes and rolls a wave back.
:class:`wgfleet.runbook.engine.Engine` builds on it with the run's life: locks, waves,
resume, rollback of an interrupted run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nornir.core.task import Result, Task

from wgfleet.fallback import FallbackRoute, wave_fallbacks
from wgfleet.findings import Finding
from wgfleet.fleet import Loaded, apply_fleet, nornir_for
from wgfleet.fleet_psk import write_pairs
from wgfleet.outcomes import failure_message
from wgfleet.plan import FleetPlan
from wgfleet.psk import by_gateway, psk_pairs
from wgfleet.runbook import (
    ApplyArgs,
    GateArgs,
    PauseArgs,
    RotateKeysArgs,
    Runbook,
    Step,
    VerifyArgs,
)
from wgfleet.runbook.gates import gate_pending, satisfies
from wgfleet.runbook.record import Journal
from wgfleet.runbook.waves import Wave
from wgfleet.tasks.psk import restore_psks
from wgfleet.tasks.runbook import (
    Snapshot,
    decommission_gateway,
    restore_key,
    rollback_gateway,
    rotate_key,
    set_fallback,
    snapshot_gateway,
)
from wgfleet.verify import verify_fleet

GATE_POLL = 1.0


@dataclass
class Options:
    """How to run: dry run, confirmations, narrowing, where the record goes."""

    check: bool = False
    yes: bool = False
    limit: Sequence[str] | None = None
    change: str | None = None
    records: Path = Path("changes")
    workers: int = 20
    templates: Path | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    ask: Callable[[str], str] = input


class WaveSteps:
    """What a run knows, and how it runs one step (see the module docstring)."""

    runbook: Runbook
    run_id: str
    loaded: Loaded
    options: Options
    journal: Journal | None
    failed: set[str]
    targets: set[str]
    done: set[str]
    snapshots: dict[str, Snapshot]
    remaining: float
    rotated: list[str]
    rotated_psks: dict[str, list[str]]

    def _fallback_on(self, wave: Wave) -> dict[str, tuple[FallbackRoute, ...]]:
        """Give the wave's gateways fallback routes via their site partners, for waves that
        apply or rotate keys (see wgfleet.fallback). Returns what was installed; a
        failure is reported, never fatal: the routes only spare traffic."""
        if not any(step.kind in ("apply", "rotate-keys") for step in self.runbook.wave):
            return {}
        planned = wave_fallbacks(self.loaded.plan, wave.gateways, self.failed)
        done = self._set_fallback(wave, {n: routes for n, (_, routes) in planned.items()}, True)
        pairs = ", ".join(f"{name} via {planned[name][0]}" for name in sorted(done))
        self._say(f"  fallback routes: {pairs or 'none'}")
        return done

    def _fallback_off(
        self, wave: Wave, installed: dict[str, tuple[FallbackRoute, ...]] | None = None
    ) -> None:
        """Remove the wave's fallback routes (``None``: whatever the plan gives the wave,
        for a run picked up from its journal; removing an absent route is harmless)."""
        if installed is None:
            planned = wave_fallbacks(self.loaded.plan, wave.gateways)
            installed = {name: routes for name, (_, routes) in planned.items()}
        self._set_fallback(wave, installed, False)

    def _set_fallback(
        self, wave: Wave, routes: dict[str, tuple[FallbackRoute, ...]], present: bool
    ) -> dict[str, tuple[FallbackRoute, ...]]:
        if not routes:
            return {}
        result = self._nornir(list(routes)).run(
            task=set_fallback, plan=self.loaded.plan, routes=routes, present=present
        )
        failed = sorted(name for name, multi in result.items() if multi.failed)
        done = {name: found for name, found in routes.items() if name not in failed}
        self._event("fallback", wave=wave.number, status="installed" if present else "removed",
                    gateways=sorted(done), failed=failed)  # fmt: skip
        if failed:
            self._say(f"  fallback routes {'not installed' if present else 'left'} on "
                      f"{', '.join(failed)}: {failure_message(result[failed[0]])}")  # fmt: skip
        return done

    def _step(self, step: Step, wave: Wave | None, waves: list[Wave]) -> bool:
        started = time.monotonic()
        args = step.args
        if isinstance(args, VerifyArgs):
            ok = self._verify(step, args, wave)
        elif isinstance(args, PauseArgs):
            ok = self._pause(step, args, wave, waves)
        elif isinstance(args, GateArgs):
            assert wave is not None
            ok = self._gate(step, args, wave)
        elif isinstance(args, ApplyArgs):
            assert wave is not None
            ok = self._apply(step, wave, tuple(args.parts))
        elif isinstance(args, RotateKeysArgs):
            assert wave is not None
            ok = self._rotate(step, args, wave)
        else:
            assert wave is not None
            ok = self._decommission(step, wave)
        self._event("step", phase=step.phase, step=step.title, name=step.name,
                    status="ok" if ok else "failed", wave=wave.number if wave else None,
                    seconds=round(time.monotonic() - started, 2))  # fmt: skip
        return ok

    def _verify(self, step: Step, args: VerifyArgs, wave: Wave | None) -> bool:
        deadline = time.monotonic() + args.wait
        while True:
            run = verify_fleet(self.loaded, workers=self.options.workers)
            ok = satisfies(run, args.require)
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(GATE_POLL)
        problems = [finding_record(f) for f in run.verdict.problems()]
        self._event("verify", phase=step.phase, step=step.title, require=args.require,
                    status="passed" if ok else "failed", findings=problems,
                    wave=wave.number if wave else None)  # fmt: skip
        self._say(f"{step.title}: {'passed' if ok else 'FAILED'} ({len(problems)} findings)")
        return ok

    def _pause(self, step: Step, args: PauseArgs, wave: Wave | None, waves: list[Wave]) -> bool:
        message = args.render(
            waves=len(waves),
            gateways=sum(len(w.gateways) for w in waves),
            wave=wave.number if wave else None,
            hosts=wave.gateways if wave else (),
        )
        if self.options.yes:
            answer = "--yes"
        elif self.options.ask is input and not sys.stdin.isatty():
            answer = "refused"
            self._say(f"{message}\nno terminal to ask and no --yes: stopping")
        else:
            reply = self.options.ask(f"{message} [type yes] ")
            answer = "yes" if reply.strip().lower() == "yes" else "refused"
        self._event("pause", phase=step.phase, step=step.title, message=message, answer=answer)
        return answer != "refused"

    def _apply(self, step: Step, wave: Wave, parts: tuple[str, ...]) -> bool:
        # Gateways of later waves get their key files now (nothing live), so that this
        # wave builds its tunnels towards them; a failed gateway's site partner does not.
        later = self._touchable(sorted(self.targets - self.done - self.failed))
        report = apply_fleet(
            self.loaded, limit=list(wave.gateways), workers=self.options.workers,
            progress=None, parts=parts, bird_confirm_timeout=int(self.remaining + 60),
            templates_dir=self.options.templates, prepare=later, run_id=self.run_id,
        )  # fmt: skip
        for outcome in report.outcomes:
            self._event("host", wave=wave.number, step=step.title, gateway=outcome.host,
                        status=outcome.status, seconds=round(outcome.seconds, 2),
                        message=outcome.message, diff=outcome.diff)  # fmt: skip
            first = outcome.message.splitlines()[0] if outcome.message else ""
            self._say(f"  {outcome.host}: {outcome.status} {first}")
        failed = [o.host for o in report.outcomes if o.status in ("failed", "unreachable")]
        return self._tolerate(failed, wave)

    def _tolerate(self, failed: list[str], wave: Wave) -> bool:
        """Count new failures; within ``max_failures`` roll back (or leave) just those
        gateways and go on, beyond it fail the wave."""
        if not failed:
            return True
        self.failed |= set(failed)
        if len(self.failed) > self.runbook.max_failures:
            return False
        if self.runbook.on_failure == "rollback":
            self._rollback_gateways(wave, [g for g in failed if g in self.snapshots])
        self._event("tolerated", wave=wave.number, gateways=sorted(failed),
                    failures=len(self.failed), max_failures=self.runbook.max_failures)  # fmt: skip
        count = f"{len(self.failed)} of at most {self.runbook.max_failures} failures"
        self._say(f"  tolerated: {', '.join(sorted(failed))} ({count})")
        return True

    def _gate(self, step: Step, args: GateArgs, wave: Wave) -> bool:
        affected = sorted((set(wave.gateways) | self._peers(wave.gateways)) - self.failed)
        timeout = self.runbook.timeout_for(step) or 0.0
        started = time.monotonic()
        while True:
            run = verify_fleet(self.loaded, limit=affected, workers=self.options.workers)
            everyone = {g.name for g in self.loaded.plan.gateways}
            done = (self.done | (everyone - self.targets)) - self.failed
            pending = gate_pending(self.loaded.plan, run, args, set(affected), done)
            if not pending or time.monotonic() - started >= timeout:
                break
            time.sleep(GATE_POLL)
        seconds = round(time.monotonic() - started, 2)
        message = "; ".join(pending[:5])
        self._event("gate", wave=wave.number, step=step.title, name=step.name,
                    status="failed" if pending else "passed", seconds=seconds,
                    message=message)  # fmt: skip
        verdict = f"FAILED: {message}" if pending else "passed"
        self._say(f"  gate {step.name}: {verdict} ({seconds} s)")
        return not pending

    def _rotate(self, step: Step, args: RotateKeysArgs, wave: Wave) -> bool:
        result = self._nornir(wave.gateways).run(task=rotate_key, plan=self.loaded.plan)
        if not self._tolerate(self._record_hosts(step, wave, result, lambda _: "new key"), wave):
            return False
        wave = Wave(wave.number, tuple(g for g in wave.gateways if g not in self.failed))
        self.rotated = list(wave.gateways)
        self._event("rotated", wave=wave.number, keys=self.rotated)
        if args.preshared and not self._rotate_psks(step, wave):
            return False
        together = sorted(set(wave.gateways) | self._peers(wave.gateways))
        return self._apply(step, Wave(wave.number, tuple(together)), ("namespace", "tunnels"))

    def _rotate_psks(self, step: Step, wave: Wave) -> bool:
        """A new preshared key for every tunnel of the wave's gateways, at both ends; the
        apply that follows feeds them to the interfaces with the new private keys."""
        pairs = [
            pair
            for pair in psk_pairs(self.loaded.plan, wave.gateways)
            if not any(end.gateway in self.failed for end in pair.ends)
        ]
        if not pairs:
            return True
        # Journaled first: a run interrupted while writing can still be rolled back.
        self.rotated_psks = by_gateway(pairs)
        self._event("rotated", wave=wave.number, psk=self.rotated_psks)
        nr = nornir_for(self.loaded, self.options.workers)
        try:
            diffs, failed = write_pairs(
                nr, self.loaded.plan, pairs, check=False, keep_previous=True
            )
        finally:
            nr.close_connections(on_good=True, on_failed=True)
        for name, interfaces in self.rotated_psks.items():
            message = failed.get(name) or f"new preshared keys: {', '.join(interfaces)}"
            self._event("host", wave=wave.number, step=step.title, gateway=name,
                        status="failed" if name in failed else "changed", message=message,
                        diff=diffs.get(name, ""))  # fmt: skip
        count = sum(len(v) for v in self.rotated_psks.values()) // 2
        verdict = f"FAILED on {', '.join(sorted(failed))}" if failed else "written at both ends"
        self._say(f"  preshared keys of {count} tunnels: {verdict}")
        return not failed

    def _decommission(self, step: Step, wave: Wave) -> bool:
        result = self._nornir(wave.gateways).run(task=decommission_gateway, plan=self.loaded.plan)
        failed = self._record_hosts(step, wave, result, lambda multi: "; ".join(multi[0].result))
        return self._tolerate(failed, wave)

    def _record_hosts(
        self, step: Step, wave: Wave, result: Any, done: Callable[[Any], str]
    ) -> list[str]:
        """Journal each gateway's result of a task run; return the gateways that failed."""
        for name, multi in result.items():
            message = failure_message(multi) if multi.failed else done(multi)
            status = "failed" if multi.failed else "changed"
            self._event("host", wave=wave.number, step=step.title, gateway=name,
                        status=status, message=message)  # fmt: skip
        return sorted(name for name, multi in result.items() if multi.failed)

    def _rollback_gateways(self, wave: Wave, names: list[str]) -> None:
        if not names:
            return
        result = self._nornir(names).run(
            task=rollback_one, plan=self.loaded.plan, snapshots=self.snapshots
        )
        for name in sorted(result):
            multi = result[name]
            self._event("rollback", wave=wave.number, gateway=name,
                        status="failed" if multi.failed else "ok",
                        undone=[] if multi.failed else multi[0].result,
                        message=failure_message(multi) if multi.failed else "")  # fmt: skip
            self._say(f"  rollback {name}: {'FAILED' if multi.failed else 'ok'}")

    def _snapshot(self, wave: Wave) -> dict[str, Snapshot]:
        names = sorted(set(wave.gateways) | self._peers(wave.gateways))
        result = self._nornir(names).run(task=snapshot_gateway, plan=self.loaded.plan)
        return {name: multi[0].result for name, multi in result.items() if not multi.failed}

    def _rollback(self, wave: Wave) -> None:
        self._restore_keys()
        self._rollback_gateways(wave, list(self.snapshots))

    def _restore_keys(self) -> None:
        """Put back the keys this wave replaced (files only: the rollback or the redone
        wave then feeds them to the interfaces)."""
        if self.rotated:
            self._nornir(self.rotated).run(task=restore_key, plan=self.loaded.plan)
        if self.rotated_psks:
            self._nornir(list(self.rotated_psks)).run(
                task=restore_psks, plan=self.loaded.plan, interfaces=self.rotated_psks
            )
        self.rotated, self.rotated_psks = [], {}

    def _touchable(self, names: Iterable[str]) -> list[str]:
        """``names`` without the site partners of failed gateways (never touched later)."""
        failed_sites = {self.loaded.plan.gateway(g).site.number for g in self.failed}
        return [g for g in names if self.loaded.plan.gateway(g).site.number not in failed_sites]

    def _peers(self, names: Sequence[str]) -> set[str]:
        return {t.peer for n in names for t in self.loaded.plan.gateway(n).tunnels}

    def _nornir(self, names: Sequence[str]) -> Any:
        wanted = set(names)
        nr = nornir_for(self.loaded, self.options.workers)
        return Scoped(nr.filter(filter_func=lambda h: h.name in wanted))

    def _event(self, event: str, **fields: Any) -> None:
        if self.journal is not None:
            self.journal.write(event, **fields)

    def _say(self, text: str) -> None:
        print(text, file=self.options.out, flush=True)


def rollback_one(task: Task, plan: FleetPlan, snapshots: dict[str, Snapshot]) -> Result:
    """Roll one gateway back to its own snapshot (every gateway of a wave in parallel)."""
    return rollback_gateway(task, plan, snapshots[task.host.name])


class Scoped:
    """A filtered Nornir whose connections are closed after each run, failures kept."""

    def __init__(self, nr: Any) -> None:
        self.nr = nr

    def run(self, **kwargs: Any) -> Any:
        try:
            return self.nr.run(on_failed=True, **kwargs)
        finally:
            self.nr.close_connections(on_good=True, on_failed=True)


def finding_record(f: Finding) -> dict[str, Any]:
    return {"severity": f.severity, "check": f.check, "gateway": f.gateway,
            "object": f.object, "message": f.message}  # fmt: skip
