"""The Markdown summary of a change record (``summary.md``), rendered from its journal.

For a person reviewing the change: what ran, when, on which gateway, with the diffs (never
a secret: the journal holds none), gate results, what was rolled back, and the difference
between the verifications before and after.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from wgfleet.runbook.record import resume_point

RESULTS = {"success": "success", "failed": "failed", "rolled-back": "rolled back",
           "interrupted": "interrupted"}  # fmt: skip


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


_HOST_RANK = {"ok": 0, "changed": 1, "unreachable": 2, "failed": 3}


def _host_cell(hosts: Sequence[Mapping[str, Any]], gateway: str, step: str) -> str:
    """A gateway's results of one step (a step may report several: rotate-keys says new
    key, new preshared keys, then the apply), worst status first, every message kept."""
    found = [e for e in hosts if str(e.get("gateway")) == gateway and str(e.get("step")) == step]
    if not found:
        return "not run"
    status = max((str(e.get("status", "?")) for e in found), key=lambda s: _HOST_RANK.get(s, -1))
    text = status.upper() if status in ("failed", "unreachable") else status
    seconds = _seconds(next((e.get("seconds") for e in reversed(found) if e.get("seconds")), None))
    text += f" ({seconds})" if seconds else ""
    messages = [str(e["message"]) for e in found if e.get("status") != "ok" and e.get("message")]
    if messages:
        text += ": " + "; ".join(dict.fromkeys(messages))
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
