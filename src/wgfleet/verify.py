"""Run a verification: collect from every selected gateway, judge against the plan.

A gateway that cannot be reached (or fails to answer) becomes an unreachable Observation:
it is never dropped from the run, and its peers' view still counts. Every run uses a new
Nornir object and ``on_failed=True``, so hosts that failed before are not skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from wgfleet.checks import evaluate
from wgfleet.errors import ExitStatus
from wgfleet.findings import VerifyRun
from wgfleet.fleet import Loaded, nornir_for, select
from wgfleet.observation import Observation
from wgfleet.outcomes import failure_message
from wgfleet.tasks import collect_observation


def verify_fleet(
    loaded: Loaded, *, limit: Sequence[str] | None = None, workers: int = 20
) -> VerifyRun:
    """Collect observations from the selected gateways and evaluate them."""
    started = time.time()
    nr = nornir_for(loaded, workers)
    try:
        selected = select(nr, limit)
        result = selected.run(
            task=collect_observation, plan=loaded.plan, on_failed=True, name="collect"
        )
    finally:
        nr.close_connections(on_good=True, on_failed=True)
    observations: dict[str, Observation] = {}
    for gateway in loaded.plan.gateways:
        multi = result.get(gateway.name)
        if multi is None:
            continue
        if multi.failed or not isinstance(multi[0].result, Observation):
            observations[gateway.name] = Observation(
                gateway=gateway.name, reachable=False, error=failure_message(multi)
            )
        else:
            observations[gateway.name] = multi[0].result
    verdict = evaluate(loaded.plan, observations)
    return VerifyRun(
        plan=loaded.plan,
        observations=observations,
        verdict=verdict,
        started=started,
        finished=time.time(),
        inventory=str(loaded.inventory),
    )


def exit_status(run: VerifyRun) -> ExitStatus:
    """Critical (2) beats unreachable (3) beats warning (1); healthy is 0."""
    severity = run.verdict.severity
    if severity == "critical":
        return ExitStatus.FINDINGS_CRITICAL
    if run.verdict.unreachable:
        return ExitStatus.UNREACHABLE
    if severity == "warning":
        return ExitStatus.FINDINGS_WARNING
    return ExitStatus.OK
