"""Nornir tasks that converge one gateway to its plan: keys, namespace, tunnels, BIRD.

Each task tells the truth in its Result: ``changed`` only when something changed (or would
change, under dry run), a ``diff`` with file diffs and the commands run (or that would be),
and ``failed`` with a message a person can act on. Dry run goes through the same code and
only skips the writes and commands.
"""

from __future__ import annotations

import time
from typing import Any

from nornir.core.task import Result, Task

from wgfleet import commands as cmd
from wgfleet.connection import WgSsh, gateway_connection
from wgfleet.converge import (
    FileChange,
    RefusedError,
    Step,
    bird_action,
    namespace_steps,
    peer_file_changes,
    tunnel_steps,
    wg_matches,
    wireguard_impl,
)
from wgfleet.errors import WgfleetError
from wgfleet.facts import GatewayFacts, parse_gather
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan
from wgfleet.render import RenderedGateway, render_gateway

BIRD_START_TIMEOUT = 10.0


class ApplyError(WgfleetError):
    """A change failed on a gateway; the message names the gateway, step and what to do."""


def _conn(task: Task) -> WgSsh:
    return gateway_connection(task.host, task.nornir.config)


def _run(task: Task, command: str, *, what: str) -> str:
    result = _conn(task).run(command, check=False)
    if result.exit_status != 0:
        raise ApplyError(
            f"{task.host.name}: {what} failed (exit {result.exit_status}): "
            f"{(result.stderr or result.stdout).strip()[-800:]}\n  command: {command}"
        )
    return str(result.stdout)


def _paths(plan: FleetPlan) -> GatewayPaths:
    return GatewayPaths(namespace=plan.settings.namespace)


def _report(files: list[FileChange], steps: list[Step], dry_run: bool) -> str:
    parts = [change.diff() for change in files]
    if steps:
        verb = "would run" if dry_run else "ran"
        lines = [f"# {verb}:"]
        for step in steps:
            lines.append(f"# {step.description}")
            lines.extend(f"$ {command}" for command in step.commands)
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def _apply(task: Task, files: list[FileChange], steps: list[Step]) -> None:
    conn = _conn(task)
    for change in files:
        conn.write_file(change.path, change.content, mode=change.mode)
    for step in steps:
        for command in step.commands:
            _run(task, command, what=step.description)


# --- tasks ----------------------------------------------------------------------------------


def gather_facts(task: Task, plan: FleetPlan) -> Result:
    """Read everything apply needs from the gateway in one round trip (read-only)."""
    gateway = plan.gateway(task.host.name)
    script = cmd.gather_script(_paths(plan), [t.interface for t in gateway.tunnels])
    facts = parse_gather(_run(task, script, what="reading the gateway's state"))
    return Result(host=task.host, result=facts)


def ensure_keys(task: Task, plan: FleetPlan, dry_run: bool | None = None) -> Result:
    """Generate the gateway's WireGuard private key on the gateway if missing.

    Returns only the public key (``None`` under dry run when no key exists yet). The private
    key is created with umask 077 and never leaves the gateway.
    """
    paths = _paths(plan)
    if task.is_dry_run(dry_run):
        out = _run(task, cmd.read_public_key(paths), what="reading the public key").strip()
        if out:
            return Result(host=task.host, result=out, changed=False)
        return Result(
            host=task.host,
            result=None,
            changed=True,
            diff=f"# would generate a private key in {paths.private_key} (mode 0600)\n",
        )
    lines = _run(task, cmd.ensure_key(paths), what="generating the key").split()
    generated = lines[:1] == ["generated"]
    return Result(
        host=task.host,
        result=lines[-1],
        changed=generated,
        diff=f"# generated a private key in {paths.private_key} (mode 0600)\n" if generated else "",
    )


def converge_namespace(
    task: Task, plan: FleetPlan, facts: GatewayFacts, dry_run: bool | None = None
) -> Result:
    """Create the private namespace and move the site-side interfaces into it."""
    try:
        steps = namespace_steps(plan.gateway(task.host.name), facts, _paths(plan))
    except RefusedError as exc:
        return Result(host=task.host, failed=True, result=f"{task.host.name}: {exc}")
    dry = task.is_dry_run(dry_run)
    if not dry:
        _apply(task, [], steps)
    return Result(host=task.host, changed=bool(steps), diff=_report([], steps, dry))


def converge_tunnels(
    task: Task,
    plan: FleetPlan,
    facts: GatewayFacts,
    rendered: RenderedGateway,
    public_keys: dict[str, str],
    dry_run: bool | None = None,
) -> Result:
    """Converge every WireGuard interface; changed peers are updated in place."""
    gateway = plan.gateway(task.host.name)
    paths = _paths(plan)
    impl = wireguard_impl(facts, gateway.gateway.wireguard)
    files = peer_file_changes(rendered, facts)
    steps = tunnel_steps(
        gateway, facts, paths, public_keys, impl, rewritten={_iface(f.path) for f in files}
    )
    dry = task.is_dry_run(dry_run)
    if not dry:
        _apply(task, files, steps)
    changed = bool(files or steps)
    return Result(
        host=task.host,
        result=f"{len(gateway.tunnels)} tunnels ({impl})",
        changed=changed,
        diff=_report(files, steps, dry),
    )


