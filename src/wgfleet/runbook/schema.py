"""The runbook format: YAML text read into a fully validated :class:`~wgfleet.runbook.Runbook`.

Validation happens in one pass and reports every problem at once, each located by file,
step (``wave[1] (gate)``, ``before[0] (verify)``; empty for the top level) and dotted field
(``strategy``, ``wave[1].gate.timeout``), with the line appended to the message when the
field exists in the file. Unknown keys, kinds and values get the closest valid one
suggested. Cross-step rules: every changing step is followed by a gate in ``wave``;
``decommission`` neither shares a wave with ``apply``/``rotate-keys`` nor targets all
gateways. The model (``Runbook``, ``Step``, the per-kind arguments) lives in
:mod:`wgfleet.runbook` and is re-exported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from wgfleet import inventory_values as v
from wgfleet.errors import BadInputError, Problem
from wgfleet.inventory_yaml import StrictLoader, load_yaml
from wgfleet.runbook import (
    STEP_KINDS,
    STRATEGIES,
    WAVE_ONLY,
    ApplyArgs,
    DecommissionArgs,
    GateArgs,
    OnFailure,
    PauseArgs,
    RotateKeysArgs,
    Runbook,
    Step,
    StepArgs,
    StepKind,
    Strategy,
    Timeouts,
    VerifyArgs,
)
from wgfleet.runbook import schema_values as sv
from wgfleet.runbook.schema_values import PLACEHOLDERS, check_change

__all__ = [
    "ApplyArgs",
    "DecommissionArgs",
    "GateArgs",
    "PauseArgs",
    "RotateKeysArgs",
    "Runbook",
    "Step",
    "StepArgs",
    "Timeouts",
    "VerifyArgs",
    "check_change",
    "check_targets",
    "load_runbook",
    "parse_runbook",
]

MAX_FAILURES_MAX = 100000
_TOP_KEYS = ("name", "description", "change", "targets", "strategy", "batch_size",
             "on_failure", "max_failures", "timeouts", "before", "wave", "after")  # fmt: skip


def check_targets(runbook: Runbook, names_known: set[str]) -> list[Problem]:
    """Problems for target names that are neither a host nor a group of the inventory."""
    return [
        Problem(
            runbook.file,
            "",
            f"targets[{index}]",
            f"no host or group named {name!r} in the inventory"
            + v.suggestion(name, sorted(names_known)),
        )
        for index, name in enumerate(runbook.targets or ())
        if name not in names_known
    ]


def load_runbook(path: Path) -> Runbook:
    """Read and validate a runbook file.

    Raises:
        BadInputError: The file cannot be read or the runbook is invalid (every problem).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(
            [Problem(str(path), "", "", f"cannot read the runbook: {exc}")]
        ) from exc
    return parse_runbook(text, str(path))


def parse_runbook(text: str, file: str) -> Runbook:
    """Validate a runbook's text completely.

    Args:
        text: The YAML document.
        file: Its path, used in problems and kept in :attr:`Runbook.file`.

    Raises:
        BadInputError: Every problem found, located by file, step and field.
    """
    document, found = load_yaml(text, file)
    problems = [_relocate(p) for p in found]
    if document is None and not problems:
        problems.append(Problem(file, "", "", "the runbook is empty"))
    if problems and document is None:
        raise BadInputError(problems)
    reader = _Reader(file, problems)
    runbook = reader.runbook(document)
    if problems:
        lines = _lines(text)
        raise BadInputError([_with_line(p, lines) for p in problems])
    assert runbook is not None
    return runbook


def _relocate(problem: Problem) -> Problem:
    """Re-locate a duplicate-key problem found by the inventory loader onto runbook steps."""
    if not problem.where or problem.where.startswith("line "):
        return problem
    full = problem.where + ("" if problem.field.startswith("[") or not problem.field else ".")
    full += problem.field
    where = full.split(".", 2)
    step = re.fullmatch(r"(before|wave|after)\[\d+\]", where[0])
    kind = f" ({where[1]})" if step and len(where) > 1 else ""
    return Problem(problem.file, f"{where[0]}{kind}" if step else "", full, problem.message)


