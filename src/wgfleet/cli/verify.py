"""`wgfleet verify`: is the VPN healthy, and if not, exactly what is wrong and where."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from wgfleet.cli.options import add_inventory, add_limit, add_workers

EXIT_CODES = (
    "Exit status: 0 healthy, 1 warnings (redundancy degraded), 2 critical (a site pair has "
    "lost every path), 3 a gateway unreachable (and nothing critical), 64 bad input."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify`` command."""
    parser = subparsers.add_parser(
        "verify",
        help="collect wg, BGP, route and ping evidence and check it against the plan",
        description=(
            "Collect WireGuard, UDP socket, BIRD, route and ping evidence from every selected "
            "gateway (read-only, one SSH round trip each), check it against the plan, print "
            "a site x site matrix and the findings, and store the reports (JSON, Markdown, "
            "HTML, JUnit XML, Prometheus metrics, diff against the previous run) in a new "
            "run directory under --reports. " + EXIT_CODES
        ),
    )
    add_inventory(parser)
    add_limit(parser)
    add_workers(parser)
    parser.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where run directories go, with DIR/latest pointing at the newest "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--keep", type=int, default=100, metavar="N", help="keep the N newest runs (default: 100)"
    )
    parser.add_argument("--no-store", action="store_true", help="write no report files")
    parser.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="also write the Prometheus metrics here, atomically "
        "(node_exporter textfile collector, e.g. .../wgfleet.prom)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="what to print (default: text, the matrix and the findings)",
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="for cron: print nothing when healthy, only the problems otherwise",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="repeat the checks until the fleet is healthy or SECONDS have passed "
        "(after a change, BGP needs a few seconds); only the last run is stored",
    )
    parser.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    """Verify, print, store; return the exit status."""
    from wgfleet.fleet import load
    from wgfleet.report.json_report import dumps
    from wgfleet.report.markdown import render_markdown
    from wgfleet.report.store import write_run
    from wgfleet.report.terminal import render_quiet, render_terminal
    from wgfleet.verify import exit_status, verify_fleet

    if args.keep < 1:
        from wgfleet.errors import BadInputError, Problem

        raise BadInputError([Problem("command line", "verify", "--keep", "must be at least 1")])
    loaded = load(args.inventory, save_allocations_file=False)
    deadline = time.monotonic() + args.wait
    while True:
        run = verify_fleet(loaded, limit=args.limit, workers=args.workers)
        if exit_status(run) == 0 or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    if args.quiet:
        text = render_quiet(run)
        if text:
            print(text, end="" if text.endswith("\n") else "\n")
    elif args.format == "json":
        print(dumps(run), end="")
    elif args.format == "markdown":
        print(render_markdown(run), end="")
    else:
        print(render_terminal(run, color=sys.stdout.isatty()), end="")
    if not args.no_store:
        run_dir = write_run(run, args.reports, keep=args.keep, textfile=args.metrics_file)
        if not args.quiet and args.format == "text":
            print(f"reports: {run_dir} (HTML: {run_dir / 'report.html'})")
    return int(exit_status(run))
