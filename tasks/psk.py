"""Nornir tasks for preshared keys: read fingerprints, install keys, put previous ones back.

A preshared key is the one secret that must exist at both ends of a tunnel, so it is the
one secret that crosses the control machine: made there in memory (``new_psk``), written
to both ends over SFTP (mode 0600 from creation, atomic rename) and dropped. It is never
written to the control machine's disk, never printed, journaled or put in a diff: results
and diffs name the file, not the key.
"""

from __future__ import annotations

import base64
import secrets

from nornir.core.task import Result, Task

from wgfleet import commands as cmd
from wgfleet.facts import parse_psk_fingerprints
from wgfleet.plan import FleetPlan
from wgfleet.tasks._common import conn, paths_of, run


def new_psk() -> str:
    """A fresh preshared key (32 random bytes, base64), as ``wg genpsk`` makes them."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def read_psks(task: Task, plan: FleetPlan) -> Result:
    """Fingerprints of the gateway's preshared keys (files and live), per interface."""
    interfaces = [t.interface for t in plan.gateway(task.host.name).tunnels]
    script = cmd.psk_fingerprints(paths_of(plan), interfaces)
    out = run(task, script, what="reading key fingerprints")
    return Result(host=task.host, result=parse_psk_fingerprints(out))


def install_psks(
    task: Task,
    plan: FleetPlan,
    keys: dict[str, dict[str, str]],
    dry_run: bool | None = None,
    keep_previous: bool = False,
) -> Result:
    """Write this gateway's share of ``keys`` (gateway → interface → key) to its key files.

    With ``keep_previous`` (a rotation that may be rolled back) the replaced file of each is
    kept as ``<if>.psk.prev``; a stale one is removed first either way, so ``.prev`` always
    means "before this run" and no old key lingers. The live interfaces are not touched:
    each end's apply (or rollback) feeds them.
    """
    paths = paths_of(plan)
    mine = keys.get(task.host.name, {})
    peers = {t.interface: t.peer for t in plan.gateway(task.host.name).tunnels}
    verb = "would set" if task.is_dry_run(dry_run) else "set"
    diff = "".join(
        f"# {verb} a new preshared key for {name} (towards {peers.get(name, '?')}) in "
        f"{paths.psk_file(name)} (mode 0600)\n"
        for name in sorted(mine)
    )
    if not mine or task.is_dry_run(dry_run):
        return Result(host=task.host, changed=bool(mine), diff=diff, result=sorted(mine))
    stale = " ".join(cmd.q(paths.psk_file(name) + ".prev") for name in sorted(mine))
    run(task, f"rm -f {stale}", what="removing stale previous key files")
    connection = conn(task)
    for name in sorted(mine):
        connection.write_file(
            paths.psk_file(name), mine[name] + "\n", mode=0o600, keep_previous=keep_previous
        )
    return Result(host=task.host, changed=True, diff=diff, result=sorted(mine))


def restore_psks(task: Task, plan: FleetPlan, interfaces: dict[str, list[str]]) -> Result:
    """Put back the key files ``install_psks`` replaced (``.prev``), or remove the ones it
    created; the live interfaces are synced by the rollback that follows."""
    paths = paths_of(plan)
    mine = interfaces.get(task.host.name, [])
    if mine:
        script = "".join(
            f"if [ -e {f}.prev ]; then mv -f {f}.prev {f}; else rm -f {f}; fi\n"
            for f in (cmd.q(paths.psk_file(name)) for name in mine)
        )
        run(task, script, what=f"restoring the previous preshared keys of {', '.join(mine)}")
    return Result(host=task.host, changed=bool(mine), result=mine)


def forget_previous_keys(
    task: Task, plan: FleetPlan, keys: list[str], psks: dict[str, list[str]]
) -> Result:
    """Delete the previous private key (when the gateway is in ``keys``) and the previous
    preshared keys of its interfaces in ``psks``, once a rotation has held."""
    paths = paths_of(plan)
    files = [paths.private_key + ".prev"] if task.host.name in keys else []
    files += [paths.psk_file(name) + ".prev" for name in psks.get(task.host.name, [])]
    if files:
        run(task, "rm -f " + " ".join(cmd.q(f) for f in files), what="deleting replaced keys")
    return Result(host=task.host, changed=bool(files), result=files)
