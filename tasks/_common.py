"""Helpers shared by wgfleet's Nornir tasks: the connection, checked commands, reports."""

from __future__ import annotations

import dataclasses
import json

from nornir.core.task import Task

from wgfleet import commands as cmd
from wgfleet.connection import WgSsh, gateway_connection
from wgfleet.converge import FileChange, Step
from wgfleet.errors import WgfleetError
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan
from wgfleet.remote import CommandResult


class ApplyError(WgfleetError):
    """A change failed on a gateway; the message names the gateway, step and what to do."""


def conn(task: Task) -> WgSsh:
    """The host's ``wgssh`` connection (opened once, reused by every task)."""
    return gateway_connection(task.host, task.nornir.config)


def run(task: Task, command: str, *, what: str) -> str:
    """Run a command; raise ApplyError naming the host, ``what`` and stderr if it fails."""
    result = conn(task).run(command, check=False)
    if result.exit_status != 0:
        raise failure(task, what, result, command)
    return str(result.stdout)


def failure(task: Task, what: str, result: CommandResult, command: str) -> ApplyError:
    """The error for a command that failed: host, what it was for, exit status, its own
    output (``stderr`` first) and the command."""
    return ApplyError(
        f"{task.host.name}: {what} failed (exit {result.exit_status}): "
        f"{(result.stderr or result.stdout).strip()[-800:]}\n  command: {command}"
    )


def locked_message(host: str, raw: str) -> str:
    """Why ``host`` is refused: who holds its lock (the lock file's JSON in ``raw``)."""
    try:
        holder = json.loads(raw)
    except json.JSONDecodeError:
        holder = {"owner": "unknown", "raw": raw[:200]}
    return (
        f"{host} is locked by {holder.get('owner', '?')} since {holder.get('started', '?')} "
        f"(runbook {holder.get('runbook', '?')}, change {holder.get('change') or '-'}, run "
        f"{holder.get('run_id', '?')}); if that run is dead, clear it with "
        f"`wgfleet runbook unlock {host}`"
    )


def paths_of(plan: FleetPlan) -> GatewayPaths:
    """wgfleet's paths on a gateway, for the plan's namespace."""
    return GatewayPaths(namespace=plan.settings.namespace)


def report(files: list[FileChange], steps: list[Step], dry_run: bool) -> str:
    """A task's diff: file diffs, then the commands run (or that would run)."""
    parts = [change.diff() for change in files]
    if steps:
        verb = "would run" if dry_run else "ran"
        lines = [f"# {verb}:"]
        for step in steps:
            lines.append(f"# {step.description}")
            lines.extend(f"$ {command}" for command in step.commands)
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def apply_changes(task: Task, files: list[FileChange], steps: list[Step]) -> None:
    """Write the files atomically, then run every step's commands in order, in one round
    trip (:func:`wgfleet.commands.batch`), stopping at the first that fails.

    Raises:
        ApplyError: A command failed: the message names the host, its step, the exit
            status, what that command printed on stderr, and the command itself.
    """
    connection = conn(task)
    for change in files:
        connection.write_file(change.path, change.content, mode=change.mode)
    flat = [(step, command) for step in steps for command in step.commands]
    if not flat:
        return
    # Each command keeps the time it had when it ran alone.
    timeout = connection.session.settings.command_timeout * len(flat)
    result = connection.run(cmd.batch([c for _, c in flat]), check=False, timeout=timeout)
    if result.exit_status == 0:
        return
    index, stderr = cmd.batch_failure(str(result.stderr))
    step, command = flat[index] if index is not None else (None, "(the batch script)")
    what = step.description if step else "applying the changes"
    raise failure(task, what, dataclasses.replace(result, stderr=stderr), command)
