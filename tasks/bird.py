"""Nornir tasks for wgfleet's BIRD instance: check, start, reconfigure, try, confirm, undo."""

from __future__ import annotations

import time

from nornir.core.task import Result, Task

from wgfleet import commands as cmd
from wgfleet.converge import FileChange, Step, bird_action
from wgfleet.facts import GatewayFacts
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan
from wgfleet.render import RenderedGateway
from wgfleet.tasks._common import ApplyError, conn, paths_of, report, run

BIRD_START_TIMEOUT = 10.0


def converge_bird(
    task: Task,
    plan: FleetPlan,
    facts: GatewayFacts,
    rendered: RenderedGateway,
    dry_run: bool | None = None,
    confirm_timeout: int | None = None,
) -> Result:
    """Push the BIRD config, check it with ``bird -p`` on the gateway, start or reconfigure.

    A config that fails the check never reaches the daemon: it stays a candidate file that
    is removed, and the running BIRD keeps its config. A config the daemon refuses is
    rolled back to the previous file.

    With ``confirm_timeout`` (runbooks), a running BIRD is only *tried* on the candidate
    (``configure "candidate" timeout N``): the live file stays as it is, BIRD reverts by
    itself unless :func:`confirm_bird` runs in time, and :func:`undo_bird` reverts at once.
    """
    paths = paths_of(plan)
    action, change = bird_action(rendered.bird, facts)
    if confirm_timeout is not None and action == "reconfigure" and change is not None:
        return _try_bird(task, paths, change, confirm_timeout, task.is_dry_run(dry_run))
    live, candidate, previous = (
        cmd.q(paths.bird_config), cmd.q(paths.bird_candidate), cmd.q(paths.bird_previous)
    )  # fmt: skip
    promote = Step(
        "check the candidate BIRD config, keep the live one as previous, make it live",
        (
            cmd.bird_check(paths.bird_candidate),
            f"if [ -f {live} ]; then cp -p {live} {previous}; fi",
            f"mv -f {candidate} {live}",
        ),
    )
    steps = [promote] if change else []
    if action == "start":
        steps.append(Step(f"start BIRD in {paths.namespace}", (cmd.bird_start(paths),)))
    elif action == "reconfigure":
        steps.append(Step("reconfigure BIRD", (cmd.birdc(paths, "configure"),)))
    dry = task.is_dry_run(dry_run)
    shown = report([change] if change else [], steps, dry)
    if dry or not steps:
        return Result(host=task.host, changed=bool(steps), diff=shown, result=action)
    if change is not None:
        problem = _check_candidate(task, paths, change)
        if problem:
            return Result(host=task.host, failed=True, diff=shown, result=problem)
        for command in promote.commands[1:]:
            run(task, command, what=promote.description)
    if action == "start":
        run(task, cmd.bird_start(paths), what="starting BIRD")
        _wait_bird(task, paths)
    elif action == "reconfigure":
        out = run(task, cmd.birdc(paths, "configure"), what="reconfiguring BIRD")
        if "Reconfigur" not in out:
            run(task, f"mv -f {previous} {live}", what="restoring the previous BIRD config")
            raise ApplyError(
                f"{task.host.name}: BIRD refused the new config and keeps the previous one: "
                f"{out.strip()}"
            )
    return Result(host=task.host, changed=True, diff=shown, result=action)


def _check_candidate(task: Task, paths: GatewayPaths, change: FileChange) -> str | None:
    """Upload the candidate and check it with ``bird -p``; the error text if it fails."""
    connection = conn(task)
    connection.write_file(
        paths.bird_candidate, change.content, mode=change.mode, keep_previous=False
    )
    check = connection.run(cmd.bird_check(paths.bird_candidate), check=False)
    if check.exit_status == 0:
        return None
    connection.run(f"rm -f {cmd.q(paths.bird_candidate)}", check=False)
    return (
        f"{task.host.name}: the rendered BIRD config does not pass `bird -p`; the running "
        "BIRD keeps its config. Fix the template or the inventory:\n"
        f"{(check.stderr or check.stdout).strip()}"
    )


