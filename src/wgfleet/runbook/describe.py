"""What each step of a runbook would do, in words, for ``--check`` (pure).

A reviewer reads these lines before the change window: which gateways each step touches,
which keys it would replace, how long a gate may wait. The per-gateway diffs and commands
come from the apply dry run that follows them.
"""

from __future__ import annotations

from collections.abc import Sequence

from wgfleet.plan import FleetPlan
from wgfleet.psk import psk_pairs
from wgfleet.runbook import (
    ApplyArgs,
    GateArgs,
    PauseArgs,
    RotateKeysArgs,
    Runbook,
    Step,
    VerifyArgs,
)


def describe(runbook: Runbook, step: Step, gateways: Sequence[str], plan: FleetPlan) -> str:
    """One line: what ``step`` would do to ``gateways`` (empty for a before/after step)."""
    args = step.args
    names = ", ".join(gateways)
    timeout = runbook.timeout_for(step)
    if isinstance(args, VerifyArgs):
        wait = f", retrying for up to {args.wait:g} s" if args.wait else ""
        return f"verify the fleet, requiring {args.require}{wait}"
    if isinstance(args, PauseArgs):
        return "ask a person to confirm (skipped with --yes)"
    if isinstance(args, ApplyArgs):
        return f"apply {', '.join(args.parts)} to {names}"
    if isinstance(args, GateArgs):
        conditions = [
            text
            for text, wanted in (
                ("BGP sessions Established", args.sessions),
                ("ECMP width restored", args.ecmp),
                ("handshakes fresh", args.handshakes),
            )
            if wanted
        ]
        limit = f"up to {timeout:g} s" if timeout else "without a time limit"
        return f"wait {limit} until {' and '.join(conditions)} for {names} and their peers"
    if isinstance(args, RotateKeysArgs):
        peers = sorted({t.peer for g in gateways for t in plan.gateway(g).tunnels} - set(gateways))
        text = f"generate a new private key on {names}"
        pairs = psk_pairs(plan, gateways) if args.preshared else []
        if pairs:
            text += f" and a new preshared key for each of their {len(pairs)} tunnels (both ends)"
        elif args.preshared:
            text += " (no tunnel has a preshared key: fleet.preshared_keys is off)"
        return text + f", then update them and their peers {', '.join(peers)} together"
    return f"remove wgfleet's BIRD instance, tunnels and files from {names}"