def _with_line(problem: Problem, lines: dict[str, int]) -> Problem:
    """Append the line of the field, or of its nearest ancestor present in the file."""
    path = problem.field
    while path and path not in lines:
        parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)
        path = "" if parent == path else parent
    line = lines.get(path)
    if line is None or "(line " in problem.message:
        return problem
    return Problem(problem.file, problem.where, problem.field, f"{problem.message} (line {line})")


def _lines(text: str) -> dict[str, int]:
    """Map every dotted field path of the document to its 1-based line."""
    try:
        root = yaml.compose(text, Loader=StrictLoader)
    except yaml.YAMLError:
        return {}
    found: dict[str, int] = {}
    stack: list[tuple[Node | None, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        children: list[tuple[str, Node, Node]] = []
        if isinstance(node, MappingNode):
            children = [
                (v.join(path, str(key.value)), key, value)
                for key, value in node.value
                if isinstance(key, ScalarNode)
            ]
        elif isinstance(node, SequenceNode):
            children = [(f"{path}[{i}]", item, item) for i, item in enumerate(node.value)]
        for child, mark, value in children:
            found.setdefault(child, mark.start_mark.line + 1)
            stack.append((value, child))
    return found


_STEP_KEYS: dict[str, tuple[str, ...]] = {
    "verify": ("require", "wait"),
    "pause": ("message",),
    "apply": ("parts",),
    "gate": ("sessions", "ecmp", "handshakes"),
    "rotate-keys": ("preshared",),
    "decommission": (),
}


@dataclass
class _Reader:
    """One validation pass over a runbook document; problems accumulate in ``problems``."""

    file: str
    problems: list[Problem]
    top: v.Scope = field(init=False)

    def __post_init__(self) -> None:
        self.top = v.Scope(self.file, "", self.problems)

    def runbook(self, document: Any) -> Runbook | None:
        top = self.top
        section = v.Section.open(top, "", document, ("name", "description"), _TOP_KEYS[2:])
        if section is None:
            return None
        name = section.read("name", sv.name, "")
        description = section.read("description", v.text, "")
        change = section.read("change", sv.change, None)
        targets, limit_required = self._targets(section)
        strategy = cast(Strategy, section.read("strategy", v.choice(*STRATEGIES), STRATEGIES[0]))
        batch_size = section.read("batch_size", v.integer(1, MAX_FAILURES_MAX), None)
        if strategy == "batch" and not section.has("batch_size"):
            top.add("batch_size", "strategy batch needs batch_size (gateways per wave)")
        elif section.has("batch_size") and strategy != "batch":
            top.add("batch_size", f"only used by strategy batch, but strategy is {strategy}")
            batch_size = None
        on_failure = section.read("on_failure", v.choice("rollback", "stop"), "rollback")
        max_failures = section.read("max_failures", v.integer(0, MAX_FAILURES_MAX), 0)
        timeouts = self._timeouts(section)
        phases = {phase: self._steps(section, phase, timeouts) for phase in PLACEHOLDERS}
        if not any(phase in section.data for phase in PLACEHOLDERS):
            top.add("wave", "the runbook has no steps: add `wave`, `before` or `after` steps")
        self._rules(phases["wave"], targets is None and not limit_required)
        return Runbook(
            name=name,
            description=description,
            change=change,
            targets=targets,
            strategy=strategy,
            batch_size=batch_size,
            on_failure=cast(OnFailure, on_failure),
            max_failures=max_failures,
            timeouts=timeouts,
            before=phases["before"],
            wave=phases["wave"],
            after=phases["after"],
            file=self.file,
            limit_required=limit_required,
        )

    def _targets(self, section: v.Section) -> tuple[tuple[str, ...] | None, bool]:
        value = section.data.get("targets", "all")
        if value in ("all", "limit"):
            return None, value == "limit"
        if not isinstance(value, list) or not value:
            hint = f" (write [{value}])" if isinstance(value, str) else ""
            got = "an empty list" if value == [] else v.describe(value)
            self.top.add(
                "targets", f"must be all, limit or a list of host and group names, got {got}{hint}"
            )
            return (), False
        return tuple(dict.fromkeys(v.list_of(sv.target)(self.top, "targets", value))), False

    def _timeouts(self, section: v.Section) -> Timeouts:
        sub = section.section("timeouts", optional=("step", "gate"))
        if sub is None:
            return Timeouts()
        return Timeouts(
            step=sub.read("step", sv.seconds(positive=True), Timeouts.step),
            gate=sub.read("gate", sv.seconds(positive=True), Timeouts.gate),
        )

    def _steps(self, section: v.Section, phase: str, timeouts: Timeouts) -> tuple[Step, ...]:
        if phase not in section.data:
            return ()
        value = section.data[phase]
        if not isinstance(value, list) or not value:
            self.top.add(
                phase,
                f"must be a list of steps, got {v.describe(value)}"
                if value is not None and not isinstance(value, list)
                else "is empty: list its steps, or remove the key",
            )
            return ()
        steps = (self._step(phase, index, item, timeouts) for index, item in enumerate(value))
        return tuple(step for step in steps if step is not None)

    def _step(self, phase: str, index: int, item: Any, timeouts: Timeouts) -> Step | None:
        where = f"{phase}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            many = isinstance(item, dict) and len(item) > 1
            got = "keys " + ", ".join(map(repr, item)) if many else v.describe(item)
            hint = " (start each step with '- ')" if many else ""
            hint = f" (write `- {item}: {{}}`)" if item in STEP_KINDS else hint
            message = f"a step is a mapping with exactly one key, its kind; got {got}{hint}"
            self.problems.append(Problem(self.file, where, where, message))
            return None
        ((kind, raw),) = item.items()
        scope = v.Scope(self.file, f"{where} ({kind})", self.problems)
        path = f"{where}.{kind}"
        if kind not in STEP_KINDS:
            hint = v.suggestion(str(kind), STEP_KINDS) or f"; one of {', '.join(STEP_KINDS)}"
            scope.add(path, f"unknown step kind {kind!r}{hint}")
            return None
        if phase != "wave" and kind in WAVE_ONLY:
            scope.add(path, f"{kind} is only allowed in `wave`: it changes or gates the wave")
            return None
        if kind == "pause" and isinstance(raw, str):
            raw = {"message": raw}
        required = ("message",) if kind == "pause" else ()
        optional = (*_STEP_KEYS[kind][len(required) :], "name", "timeout")
        args = v.Section.open(scope, path, {} if raw is None else raw, required, optional)
        if args is None:
            return None
        timeout = args.read("timeout", sv.seconds(positive=True), None)
        parsed, label = sv.arguments(kind, args, phase, timeout)
        if isinstance(parsed, VerifyArgs):
            limit = timeout if timeout is not None else timeouts.step
            if parsed.wait >= limit:
                scope.add(
                    args.field("wait"),
                    f"waiting {parsed.wait:g} s cannot end within the step's timeout of "
                    f"{limit:g} s: raise `timeout`",
                )
        name = args.read("name", sv.label, label)
        return Step(cast(StepKind, kind), parsed, name, timeout, where)

    def _rules(self, wave: tuple[Step, ...], targets_all: bool) -> None:
        """Rules across steps: every change is gated; decommission stands alone and is aimed."""
        kinds = [step.kind for step in wave]
        for position, step in enumerate(wave):
            scope = v.Scope(self.file, step.title, self.problems)
            path = f"{step.where}.{step.kind}"
            if step.changes and "gate" not in kinds[position + 1 :]:
                scope.add(
                    path,
                    "nothing checks this change: add a `gate` step after it, so that a failure "
                    "is found and the wave rolled back",
                )
            if step.kind == "decommission" and {"apply", "rotate-keys"} & set(kinds):
                scope.add(
                    path,
                    "decommission cannot share a wave with apply or rotate-keys: it removes what "
                    "they configure",
                )
        if "decommission" in kinds and targets_all:
            self.top.add(
                "targets",
                "a runbook that decommissions must not target every gateway: write "
                "`targets: limit` (a run then needs --limit) or list the gateways",
            )