def _try_bird(
    task: Task, paths: GatewayPaths, change: FileChange, timeout: int, dry: bool
) -> Result:
    # birdc wants the file name in double quotes: quote them for the shell too.
    quoted = cmd.q(f'"{paths.bird_candidate}"')
    configure = cmd.birdc(paths, f"configure {quoted} timeout {int(timeout)}")
    step = Step(
        f"try the candidate BIRD config; BIRD reverts by itself unless confirmed in {timeout} s",
        (cmd.bird_check(paths.bird_candidate), configure),
    )
    shown = report([change], [step], dry)
    if dry:
        return Result(host=task.host, changed=True, diff=shown, result="try")
    status = run(task, cmd.birdc(paths, "configure status"), what="reading BIRD's status")
    if "unconfirmed" in status:
        # FACTS: a second timed configure would make the first one permanent silently.
        return Result(
            host=task.host,
            failed=True,
            result=f"{task.host.name}: BIRD has an unconfirmed configuration already "
            "(another change in progress?); confirm or undo it first",
        )
    problem = _check_candidate(task, paths, change)
    if problem:
        return Result(host=task.host, failed=True, diff=shown, result=problem)
    out = run(task, configure, what="trying the candidate BIRD config")
    if "Reconfigur" not in out:
        conn(task).run(f"rm -f {cmd.q(paths.bird_candidate)}", check=False)
        raise ApplyError(f"{task.host.name}: BIRD refused the candidate config: {out.strip()}")
    return Result(host=task.host, changed=True, diff=shown, result="try")


def confirm_bird(task: Task, plan: FleetPlan) -> Result:
    """Confirm a tried BIRD config and make the candidate the live file (previous kept)."""
    paths = paths_of(plan)
    status = run(task, cmd.birdc(paths, "configure status"), what="reading BIRD's status")
    if "unconfirmed" not in status:
        return Result(host=task.host, changed=False, result="nothing to confirm")
    live, candidate, previous = (
        cmd.q(paths.bird_config), cmd.q(paths.bird_candidate), cmd.q(paths.bird_previous)
    )  # fmt: skip
    # Promote first: if the control machine dies now, BIRD reverts in memory but a
    # restart reads the live file; confirming last keeps the two consistent on success.
    run(
        task,
        f"cp -p {live} {previous} && mv -f {candidate} {live}",
        what="making the candidate BIRD config live",
    )
    run(task, cmd.birdc(paths, "configure confirm"), what="confirming the BIRD config")
    return Result(host=task.host, changed=True, result="confirmed")


def undo_bird(task: Task, plan: FleetPlan) -> Result:
    """Revert BIRD to its previous config at once (a tried config not yet confirmed)."""
    paths = paths_of(plan)
    status = run(task, cmd.birdc(paths, "configure status"), what="reading BIRD's status")
    conn(task).run(f"rm -f {cmd.q(paths.bird_candidate)}", check=False)
    if "unconfirmed" not in status:
        return Result(host=task.host, changed=False, result="nothing to undo")
    run(task, cmd.birdc(paths, "configure undo"), what="undoing the BIRD config")
    return Result(host=task.host, changed=True, result="undone")


def _wait_bird(task: Task, paths: GatewayPaths) -> None:
    deadline = time.monotonic() + BIRD_START_TIMEOUT
    while True:
        out = conn(task).run(cmd.birdc(paths, "show status", readonly=True), check=False)
        if out.exit_status == 0 and "Daemon is up and running" in out.stdout:
            return
        if time.monotonic() > deadline:
            raise ApplyError(
                f"{task.host.name}: BIRD did not come up within {BIRD_START_TIMEOUT:.0f} s; "
                f"see {paths.bird_log} on the gateway"
            )
        time.sleep(0.1)
