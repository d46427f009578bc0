"""Nornir tasks the runbook engine needs: gateway locks, snapshots and rolling a wave back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nornir.core.task import Result, Task

from wgfleet import commands as cmd
from wgfleet.converge import FileChange, Step, psk_matches
from wgfleet.facts import GatewayFacts
from wgfleet.fallback import FALLBACK_METRIC, FallbackRoute
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan, Tunnel
from wgfleet.tasks._common import apply_changes, locked_message, paths_of, run
from wgfleet.tasks.bird import undo_bird
from wgfleet.tasks.converge import gather_facts

LOCK_FILE = GatewayPaths().lock


def _lock_script(record: dict[str, Any]) -> str:
    text = cmd.q(json.dumps(record, sort_keys=True))
    lock = cmd.q(LOCK_FILE)
    # noclobber makes the redirect an O_EXCL create: exactly one run can win.
    return (
        f"mkdir -p {cmd.q(LOCK_FILE.rsplit('/', 1)[0])} && "
        f"if ( set -C; printf '%s\\n' {text} > {lock} ) 2>/dev/null; then echo acquired; "
        f"else cat {lock}; fi"
    )


def read_lock(task: Task) -> Result:
    """The lock record on the gateway (owner, time, runbook, change, run id), or None."""
    lock = cmd.q(LOCK_FILE)
    out = run(task, f"if [ -f {lock} ]; then cat {lock}; fi", what="reading the lock").strip()
    return Result(host=task.host, result=json.loads(out) if out else None)


def acquire_lock(task: Task, record: dict[str, Any]) -> Result:
    """Take the gateway's lock for a run, or fail naming who holds it.

    A lock already held by the same run id (a resumed run) counts as taken.
    """
    out = run(task, _lock_script(record), what="taking the lock").strip()
    if out == "acquired":
        return Result(host=task.host, changed=True, result=record)
    try:
        holder = json.loads(out)
    except json.JSONDecodeError:
        holder = {}
    if holder.get("run_id") == record.get("run_id"):
        return Result(host=task.host, changed=False, result=holder)
    return Result(host=task.host, failed=True, result=locked_message(task.host.name, out))


def release_lock(task: Task, run_id: str | None = None) -> Result:
    """Release the lock if this run holds it (``run_id``), or whoever holds it (None)."""
    holder = read_lock(task).result
    if holder is None:
        return Result(host=task.host, changed=False, result="not locked")
    if run_id is not None and holder.get("run_id") != run_id:
        return Result(
            host=task.host,
            failed=True,
            result=f"{task.host.name}: the lock belongs to run {holder.get('run_id')}, not ours",
        )
    run(task, f"rm -f {cmd.q(LOCK_FILE)}", what="releasing the lock")
    return Result(host=task.host, changed=True, result=holder)


@dataclass(frozen=True)
class Snapshot:
    """What rollback needs of a gateway before a wave: wgfleet's files (peer files and the
    BIRD config: no secret in them), its private-namespace links, whether BIRD ran.
    Journaled, so that a run interrupted half-way can still be rolled back."""

    files: dict[str, str | None]
    links: frozenset[str]
    bird_running: bool

    @classmethod
    def of(cls, facts: GatewayFacts) -> Snapshot:
        """Take it from gathered facts."""
        return cls(dict(facts.files), frozenset(facts.private_links), facts.bird_running)

    def to_json(self) -> dict[str, Any]:
        """Serialise for the journal."""
        return {"files": self.files, "links": sorted(self.links), "bird_running": self.bird_running}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Snapshot:
        """Read back from the journal."""
        return cls(dict(raw["files"]), frozenset(raw["links"]), bool(raw["bird_running"]))


def snapshot_gateway(task: Task, plan: FleetPlan) -> Result:
    """What a gateway looks like before a wave changes it (for rollback)."""
    facts: GatewayFacts = gather_facts(task, plan).result
    return Result(host=task.host, result=Snapshot.of(facts))


def rollback_gateway(task: Task, plan: FleetPlan, before: Snapshot) -> Result:
    """Undo a wave on one gateway: BIRD reverted, peer files restored and synced, new
    tunnels removed. Returns what was undone, one line each."""
    paths = paths_of(plan)
    after: GatewayFacts = gather_facts(task, plan).result
    undone: list[str] = []
    if undo_bird(task, plan).changed:
        undone.append("BIRD: tried configuration undone")
    elif after.bird_running and not before.bird_running:
        run(task, cmd.birdc(paths, "down"), what="stopping BIRD started by this wave")
        undone.append("BIRD: stopped (it was not running before)")
    created = sorted(
        name for name in after.private_links if name in after.wireguard and name not in before.links
    )
    files: list[FileChange] = []
    steps = [
        Step(
            f"remove {name} (created by this wave)",
            (
                f"{cmd.ip_ns(paths.namespace, f'link del dev {cmd.q(name)}')}; "
                f"rm -f {cmd.q(paths.peer_file(name))}",
            ),
        )
        for name in created
    ]
    undone += [f"{name}: removed (created by this wave)" for name in created]
    tunnels = {t.interface: t for t in plan.gateway(task.host.name).tunnels}
    synced: set[str] = set()
    for path, old in sorted(before.files.items()):
        if path == paths.bird_config or after.files.get(path) == old:
            continue
        name = path.rsplit("/", 1)[-1].removesuffix(".conf")
        if name in created:
            continue
        if old is None:
            steps.append(Step(f"remove {path} (new in this wave)", (f"rm -f {cmd.q(path)}",)))
            undone.append(f"{path}: removed (new in this wave)")
            continue
        files.append(FileChange(path, old, 0o600, after.files.get(path)))
        if name in after.private_links:
            steps.append(_sync(paths, name, tunnels.get(name)))
            synced.add(name)
        undone.append(f"{name}: previous peer file restored and synced")
    # A key (private or preshared) put back before this rollback: the live interface still
    # uses the new one until it is fed the files again.
    for name, tunnel in sorted(tunnels.items()):
        if name in synced or name in created or name not in after.private_links:
            continue
        live = after.wireguard.get(name)
        if live is None:
            continue
        if live.public_key != after.public_key or not psk_matches(tunnel, after):
            steps.append(_sync(paths, name, tunnel))
            undone.append(f"{name}: previous keys synced")
    apply_changes(task, files, steps)  # one round trip, stopping at the first failure
    return Result(host=task.host, changed=bool(undone), result=undone)


def _sync(paths: GatewayPaths, name: str, tunnel: Tunnel | None) -> Step:
    psk = tunnel is not None and tunnel.preshared_key
    return Step(
        f"restoring {name}",
        (cmd.in_netns(paths.namespace, cmd.feed_config(paths, name, "syncconf", psk)),),
    )


def set_fallback(
    task: Task, plan: FleetPlan, routes: dict[str, tuple[FallbackRoute, ...]], present: bool
) -> Result:
    """Install (``present``) or remove this gateway's fallback routes (see wgfleet.fallback)."""
    mine = routes.get(task.host.name, ())
    if mine:
        script = cmd.fallback_script(
            plan.settings.namespace,
            [(r.prefix, r.via, r.device) for r in mine],
            FALLBACK_METRIC,
            add=present,
        )
        run(task, script, what="installing fallback routes" if present else "removing them")
    return Result(host=task.host, changed=bool(mine), result=[r.prefix for r in mine])


