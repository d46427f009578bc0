"""The change record of a run: the JSON-lines journal, its Markdown summary, where to resume.

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
RESULTS = {"success": "success", "failed": "failed", "rolled-back": "rolled back",
           "interrupted": "interrupted"}  # fmt: skip
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


def render_summary(events: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown summary of a journal (``summary.md``): what ran, where, how it ended.

    Shows the runbook, change, owner, start and end, the result, where a stopped run
    stopped and what was undone, the ``before`` and ``after`` steps, per wave a table of
    gateways by step with the gates and their durations, the diffs, and what the last
    verification found that the first did not (and the reverse).
    """
    start = next((e for e in events if e.get("event") == "run-start"), {})
    last_start = max((i for i, e in enumerate(events) if e.get("event") == "run-start"), default=0)
    end = next((e for e in events[last_start:] if e.get("event") == "run-end"), None)
    result = RESULTS.get(str(end.get("result")), str(end.get("result"))) if end else "interrupted"
    title = f"# Change record: {start.get('runbook', '?')}"
    out = [title + (f" ({start['change']})" if start.get("change") else ""), ""]
    rows = [
        ("Runbook", f"{start.get('runbook', '?')} (`{start.get('file', '?')}`)"),
        ("Change", start.get("change") or "none given"),
        ("Owner", start.get("owner") or "unknown"),
        ("Started", _time(start.get("ts"))),
        ("Ended", _ended(start, end, events)),
        (
            "Result",
            f"**{result}**" + (" (check: nothing was changed)" if start.get("check") else ""),
        ),
        ("Waves", _waves_line(start)),
    ]
    out += ["| | |", "| --- | --- |", *(f"| {k} | {_cell(str(v))} |" for k, v in rows), ""]
    if result != "success":
        out += [_stopped(events, end, result), ""]
    out += _phase(events, "before", "Before the waves")
    numbers = sorted({int(e["wave"]) for e in events if e.get("event") == "wave-start"})
    for number in numbers:
        out += _wave(events, number)
    out += _phase(events, "after", "After the waves")
    out += _verification(events)
    return "\n".join(out).rstrip("\n") + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes and HTML escaped."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.replace("|", "\\|").split())


def _count(findings: Any) -> str:
    count = len(findings or [])
    return f"{count} finding{'s' if count != 1 else ''}"


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


def _parse_time(stamp: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(stamp))
    except ValueError:
        return None


def _time(stamp: Any) -> str:
    when = _parse_time(stamp)
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if when else "unknown"


def _ended(start: Mapping[str, Any], end: Mapping[str, Any] | None, events: Any) -> str:
    if end is None:
        last = events[-1] if events else {}
        return f"never (the journal stops at {_time(last.get('ts'))})"
    began, ended = _parse_time(start.get("ts")), _parse_time(end.get("ts"))
    took = f" (after {_seconds((ended - began).total_seconds())})" if began and ended else ""
    return _time(end.get("ts")) + took


def _waves_line(start: Mapping[str, Any]) -> str:
    waves = start.get("waves") or []
    gateways = sum(len(w) for w in waves)
    return f"{len(waves)} ({gateways} gateways, strategy {start.get('strategy', '?')})"


def _failure(events: Sequence[Mapping[str, Any]], wave: Any) -> Mapping[str, Any] | None:
    """The first failure of the stopped wave, else the last failure of the run."""
    bad = [
        e
        for e in events
        if e.get("status") in ("failed", "unreachable") or e.get("answer") == "refused"
    ]
    in_wave = [e for e in bad if wave is not None and e.get("wave") == wave]
    return in_wave[0] if in_wave else (bad[-1] if bad else None)