def _iface(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".conf")


def converge_bird(
    task: Task,
    plan: FleetPlan,
    facts: GatewayFacts,
    rendered: RenderedGateway,
    dry_run: bool | None = None,
) -> Result:
    """Push the BIRD config, check it with ``bird -p`` on the gateway, start or reconfigure.

    A config that fails the check never reaches the daemon: it stays a candidate file that
    is removed, and the running BIRD keeps its config. A config the daemon refuses is
    rolled back to the previous file.
    """
    paths = _paths(plan)
    action, change = bird_action(rendered.bird, facts)
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
    report = _report([change] if change else [], steps, dry)
    if dry or not steps:
        return Result(host=task.host, changed=bool(steps), diff=report, result=action)
    conn = _conn(task)
    if change is not None:
        conn.write_file(paths.bird_candidate, change.content, mode=change.mode, keep_previous=False)
        check = conn.run(cmd.bird_check(paths.bird_candidate), check=False)
        if check.exit_status != 0:
            conn.run(f"rm -f {candidate}", check=False)
            return Result(
                host=task.host,
                failed=True,
                diff=report,
                result=(
                    f"{task.host.name}: the rendered BIRD config does not pass `bird -p`; the "
                    "running BIRD keeps its config. Fix the template or the inventory:\n"
                    f"{(check.stderr or check.stdout).strip()}"
                ),
            )
        for command in promote.commands[1:]:
            _run(task, command, what=promote.description)
    if action == "start":
        _run(task, cmd.bird_start(paths), what="starting BIRD")
        _wait_bird(task, paths)
    elif action == "reconfigure":
        out = _run(task, cmd.birdc(paths, "configure"), what="reconfiguring BIRD")
        if "Reconfigur" not in out:
            _run(task, f"mv -f {previous} {live}", what="restoring the previous BIRD config")
            raise ApplyError(
                f"{task.host.name}: BIRD refused the new config and keeps the previous one: "
                f"{out.strip()}"
            )
    return Result(host=task.host, changed=True, diff=report, result=action)


def _wait_bird(task: Task, paths: GatewayPaths) -> None:
    deadline = time.monotonic() + BIRD_START_TIMEOUT
    while True:
        out = _conn(task).run(cmd.birdc(paths, "show status", readonly=True), check=False)
        if out.exit_status == 0 and "Daemon is up and running" in out.stdout:
            return
        if time.monotonic() > deadline:
            raise ApplyError(
                f"{task.host.name}: BIRD did not come up within {BIRD_START_TIMEOUT:.0f} s; "
                f"see {paths.bird_log} on the gateway"
            )
        time.sleep(0.1)


def apply_gateway(
    task: Task,
    plan: FleetPlan,
    public_keys: dict[str, str],
    templates_dir: Any = None,
    dry_run: bool | None = None,
) -> Result:
    """Converge one gateway: namespace, tunnels, BIRD; then read back and check the tunnels."""
    name = task.host.name
    dry = task.is_dry_run(dry_run)
    gateway = plan.gateway(name)
    facts: GatewayFacts = task.run(task=gather_facts, plan=plan, severity_level=10)[0].result
    keys = dict(public_keys)
    if facts.public_key:
        keys[name] = facts.public_key
    rendered = render_gateway(
        plan, name, keys, templates_dir=templates_dir, allow_placeholders=True
    )
    if rendered.missing_keys and not dry:
        return Result(
            host=task.host,
            failed=True,
            result=(
                f"{name}: public key of {', '.join(rendered.missing_keys)} unknown (unreachable "
                "or never rolled out); nothing changed here. Reach those gateways and apply again."
            ),
        )
    changed = False
    for subtask, extra in (
        (converge_namespace, {}),
        (converge_tunnels, {"rendered": rendered, "public_keys": keys}),
        (converge_bird, {"rendered": rendered}),
    ):
        result = task.run(task=subtask, plan=plan, facts=facts, dry_run=dry, **extra)
        changed = changed or result.changed
    if changed and not dry:
        after: GatewayFacts = task.run(task=gather_facts, plan=plan, severity_level=10)[0].result
        wrong = [
            t.interface
            for t in gateway.tunnels
            if not wg_matches(t, after, keys[t.peer]) or t.interface not in after.private_links
        ]
        if wrong:
            return Result(
                host=task.host,
                failed=True,
                changed=True,
                result=f"{name}: after applying, {', '.join(wrong)} do not match the plan "
                "(key or peer); run `wgfleet apply --check` to see the difference",
            )
    summary = f"{len(gateway.tunnels)} tunnels, {len(gateway.sessions)} BGP sessions"
    return Result(host=task.host, changed=changed, result=summary)
