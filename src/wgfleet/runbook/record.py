"""The change record of a run: the JSON-lines journal and where to resume (summary: summary.py).

A run writes ``changes/<UTC time>-<runbook>/journal.jsonl`` (:func:`record_directory`),
one JSON object per event, flushed and fsynced before the engine goes on, so a lost
control machine leaves a journal that ends at the last thing that happened. Every event
has ``ts`` (UTC, ISO 8601, ``…Z``) and ``event``; the engine adds these fields (waves are
numbered from 1, steps are named by their title, ``wave[1] (gate)``)::

    run-start   runbook file change owner check strategy targets waves=[[gateway…]…]
                (+ resumed_from: the wave number a resumed run starts at)
    step        phase step name status=ok|changed|failed|skipped [wave seconds message]
    host        wave step gateway status=ok|changed|failed|unreachable|skipped
                [seconds message diff]
    gate        wave step name status=passed|failed seconds [message]
    verify      phase step require status=passed|failed [wave seconds]
                findings=[{severity gateway object message [check]}]  (problems only)
    pause       phase step message answer=yes|--yes|refused
    wave-start  wave gateways
    wave-end    wave status=ok|failed|rolled-back
    rollback    wave gateway status=ok|failed undone=[what was restored…] [message]
    rotated     wave keys=[gateway…] | psk={gateway: [interface…]}  (keys replaced, not
                the keys: what a rollback of the wave puts back)
    fallback    wave status=installed|removed gateways=[…] failed=[…]  (routes via the site
                partners while the wave changes its gateways)
    run-end     result=success|failed|rolled-back|interrupted [message]
                [stopped_at={wave step}]

Nothing secret is ever written: :func:`redact` drops fields named like private or
preshared keys and refuses a string holding a ``PrivateKey =``/``PresharedKey =`` line.
Only ``os``, ``pathlib`` and ``json`` touch files here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from wgfleet.errors import BadInputError, Problem, WgfleetError

ResumeState = Literal[
    "not-started", "before", "in-wave", "failed", "rolled-back", "between-waves", "after",
    "finished",
]  # fmt: skip
_SECRET_LINE = re.compile(r"^[ \t+\-]*(PrivateKey|PresharedKey)[ \t]*=", re.IGNORECASE | re.M)


class SecretInRecordError(WgfleetError):
    """Something about to be written to a change record holds a secret; nothing was written."""


def redact(obj: Any, path: str = "") -> Any:
    """Return ``obj`` without secret fields, for the change record.

    Mapping keys named like ``*private*key*`` or ``*preshared*`` (any case, any
    separators) are dropped with their values; tuples become lists.

    Raises:
        SecretInRecordError: A string holds a ``PrivateKey =`` or ``PresharedKey =`` line;
            the message names the field, never the value.
    """
    if isinstance(obj, Mapping):
        kept: dict[Any, Any] = {}
        for key, value in obj.items():
            name = re.sub(r"[^a-z]", "", str(key).lower())
            if re.search(r"private.*key", name) or "preshared" in name:
                continue
            kept[key] = redact(value, f"{path}.{key}" if path else str(key))
        return kept
    if isinstance(obj, list | tuple):
        return [redact(item, f"{path}[{index}]") for index, item in enumerate(obj)]
    if isinstance(obj, str) and _SECRET_LINE.search(obj):
        raise SecretInRecordError(
            f"refusing to record {path or 'a value'}: it holds a PrivateKey/PresharedKey line "
            "(keys never leave the gateway); this is a bug in wgfleet, please report it"
        )
    return obj


def _utc_now() -> datetime:
    return datetime.now(UTC)


def record_directory(root: Path, runbook: str, started: datetime) -> Path:
    """``<root>/<UTC time>-<runbook>``, e.g. ``changes/20250102T030405Z-rollout``."""
    return root / f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{runbook}"


class Journal:
    """An append-only JSON-lines journal; each event is on disk before :meth:`write` returns."""

    def __init__(self, path: Path, clock: Callable[[], datetime] = _utc_now) -> None:
        """Open (create, with its directory) the journal at ``path``; the clock gives UTC time."""
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
            # The new directory entry must survive a crash as well as the data.
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event (redacted), flush and fsync it; return what was written."""
        stamp = self._clock().astimezone(UTC).isoformat(timespec="milliseconds")
        record = {"ts": stamp.replace("+00:00", "Z"), "event": event, **redact(fields)}
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, line.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        written: dict[str, Any] = json.loads(line)
        return written


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Read a journal; a last line cut off by a crash is left out.

    Raises:
        BadInputError: A line other than the last is not a JSON object.
    """
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # no newline after it: the write was cut off
                break
            raise BadInputError(
                [Problem(str(path), f"line {number}", "", f"not a JSON object: {exc}")]
            ) from exc
        if not isinstance(event, dict):
            raise BadInputError([Problem(str(path), f"line {number}", "", "not a JSON object")])
        events.append(event)
    return events


class ResumePoint(NamedTuple):
    """Where an interrupted run stopped.

    Attributes:
        next_wave_index: Position in the list of waves (``Wave.number - 1``) to resume at:
            the wave that was running, failed or was rolled back, else the next one; the
            number of waves when only the ``after`` steps are left or the run finished.
        state: ``not-started`` (no run in the journal), ``before`` (stopped before the
            first wave), ``in-wave`` (a wave started and never ended: redo or roll it back),
            ``failed`` (a wave failed and was left as is), ``rolled-back``,
            ``between-waves``, ``after`` (every wave done), ``finished`` (the run succeeded).
    """

    next_wave_index: int
    state: ResumeState


def resume_point(events: Sequence[Mapping[str, Any]]) -> ResumePoint:
    """Tell where the run recorded in ``events`` stopped, and where it would resume."""
    starts = [e for e in events if e.get("event") == "run-start"]
    if not starts:
        return ResumePoint(0, "not-started")
    total = max((len(s.get("waves") or []) for s in starts), default=0)
    last_start = max(i for i, e in enumerate(events) if e.get("event") == "run-start")
    end = next((e for e in events[last_start:] if e.get("event") == "run-end"), None)
    if end is not None and end.get("result") == "success":
        return ResumePoint(total, "finished")
    wave_events = [e for e in events if e.get("event") in ("wave-start", "wave-end")]
    if not wave_events:
        return ResumePoint(0, "before")
    last = wave_events[-1]
    index = int(last.get("wave", 1)) - 1
    if last["event"] == "wave-start":
        return ResumePoint(index, "in-wave")
    status = last.get("status")
    if status in ("failed", "rolled-back"):
        return ResumePoint(index, "rolled-back" if status == "rolled-back" else "failed")
    if total and index + 1 >= total:
        return ResumePoint(total, "after")
    return ResumePoint(index + 1, "between-waves")