def _stopped(
    events: Sequence[Mapping[str, Any]], end: Mapping[str, Any] | None, result: str
) -> str:
    """``Stopped at wave N, step X: why. Undone: …`` for a run that did not succeed."""
    at = dict((end or {}).get("stopped_at") or {})
    point = resume_point(events)
    if "wave" not in at and point.state in ("in-wave", "failed", "rolled-back"):
        at["wave"] = point.next_wave_index + 1
    failure = _failure(events, at.get("wave"))
    if "step" not in at:
        latest = failure or next((e for e in reversed(events) if e.get("step")), {})
        at["step"] = latest.get("step")
    where = f"wave {at['wave']}" if at.get("wave") else "before the first wave"
    if point.state == "after" and not at.get("wave"):
        where = "after the last wave"
    text = f"**Stopped at {where}, step {at.get('step') or '(none)'}**"
    why = (end or {}).get("message") or (failure or {}).get("message")
    if why:
        text += f": {why}"
    undone = [
        f"{e.get('gateway', '?')}: {', '.join(e.get('undone') or []) or 'nothing to undo'}"
        + ("" if e.get("status") != "failed" else f" (ROLLBACK FAILED: {e.get('message', '')})")
        for e in events
        if e.get("event") == "rollback"
    ]
    if undone:
        return f"{text}.\n\nUndone: " + "; ".join(undone) + "."
    if result == "interrupted":
        return f"{text}.\n\nUndone: nothing yet; resume the run or roll it back."
    return f"{text}.\n\nUndone: nothing."


def _phase(events: Sequence[Mapping[str, Any]], phase: str, heading: str) -> list[str]:
    lines = _step_lines([e for e in events if e.get("phase") == phase])
    return [f"## {heading}", "", *lines, ""] if lines else []


