"""Nornir tasks that converge one gateway to its plan: keys, namespace, tunnels (BIRD: bird.py).

Each task tells the truth in its Result: ``changed`` only when something changed (or would
change, under dry run), a ``diff`` with file diffs and the commands run (or that would be),
and ``failed`` with a message a person can act on. Dry run goes through the same code and
only skips the writes and commands.
"""

from __future__ import annotations

from typing import Any

from nornir.core.task import Result, Task

from wgfleet import commands as cmd
from wgfleet.converge import (
    RefusedError,
    namespace_steps,
    peer_file_changes,
    tunnel_steps,
    wg_matches,
    wireguard_impl,
)
from wgfleet.facts import GatewayFacts, parse_gather
from wgfleet.plan import FleetPlan
from wgfleet.render import RenderedGateway, render_gateway
from wgfleet.tasks._common import (
    apply_changes,
    conn,
    failure,
    locked_message,
    paths_of,
    report,
    run,
)
from wgfleet.tasks.bird import converge_bird

# --- tasks ----------------------------------------------------------------------------------


def gather_facts(task: Task, plan: FleetPlan, sweep: bool = False) -> Result:
    """Read everything apply needs from the gateway in one round trip (read-only; with
    ``sweep``, temporary files left by a cut-off transfer are deleted first)."""
    gateway = plan.gateway(task.host.name)
    interfaces = [t.interface for t in gateway.tunnels]
    script = cmd.gather_script(paths_of(plan), interfaces, sweep=sweep)
    facts = parse_gather(run(task, script, what="reading the gateway's state"))
    return Result(host=task.host, result=facts)


def ensure_keys(
    task: Task, plan: FleetPlan, dry_run: bool | None = None, run_id: str | None = None
) -> Result:
    """Generate the gateway's WireGuard private key on the gateway if missing.

    Returns only the public key (``None`` under dry run when no key exists yet). The private
    key is created with umask 077 and never leaves the gateway. Fails, changing nothing,
    when a runbook run other than ``run_id`` holds the gateway's lock (every apply starts
    here, so an apply never interferes with a change window in progress).
    """
    paths = paths_of(plan)
    if task.is_dry_run(dry_run):
        out = run(task, cmd.read_public_key(paths), what="reading the public key").strip()
        if out:
            return Result(host=task.host, result=out, changed=False)
        return Result(
            host=task.host,
            result=None,
            changed=True,
            diff=f"# would generate a private key in {paths.private_key} (mode 0600)\n",
        )
    script = cmd.ensure_key(paths, run_id)
    done = conn(task).run(script, check=False)
    if done.exit_status == cmd.LOCKED_STATUS:
        return Result(
            host=task.host, failed=True, result=locked_message(task.host.name, done.stdout)
        )
    if done.exit_status != 0:
        raise failure(task, "generating the key", done, script)
    lines = str(done.stdout).split()
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
        steps = namespace_steps(plan.gateway(task.host.name), facts, paths_of(plan))
    except RefusedError as exc:
        return Result(host=task.host, failed=True, result=f"{task.host.name}: {exc}")
    dry = task.is_dry_run(dry_run)
    if not dry:
        apply_changes(task, [], steps)
    return Result(host=task.host, changed=bool(steps), diff=report([], steps, dry))


def converge_tunnels(
    task: Task,
    plan: FleetPlan,
    facts: GatewayFacts,
    rendered: RenderedGateway,
    public_keys: dict[str, str],
    dry_run: bool | None = None,
    skip: frozenset[str] = frozenset(),
) -> Result:
    """Converge every WireGuard interface; changed peers are updated in place.

    ``skip`` names interfaces to leave as they are (their peer's key is unknown).
    """
    gateway = plan.gateway(task.host.name)
    paths = paths_of(plan)
    impl = wireguard_impl(facts, gateway.gateway.wireguard)
    files = peer_file_changes(rendered, facts, skip)
    steps = tunnel_steps(
        gateway,
        facts,
        paths,
        public_keys,
        impl,
        rewritten={_iface(f.path) for f in files},
        skip=skip,
    )
    dry = task.is_dry_run(dry_run)
    if not dry:
        apply_changes(task, files, steps)
    changed = bool(files or steps)
    return Result(
        host=task.host,
        result=f"{len(gateway.tunnels)} tunnels ({impl})",
        changed=changed,
        diff=report(files, steps, dry),
    )


def _iface(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".conf")


def apply_gateway(
    task: Task,
    plan: FleetPlan,
    public_keys: dict[str, str],
    templates_dir: Any = None,
    dry_run: bool | None = None,
    bird_confirm_timeout: int | None = None,
    parts: tuple[str, ...] = ("namespace", "tunnels", "bird"),
    held: dict[str, dict[str, str]] | None = None,
) -> Result:
    """Converge one gateway: namespace, tunnels, BIRD; then read back and check the tunnels.

    ``bird_confirm_timeout`` tries a changed BIRD config with an automatic revert instead of
    activating it (see :func:`converge_bird`); ``parts`` limits the run to some of
    ``namespace``, ``tunnels`` and ``bird`` (runbooks). ``held`` names, per gateway,
    interfaces to leave as they are with the reason (a preshared key not set up at both
    ends: see :mod:`wgfleet.psk`).
    """
    name = task.host.name
    dry = task.is_dry_run(dry_run)
    gateway = plan.gateway(name)
    facts: GatewayFacts = task.run(task=gather_facts, plan=plan, sweep=not dry, severity_level=10)[
        0
    ].result
    keys = dict(public_keys)
    if facts.public_key:
        keys[name] = facts.public_key
    rendered = render_gateway(
        plan, name, keys, templates_dir=templates_dir, allow_placeholders=True
    )
    # Tunnels towards peers whose key is unknown (unreachable, never rolled out) are left
    # exactly as they are; everything else converges.
    # (A dry run shows them with a placeholder key instead: what a rollout would do.)
    mine = (held or {}).get(name, {})
    skip = frozenset(
        t.interface
        for t in gateway.tunnels
        if (t.peer in rendered.missing_keys and not dry) or t.interface in mine
    )
    changed = False
    for part, subtask, extra in (
        ("namespace", converge_namespace, {}),
        ("tunnels", converge_tunnels, {"rendered": rendered, "public_keys": keys, "skip": skip}),
        ("bird", converge_bird, {"rendered": rendered, "confirm_timeout": bird_confirm_timeout}),
    ):
        if part not in parts:
            continue
        result = task.run(task=subtask, plan=plan, facts=facts, dry_run=dry, **extra)
        changed = changed or result.changed
    if changed and not dry and "tunnels" in parts:
        after: GatewayFacts = task.run(task=gather_facts, plan=plan, severity_level=10)[0].result
        wrong = [
            t.interface
            for t in gateway.tunnels
            if t.interface not in skip
            and (not wg_matches(t, after, keys[t.peer]) or t.interface not in after.private_links)
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
    unknown = sorted(skip - set(mine))
    if unknown and not dry:
        peers = ", ".join(sorted(rendered.missing_keys))
        summary += f"; left {', '.join(unknown)} as they are: key of {peers} unknown"
    for interface, why in sorted(mine.items()):
        summary += f"; left {interface} as it is: {why}"
    if facts.swept:
        # Leftovers of a transfer cut off earlier: gone now, and said so.
        summary += f"; removed {len(facts.swept)} temporary file(s) of an interrupted transfer"
        return Result(
            host=task.host,
            changed=True,
            result=summary,
            diff="".join(f"# removed {path}\n" for path in facts.swept),
        )
    return Result(host=task.host, changed=changed, result=summary)
