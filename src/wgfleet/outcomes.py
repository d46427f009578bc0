"""Nornir's results turned into one outcome per gateway, unreachable told apart from failed.

Shared by every fleet-wide run (apply, verify, the runbook engine, preshared keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from nornir.core.task import AggregatedResult, MultiResult

from wgfleet.errors import WgfleetError
from wgfleet.ssh_errors import SshError

Status = Literal["ok", "changed", "failed", "unreachable"]


@dataclass
class Outcome:
    """What happened on one gateway."""

    host: str
    status: Status
    message: str = ""
    diff: str = ""
    seconds: float = 0.0


def _is_unreachable(exc: BaseException | None) -> bool:
    """True when the failure is the SSH connection itself (refused, timed out, host key …)."""
    while exc is not None:
        if isinstance(exc, SshError):
            return True
        nested = _first_exception(getattr(exc, "result", None))
        exc = nested if nested is not None else exc.__cause__
    return False


def _first_exception(result: Any) -> BaseException | None:
    if isinstance(result, MultiResult):
        for sub in result:
            if sub.exception is not None:
                return sub.exception
    return None


def failure_message(multi: MultiResult) -> str:
    """The most specific message among a host's results (innermost failure first)."""
    for result in reversed(list(multi)):
        if not result.failed:
            continue
        if result.exception is not None and not type(result.exception).__name__.startswith(
            "Nornir"
        ):
            exc = result.exception
            return str(exc) if isinstance(exc, WgfleetError) else f"{type(exc).__name__}: {exc}"
        if isinstance(result.result, str) and result.result:
            return result.result
    return "failed (see the log)"


def outcomes(
    result: AggregatedResult, hosts: Iterable[str], timings: dict[str, float]
) -> list[Outcome]:
    """One Outcome per host, unreachable told apart from failed."""
    found: list[Outcome] = []
    for name in hosts:
        multi = result.get(name)
        if multi is None:
            continue
        seconds = timings.get(name, 0.0)
        diff = "".join(f"--- {r.name} ---\n{r.diff}" for r in list(multi)[1:] if r.diff)
        if multi.failed:
            exc = next((r.exception for r in multi if r.exception is not None), None)
            unreachable = _is_unreachable(exc)
            found.append(
                Outcome(
                    name,
                    "unreachable" if unreachable else "failed",
                    failure_message(multi),
                    diff,
                    seconds,
                )
            )
            continue
        top = multi[0]
        status: Status = "changed" if multi.changed else "ok"
        found.append(Outcome(name, status, str(top.result or ""), diff, seconds))
    return found