def _step_lines(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per step; a ``step`` event right after its verify or pause event merges in."""
    entries: list[dict[str, Any]] = []
    for e in events:
        kind = e.get("event")
        last = entries[-1] if entries else {}
        if (
            kind == "step"
            and last.get("event") in ("verify", "pause")
            and (last.get("step") == e.get("step"))
        ):
            last.setdefault("name", e.get("name"))
            last["seconds"] = last.get("seconds", e.get("seconds"))
        elif kind in ("step", "verify", "pause"):
            entries.append(dict(e))
    lines = []
    for e in entries:
        if e["event"] == "verify":
            detail = f"{_count(e.get('findings'))}, require {e.get('require')}"
        else:
            detail = str(e.get("message") or "")
        seconds = _seconds(e.get("seconds"))
        status = e.get("status") or e.get("answer") or ""
        lines.append(
            f"- {e.get('step', '?')} {e.get('name') or e['event']}: **{status}**"
            + (f" ({seconds})" if seconds else "")
            + (f" — {' '.join(detail.split())}" if detail else "")
        )
    return lines


_WAVE_STATUS = {"ok": "done", "failed": "FAILED", "rolled-back": "rolled back"}


def _wave(events: Sequence[Mapping[str, Any]], number: int) -> list[str]:
    """A wave: gateways by step, its gates and checks, its diffs and what was rolled back."""
    mine = [e for e in events if e.get("wave") == number]
    begun = next((e for e in mine if e.get("event") == "wave-start"), {})
    ended = next((e for e in reversed(mine) if e.get("event") == "wave-end"), None)
    gateways = [str(g) for g in begun.get("gateways") or []]
    status = _WAVE_STATUS.get(str(ended.get("status")), "?") if ended else "did not finish"
    out = [f"## Wave {number}: {', '.join(gateways)} ({status})", ""]
    pauses = _step_lines([e for e in mine if e.get("event") == "pause"])
    out += [*pauses, ""] if pauses else []
    hosts = [e for e in mine if e.get("event") == "host"]
    steps = list(dict.fromkeys(str(e.get("step")) for e in hosts))
    if hosts:
        out.append("| Gateway | " + " | ".join(_cell(s) for s in steps) + " |")
        out.append("| --- |" + " --- |" * len(steps))
        for gateway in dict.fromkeys([*gateways, *(str(e.get("gateway")) for e in hosts)]):
            cells = [_host_cell(hosts, gateway, step) for step in steps]
            out.append(f"| {_cell(gateway)} | " + " | ".join(cells) + " |")
        out.append("")
    checks = [e for e in mine if e.get("event") in ("gate", "verify")]
    if checks:
        out += ["| Check | Result | Duration | Detail |", "| --- | --- | --- | --- |"]
        for e in checks:
            name = _cell(f"{e.get('step', '?')} {e.get('name') or ''}")
            detail = _cell(str(e.get("message") or ""))
            seconds = _seconds(e.get("seconds"))
            out.append(f"| {name} | **{e.get('status', '?')}** | {seconds} | {detail} |")
        out.append("")
    diffs: dict[tuple[str, str], list[str]] = {}  # one block per distinct diff of a step
    for e in hosts:
        if e.get("diff"):
            diffs.setdefault((str(e.get("step")), str(e["diff"])), []).append(str(e.get("gateway")))
    for (step, diff), owners in diffs.items():
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", diff)), default=0))
        out += [f"### Diff: {', '.join(owners)}, {step}", "", f"{fence}diff"]
        out += [diff.rstrip("\n"), fence, ""]
    rollbacks = [e for e in mine if e.get("event") == "rollback"]
    if rollbacks:
        out += ["### Rolled back", ""]
        for e in rollbacks:
            undone = ", ".join(e.get("undone") or []) or "nothing"
            note = f" ({e['message']})" if e.get("message") else ""
            out.append(
                f"- {e.get('gateway', '?')}: **{e.get('status', '?')}**, undone: {undone}{note}"
            )
        out.append("")
    return out


def _host_cell(hosts: Sequence[Mapping[str, Any]], gateway: str, step: str) -> str:
    found = [e for e in hosts if str(e.get("gateway")) == gateway and str(e.get("step")) == step]
    if not found:
        return "not run"
    e = found[-1]
    status = str(e.get("status", "?"))
    text = status.upper() if status in ("failed", "unreachable") else status
    seconds = _seconds(e.get("seconds"))
    text += f" ({seconds})" if seconds else ""
    if status != "ok" and e.get("message"):
        text += f": {e['message']}"
    return _cell(text)


_COLUMNS = ("severity", "gateway", "object", "message")
Findings = dict[tuple[str, str, str], Mapping[str, Any]]


def _problems(run: Mapping[str, Any]) -> Findings:
    """A verify event's findings above ok, by identity (check, gateway, object)."""
    found: Findings = {}
    for f in run.get("findings") or []:
        if f.get("severity", "ok") != "ok":
            found[(str(f.get("check", "")), str(f.get("gateway", "")), str(f.get("object")))] = f
    return found


def _verification(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the last verification found that the first did not, and the reverse."""
    runs = [e for e in events if e.get("event") == "verify"]
    if len(runs) < 2:
        return []
    before, after = _problems(runs[0]), _problems(runs[-1])
    out = [
        "## Verification: first and last",
        "",
        f"From {runs[0].get('step', '?')} ({_count(before)}) to "
        f"{runs[-1].get('step', '?')} ({_count(after)}).",
        "",
    ]
    changed: list[Mapping[str, Any]] = [
        {**after[k], "severity": f"{before[k].get('severity')} → {after[k].get('severity')}"}
        for k in after
        if k in before and before[k].get("severity") != after[k].get("severity")
    ]
    changes: list[tuple[str, list[Mapping[str, Any]]]] = [
        ("Appeared", [after[k] for k in after if k not in before]),
        ("Disappeared", [before[k] for k in before if k not in after]),
        ("Changed severity", changed),
    ]
    if not any(found for _, found in changes):
        return [*out, "No difference.", ""]
    for label, found in changes:
        if found:
            out += [f"### {label}", "", "| Severity | Gateway | Object | Message |"]
            out.append("| --- | --- | --- | --- |")
            for f in found:
                out.append("| " + " | ".join(_cell(str(f.get(k, ""))) for k in _COLUMNS) + " |")
            out.append("")
    return out
