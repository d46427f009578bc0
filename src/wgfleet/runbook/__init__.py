"""The runbook model: what a validated runbook is, as frozen dataclasses (pure data).

``schema`` reads runbooks from YAML into these, ``waves`` plans the waves of a run,
``record`` keeps the change record, and the engine runs them. Step arguments are one
frozen dataclass per kind (:class:`VerifyArgs`, :class:`PauseArgs`, :class:`ApplyArgs`,
:class:`GateArgs`, :class:`RotateKeysArgs`, :class:`DecommissionArgs`), so the engine can
``match step.args`` and never reads raw YAML. The format is documented in
``docs/runbooks.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

Strategy = Literal["one-gateway-per-site", "serial", "batch", "all"]
OnFailure = Literal["rollback", "stop"]
Phase = Literal["before", "wave", "after"]
StepKind = Literal["verify", "pause", "apply", "gate", "rotate-keys", "decommission"]
Require = Literal["healthy", "no-critical", "any"]
ApplyPart = Literal["keys", "namespace", "tunnels", "bird"]

STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
STEP_KINDS: tuple[StepKind, ...] = get_args(StepKind)
APPLY_PARTS: tuple[ApplyPart, ...] = get_args(ApplyPart)
WAVE_ONLY: frozenset[str] = frozenset({"apply", "gate", "rotate-keys", "decommission"})
CHANGING: frozenset[str] = frozenset({"apply", "rotate-keys", "decommission"})


@dataclass(frozen=True)
class Timeouts:
    """Default timeouts in seconds: for every step, and for every gate."""

    step: float = 300.0
    gate: float = 120.0


@dataclass(frozen=True)
class VerifyArgs:
    """``verify``: what the verification must find, and how long to keep polling for it."""

    require: Require = "healthy"
    wait: float = 0.0


@dataclass(frozen=True)
class PauseArgs:
    """``pause``: the question a person confirms by typing ``yes``."""

    message: str

    def render(
        self, *, waves: int, gateways: int, wave: int | None = None, hosts: Sequence[str] = ()
    ) -> str:
        """Fill in ``{waves}``, ``{gateways}``, ``{wave}`` and ``{hosts}`` (validated names)."""
        return self.message.format(
            waves=waves,
            gateways=gateways,
            wave="" if wave is None else wave,
            hosts=", ".join(hosts),
        )


@dataclass(frozen=True)
class ApplyArgs:
    """``apply``: the parts to converge, in the canonical order ``keys namespace tunnels bird``."""

    parts: tuple[ApplyPart, ...] = APPLY_PARTS


@dataclass(frozen=True)
class GateArgs:
    """``gate``: conditions polled until all hold (``None``: not checked) or ``timeout`` passes.

    ``timeout`` is the one written on the step; :meth:`Runbook.timeout_for` resolves it.
    """

    sessions: Literal["established"] | None = None
    ecmp: Literal["restored"] | None = None
    handshakes: Literal["fresh"] | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class RotateKeysArgs:
    """``rotate-keys``: also rotate the per-pair preshared keys when ``preshared``."""

    preshared: bool = False


@dataclass(frozen=True)
class DecommissionArgs:
    """``decommission``: no arguments."""


StepArgs = VerifyArgs | PauseArgs | ApplyArgs | GateArgs | RotateKeysArgs | DecommissionArgs


@dataclass(frozen=True)
class Step:
    """One step of a runbook.

    Attributes:
        kind: The step kind (``apply``…).
        args: Its parsed arguments, one dataclass per kind.
        name: The label for the record (``name:`` or one derived from kind and arguments).
        timeout: The ``timeout`` written on the step, ``None`` when absent (see
            :meth:`Runbook.timeout_for`).
        where: Its position, ``before[0]``, ``wave[1]``, ``after[0]`` (0-based).
    """

    kind: StepKind
    args: StepArgs
    name: str
    timeout: float | None
    where: str

    @property
    def phase(self) -> Phase:
        """``before``, ``wave`` or ``after``."""
        return cast(Phase, self.where.split("[", 1)[0])

    @property
    def title(self) -> str:
        """``wave[1] (gate)``: how problems and the change record name the step."""
        return f"{self.where} ({self.kind})"

    @property
    def changes(self) -> bool:
        """Whether the step changes gateways (apply, rotate-keys, decommission)."""
        return self.kind in CHANGING


@dataclass(frozen=True)
class Runbook:
    """A validated runbook.

    Attributes:
        targets: Host and group names (like ``--limit``); ``None`` for every gateway.
        limit_required: ``targets: limit``: the runbook names no gateways itself and a run
            needs ``--limit`` (``targets`` is then ``None``).
        batch_size: Gateways per wave, set only with ``strategy: batch``.
        wave: The per-wave steps; empty for a runbook of only ``before``/``after`` steps,
            which plans no waves.
        file: The path it was read from, as given.
    """

    name: str
    description: str
    change: str | None
    targets: tuple[str, ...] | None
    strategy: Strategy
    batch_size: int | None
    on_failure: OnFailure
    max_failures: int
    timeouts: Timeouts
    before: tuple[Step, ...]
    wave: tuple[Step, ...]
    after: tuple[Step, ...]
    file: str
    limit_required: bool = False

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step, in order: before, wave, after."""
        return (*self.before, *self.wave, *self.after)

    @property
    def changes_gateways(self) -> bool:
        """Whether any step changes gateways (read-only runbooks need no locks)."""
        return any(step.changes for step in self.steps)

    def timeout_for(self, step: Step) -> float | None:
        """The step's timeout in seconds, defaults resolved.

        A gate falls back to ``timeouts.gate``, a pause waits for its person without limit
        unless it has its own ``timeout``, every other step falls back to ``timeouts.step``.
        """
        if step.timeout is not None or step.kind == "pause":
            return step.timeout
        return self.timeouts.gate if step.kind == "gate" else self.timeouts.step