def rotate_key(task: Task, plan: FleetPlan) -> Result:
    """Generate a new private key on the gateway (the old one kept as ``.prev``).

    Only the new public key is returned. The live interfaces keep the old key until the
    next convergence feeds them the key file, which the engine does for the gateway and
    all its peers at once.
    """
    paths = paths_of(plan)
    key = cmd.q(paths.private_key)
    out = run(
        task,
        f"umask 077 && test -s {key} && wg genkey > {key}.new && cp -p {key} {key}.prev && "
        f"mv -f {key}.new {key} && {cmd.publish_public_key(paths)}",
        what="generating a new private key",
    )
    return Result(host=task.host, changed=True, result=out.strip())


def restore_key(task: Task, plan: FleetPlan) -> Result:
    """Put the previous private key back (rolling a key rotation back)."""
    paths = paths_of(plan)
    key = cmd.q(paths.private_key)
    out = run(
        task,
        f"umask 077 && test -s {key}.prev && mv -f {key}.prev {key} && "
        f"{cmd.publish_public_key(paths)}",
        what="restoring the previous private key",
    )
    return Result(host=task.host, changed=True, result=out.strip())


def decommission_gateway(task: Task, plan: FleetPlan) -> Result:
    """Remove wgfleet's BIRD instance, tunnels and files from a gateway.

    The private namespace and the site-side interfaces stay (they carry the site), and so
    does the private key (gone with the gateway itself, or reused if it comes back).
    """
    paths = paths_of(plan)
    facts: GatewayFacts = gather_facts(task, plan).result
    undone: list[str] = []
    if facts.bird_running:
        run(task, cmd.birdc(paths, "down"), what="stopping BIRD")
        undone.append("BIRD stopped")
    for name in sorted(n for n in facts.private_links if n in facts.wireguard):
        run(
            task, cmd.ip_ns(paths.namespace, f"link del dev {cmd.q(name)}"), what=f"removing {name}"
        )
        undone.append(f"{name} removed")
    run(
        task,
        f"rm -f {cmd.q(paths.wireguard_dir)}/*.conf {cmd.q(paths.wireguard_dir)}/*.conf.prev "
        f"{cmd.q(paths.wireguard_dir)}/*.psk {cmd.q(paths.wireguard_dir)}/*.psk.prev "
        f"{cmd.q(paths.bird_config)} {cmd.q(paths.bird_candidate)}",
        what="removing wgfleet's files",
    )
    return Result(host=task.host, changed=bool(undone) or bool(facts.files), result=undone)
