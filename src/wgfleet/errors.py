"""The exception root of wgfleet and the process exit codes derived from it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ExitStatus(enum.IntEnum):
    """Process exit codes; documented in the README, mapped from exceptions in one place."""

    OK = 0
    FINDINGS_WARNING = 1
    FINDINGS_CRITICAL = 2
    UNREACHABLE = 3
    FAILED = 4
    BAD_INPUT = 64
    ENVIRONMENT = 69
    INTERRUPTED = 130


class WgfleetError(Exception):
    """Root of every error wgfleet raises on purpose; the message says what to do."""

    exit_status: ExitStatus = ExitStatus.FAILED


@dataclass(frozen=True)
class Problem:
    """One problem found in user input, located by file, object (host/group/step) and field."""

    file: str
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        location = ": ".join(part for part in (self.file, self.where, self.field) if part)
        return f"{location}: {self.message}" if location else self.message


@dataclass
class BadInputError(WgfleetError):
    """User input (inventory, runbook, CLI arguments) is invalid; nothing was touched."""

    problems: list[Problem] = field(default_factory=list)
    exit_status: ExitStatus = ExitStatus.BAD_INPUT

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} found, nothing was changed:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class EnvironmentProblemError(WgfleetError):
    """The control machine lacks something (a tool, root, a free port)."""

    exit_status = ExitStatus.ENVIRONMENT
