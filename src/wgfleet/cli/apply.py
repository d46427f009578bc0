"""`wgfleet apply`: converge the selected gateways to the plan (``--check`` changes nothing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wgfleet.cli.options import add_inventory, add_limit, add_workers


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``apply`` command."""
    parser = subparsers.add_parser(
        "apply",
        help="converge gateways to the plan over SSH (keys, namespace, tunnels, BIRD)",
        description=(
            "Converge every selected gateway to the plan: generate its WireGuard key on the "
            "gateway if missing, create the private namespace, create or update tunnels in "
            "place, push and check the BIRD config, start or reconfigure BIRD. A second run "
            "changes nothing. New allocations are recorded in the inventory's "
            "allocations.yaml (commit it). Exit status: 0 success, 3 a gateway unreachable, "
            "4 a gateway failed, 64 bad input."
        ),
    )
    add_inventory(parser)
    add_limit(parser)
    add_workers(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="dry run: show per-gateway diffs and the commands that would run; change nothing",
    )
    parser.add_argument(
        "--diff", action="store_true", help="also show the diffs and commands of a real run"
    )
    parser.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="templates overriding the shipped ones (same names as wgfleet's templates/)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress lines; print only problems"
    )
    parser.set_defaults(handler=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    """Run apply and print diffs (check/diff) and the summary."""
    from wgfleet.fleet import apply_fleet, format_summary, load

    loaded = load(args.inventory, save_allocations_file=not args.check)
    report = apply_fleet(
        loaded,
        limit=args.limit,
        check=args.check,
        workers=args.workers,
        templates_dir=args.templates,
        progress=None if args.quiet else sys.stderr,
    )
    if args.check or args.diff:
        for outcome in report.outcomes:
            if outcome.diff:
                print(f"=== {outcome.host} ===\n{outcome.diff}")
    for outcome in report.outcomes:
        if outcome.status in ("failed", "unreachable"):
            print(f"{outcome.host}: {outcome.status}: {outcome.message}", file=sys.stderr)
    if not args.quiet or report.exit_status:
        print(format_summary(report))
    if loaded.allocations_pending:
        print("wgfleet: new allocations are pending (check mode does not record them)")
    return int(report.exit_status)
