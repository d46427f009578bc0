"""Set up preshared keys across the fleet before each gateway converges (see wgfleet.psk).

Runs between collecting public keys and applying: reads key fingerprints on the targets
and their peers, makes a new key for each pair that needs one, writes it to both ends, and
tells apply which tunnels to leave as they are. The keys live only in this function's
memory for the length of one Nornir run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgfleet.observation import PskState
from wgfleet.outcomes import failure_message
from wgfleet.plan import FleetPlan
from wgfleet.psk import PskPair, decide
from wgfleet.tasks.psk import install_psks, new_psk, read_psks


@dataclass
class PskRun:
    """What the preshared-key phase did.

    Attributes:
        held: Per gateway, interfaces to leave as they are, and why.
        diffs: Per gateway, what was (or would be) written (file names, never keys).
        failed: Per gateway, why writing its keys failed.
    """

    held: dict[str, dict[str, str]] = field(default_factory=dict)
    diffs: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def uses_psk(plan: FleetPlan) -> bool:
    """Whether any tunnel of the plan has a preshared key."""
    return any(t.preshared_key for g in plan.gateways for t in g.tunnels)


def read_fingerprints(nr: Any, plan: FleetPlan, names: set[str]) -> dict[str, dict[str, PskState]]:
    """Fingerprints per gateway; gateways that could not be read are left out."""
    result = nr.filter(filter_func=lambda h: h.name in names).run(
        task=read_psks, plan=plan, on_failed=True, name="read_psks"
    )
    return {name: multi[0].result for name, multi in result.items() if not multi.failed}


def write_pairs(
    nr: Any, plan: FleetPlan, pairs: Sequence[PskPair], *, check: bool, keep_previous: bool = False
) -> tuple[dict[str, str], dict[str, str]]:
    """A new key per pair, written to both ends; returns (diffs, failures) per gateway.
    ``keep_previous`` keeps the replaced keys as ``.prev`` (for a rotation's rollback)."""
    keys: dict[str, dict[str, str]] = {}
    for pair in pairs:
        secret = new_psk()
        for end in pair.ends:
            keys.setdefault(end.gateway, {})[end.interface] = secret
    if not keys:
        return {}, {}
    try:
        result = nr.filter(filter_func=lambda h: h.name in keys).run(
            task=install_psks, plan=plan, keys=keys, dry_run=check, on_failed=True,
            name="install_psks", keep_previous=keep_previous,
        )  # fmt: skip
    finally:
        keys.clear()
    diffs = {name: multi[0].diff for name, multi in result.items() if not multi.failed}
    failed = {name: failure_message(multi) for name, multi in result.items() if multi.failed}
    return diffs, failed


def converge_psks(
    nr: Any,
    plan: FleetPlan,
    targets: Sequence[str],
    *,
    check: bool,
    writable: Collection[str] = (),
) -> PskRun:
    """Read, decide, write: see the module docstring. ``writable`` names peers outside
    ``targets`` whose key files may be written too (later waves of the same run)."""
    names = set(targets) | {t.peer for name in targets for t in plan.gateway(name).tunnels}
    decision = decide(plan, set(targets), read_fingerprints(nr, plan, names), set(writable))
    diffs, failed = write_pairs(nr, plan, decision.provision, check=check)
    held = {name: dict(interfaces) for name, interfaces in decision.held.items()}
    for pair in decision.provision:
        broken = [end.gateway for end in pair.ends if end.gateway in failed]
        for end in pair.ends:
            if broken and end.gateway not in failed:
                held.setdefault(end.gateway, {})[end.interface] = (
                    f"writing the new preshared key on {broken[0]} failed"
                )
    return PskRun(held, diffs, failed)
