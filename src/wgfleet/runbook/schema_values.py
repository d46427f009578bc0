"""Values of the runbook format: names, change references, targets, seconds, labels,
placeholders, and the arguments of each step kind (used by :mod:`wgfleet.runbook.schema`).
"""

from __future__ import annotations

import math
import re
import string
from typing import Any, cast

from wgfleet import inventory_values as v
from wgfleet.runbook import (
    APPLY_PARTS,
    ApplyArgs,
    DecommissionArgs,
    GateArgs,
    PauseArgs,
    Require,
    RotateKeysArgs,
    StepArgs,
    VerifyArgs,
)

TIMEOUT_MAX = 86400.0  # a day: anything longer is a typo (minutes meant as seconds…)
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_CHANGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}")
_TARGET = re.compile(r"[A-Za-z0-9_.-]+")
PLACEHOLDERS: dict[str, tuple[str, ...]] = {  # also the phases, in order
    "before": ("waves", "gateways"),
    "wave": ("waves", "gateways", "wave", "hosts"),
    "after": ("waves", "gateways"),
}
_GATE_VALUES = {"sessions": "established", "ecmp": "restored", "handshakes": "fresh"}


def check_change(value: str) -> str | None:
    """Return why ``value`` is not a valid change reference (also for ``--change``), or None."""
    if _CHANGE.fullmatch(value):
        return None
    return (
        f"{value!r} is not a change reference: up to 64 letters, digits and . _ : / # + -, "
        "starting with a letter or digit"
    )


def arguments(
    kind: str, args: v.Section, phase: str, timeout: float | None
) -> tuple[StepArgs, str]:
    """The parsed arguments of one step and its default label."""
    if kind == "verify":
        require = args.read("require", v.choice("healthy", "no-critical", "any"), "healthy")
        wait = args.read("wait", seconds(positive=False), 0.0)
        return VerifyArgs(cast(Require, require), wait), f"verify {require}"
    if kind == "pause":
        message = args.read("message", v.text, "")
        placeholders(args.scope, args.field("message"), message, PLACEHOLDERS[phase])
        return PauseArgs(message), "pause"
    if kind == "apply":
        parts = args.read("parts", v.list_of(v.choice(*APPLY_PARTS), nonempty=True), APPLY_PARTS)
        if len(set(parts)) != len(parts):
            args.scope.add(args.field("parts"), "lists a part more than once")
        ordered = tuple(part for part in APPLY_PARTS if part in parts)
        label = "apply" if ordered == APPLY_PARTS else "apply " + ", ".join(ordered)
        return ApplyArgs(ordered), label
    if kind == "gate":
        found = {key: args.read(key, v.choice(value), None) for key, value in _GATE_VALUES.items()}
        if not any(key in args.data for key in _GATE_VALUES):
            args.scope.add(
                args.path,
                "a gate needs at least one condition: sessions: established, ecmp: restored or "
                "handshakes: fresh",
            )
        gate = GateArgs(
            sessions="established" if found["sessions"] else None,
            ecmp="restored" if found["ecmp"] else None,
            handshakes="fresh" if found["handshakes"] else None,
            timeout=timeout,
        )
        return gate, "gate " + ", ".join(key for key, value in found.items() if value)
    if kind == "rotate-keys":
        preshared = args.read("preshared", v.boolean, False)
        return RotateKeysArgs(preshared), "rotate-keys" + (" +preshared" if preshared else "")
    return DecommissionArgs(), "decommission"


def seconds(*, positive: bool) -> v.Parser[float]:
    """Parser of seconds: a finite number (not a boolean), > 0 or >= 0, at most a day."""

    def parse(scope: v.Scope, where: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            scope.fail(where, f"must be a number of seconds, got {v.describe(value)}")
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            scope.fail(
                where, f"must be {'greater than' if positive else 'at least'} 0, got {value}"
            )
        if value > TIMEOUT_MAX:
            scope.fail(where, f"must be at most {TIMEOUT_MAX:g} seconds (a day), got {value}")
        return float(value)

    return parse


def name(scope: v.Scope, where: str, value: Any) -> str:
    text = v.text(scope, where, value)
    if not NAME.fullmatch(text):
        scope.fail(
            where,
            f"{text!r} must be lower-case letters, digits and '-' (at most 64, not starting or "
            "ending with '-'): it names locks and records",
        )
    return text


def change(scope: v.Scope, where: str, value: Any) -> str:
    text = v.text(scope, where, str(value) if type(value) is int else value)
    message = check_change(text)
    if message:
        scope.fail(where, message)
    return text


def target(scope: v.Scope, where: str, value: Any) -> str:
    text = v.shell_safe(scope, where, v.text(scope, where, value))
    if "," in text:
        scope.fail(where, f"one name per list item, got {text!r}")
    if not _TARGET.fullmatch(text):
        scope.fail(where, f"{text!r} is not a host or group name (letters, digits, _ . -)")
    return text


def label(scope: v.Scope, where: str, value: Any) -> str:
    text = v.text(scope, where, value)
    if "\n" in text or len(text) > 80:
        scope.fail(where, "must be one line of at most 80 characters")
    return text


def placeholders(scope: v.Scope, where: str, message: str, allowed: tuple[str, ...]) -> None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(message) if name is not None]
    except ValueError as exc:
        scope.add(where, f"{exc}: write {{{{ and }}}} for literal braces")
        return
    for name in names:
        if name not in allowed:
            choices = ", ".join("{" + a + "}" for a in allowed)
            hint = v.suggestion(name, allowed)
            scope.add(where, f"unknown placeholder {{{name}}} here; use {choices}{hint}")
