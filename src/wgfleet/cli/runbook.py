"""`wgfleet runbook run | validate | unlock | show`: change-window procedures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wgfleet.cli.options import add_inventory, add_limit, add_workers
from wgfleet.errors import ExitStatus


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``runbook`` command group."""
    parser = subparsers.add_parser(
        "runbook",
        help="run a change-window runbook in waves, with gates, rollback and a change record",
        description=(
            "Runbooks (runbooks/*.yaml, format in docs/runbooks.md) run a change in waves that "
            "never take both gateways of a site at once, gate each wave on BGP and ECMP, "
            "roll a failed wave back and leave a change record in changes/."
        ),
    )
    commands = parser.add_subparsers(dest="runbook_command", metavar="ACTION", required=True)

    run = commands.add_parser(
        "run",
        help="run a runbook (or show its waves, diffs and commands with --check)",
        description="Validate the runbook and the inventory, lock the targeted gateways, run "
        "the steps, and write changes/<time>-<name>/journal.jsonl and summary.md. Exit "
        "status: 0 success, 4 failed or rolled back, 64 bad input.",
    )
    run.add_argument("file", type=Path, help="the runbook, e.g. runbooks/rollout.yaml")
    add_inventory(run)
    add_limit(run)
    add_workers(run)
    run.add_argument("--check", action="store_true", help="show waves and diffs; change nothing")
    run.add_argument("--yes", action="store_true", help="answer yes to every pause")
    run.add_argument("--change", metavar="REF", help="change reference for the record")
    run.add_argument(
        "--templates", type=Path, metavar="DIR", help="templates overriding the shipped ones"
    )
    run.add_argument(
        "--records",
        type=Path,
        default=Path("changes"),
        metavar="DIR",
        help="where change records go (default: %(default)s)",
    )
    run.set_defaults(handler=_run)

    for action, text in (
        ("resume", "go on with an interrupted run from the wave it stopped in"),
        ("rollback", "roll back the wave an interrupted run stopped in, and end the run"),
    ):
        sub = commands.add_parser(
            action,
            help=text,
            description=f"{text[0].upper()}{text[1:]}, from its change record; the same "
            "locks and run id are used.",
        )
        sub.add_argument("record", type=Path, help="the change record directory of the run")
        add_inventory(sub)
        add_workers(sub)
        sub.add_argument("--yes", action="store_true", help="answer yes to every pause")
        sub.set_defaults(handler=_continue, action=action)

    validate = commands.add_parser(
        "validate",
        help="validate runbooks without touching anything",
        description="Read and validate runbooks; print every problem with file, step, field.",
    )
    validate.add_argument("files", type=Path, nargs="+", help="runbook files")
    validate.set_defaults(handler=_validate)

    unlock = commands.add_parser(
        "unlock",
        help="clear a stale lock a dead run left on gateways",
        description="Show and remove the runbook lock of gateways whose run is gone.",
    )
    unlock.add_argument("hosts", nargs="+", metavar="HOST", help="gateways (or groups)")
    add_inventory(unlock)
    unlock.set_defaults(handler=_unlock)

    show = commands.add_parser(
        "show",
        help="print the summary of a change record",
        description="Render the Markdown summary of a run from its journal.",
    )
    show.add_argument("record", type=Path, help="a change record directory")
    show.set_defaults(handler=_show)


def _run(args: argparse.Namespace) -> int:
    from wgfleet.fleet import load
    from wgfleet.runbook.engine import Engine, Options
    from wgfleet.runbook.schema import load_runbook

    runbook = load_runbook(args.file)
    loaded = load(args.inventory, save_allocations_file=not args.check)
    options = Options(
        check=args.check,
        yes=args.yes,
        limit=args.limit,
        change=args.change,
        records=args.records,
        workers=args.workers,
        templates=args.templates,
    )
    outcome = Engine(runbook, loaded, options).run()
    if outcome.record is not None:
        print(f"{runbook.name}: {outcome.result}. Change record: {outcome.record}")
    if outcome.message:
        print(outcome.message, file=sys.stderr)
    return int(outcome.exit_status)


def _continue(args: argparse.Namespace) -> int:
    from wgfleet.fleet import load
    from wgfleet.runbook.engine import Engine, Options
    from wgfleet.runbook.record import read_journal
    from wgfleet.runbook.schema import load_runbook

    events = read_journal(args.record / "journal.jsonl")
    start = next((e for e in events if e.get("event") == "run-start"), {})
    runbook = load_runbook(Path(str(start.get("file", ""))))
    loaded = load(args.inventory, save_allocations_file=False)
    options = Options(yes=args.yes, records=args.record.parent, workers=args.workers)
    engine = Engine(runbook, loaded, options)
    outcome = (
        engine.resume(args.record) if args.action == "resume" else engine.rollback(args.record)
    )
    print(f"{runbook.name}: {outcome.result}. Change record: {outcome.record}")
    if outcome.message:
        print(outcome.message, file=sys.stderr)
    return int(outcome.exit_status)


def _validate(args: argparse.Namespace) -> int:
    from wgfleet.runbook.schema import load_runbook

    for path in args.files:
        runbook = load_runbook(path)
        print(f"{path}: ok ({runbook.name}: {len(runbook.steps)} steps, {runbook.strategy})")
    return int(ExitStatus.OK)


def _unlock(args: argparse.Namespace) -> int:
    from wgfleet.fleet import load, nornir_for, select
    from wgfleet.tasks.runbook import release_lock

    loaded = load(args.inventory, save_allocations_file=False)
    nr = select(nornir_for(loaded, 20), args.hosts)
    try:
        result = nr.run(task=release_lock, run_id=None, on_failed=True)
    finally:
        nr.close_connections(on_good=True, on_failed=True)
    status = ExitStatus.OK
    for name, multi in sorted(result.items()):
        if multi.failed:
            print(f"{name}: could not unlock: {multi[0].exception or multi[0].result}")
            status = ExitStatus.FAILED
        elif multi[0].changed:
            holder = multi[0].result
            print(f"{name}: removed the lock of {holder.get('owner')} ({holder.get('runbook')}, "
                  f"run {holder.get('run_id')}, since {holder.get('started')})")  # fmt: skip
        else:
            print(f"{name}: not locked")
    return int(status)


def _show(args: argparse.Namespace) -> int:
    from wgfleet.runbook.record import read_journal
    from wgfleet.runbook.summary import render_summary

    print(render_summary(read_journal(args.record / "journal.jsonl")), end="")
    return int(ExitStatus.OK)
