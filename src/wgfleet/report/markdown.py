"""The Markdown report: status, site x site matrix table, findings table (pure).

Every value from a run passes through :func:`md_escape`, so a message cannot break a
table row, start a link or inject HTML into a renderer that allows inline HTML.
"""

from __future__ import annotations

from wgfleet.findings import VerifyRun
from wgfleet.report.view import LABELS, RunView, iso_time, not_run, printable

_SPECIAL = "\\`*_[]<>|#!~"
_ICONS = {"ok": "✅", "warning": "⚠️", "critical": "❌", "unknown": "❔"}


def md_escape(value: object) -> str:
    """Escape text for a Markdown table cell: one line, no markup, no inline HTML."""
    text = printable(str(value)).replace("&", "&amp;")
    return "".join(f"\\{ch}" if ch in _SPECIAL else ch for ch in text)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _matrix(view: RunView) -> list[str]:
    header = ["local \\\\ remote", *(f"**{md_escape(s.name)}**" for s in view.sites)]
    lines = [_row(header), _row(["---"] * len(header))]
    for row in view.sites:
        cells = [f"**{md_escape(row.name)}**"]
        for column in view.sites:
            pair = view.cell(row.number, column.number)
            if row.number == column.number:
                cells.append("—")
            elif pair is None:
                cells.append("·")
            else:
                text = f"{_ICONS[pair.severity]} {LABELS[pair.severity]} "
                text += f"{pair.paths_up}/{pair.paths_expected}"
                if pair.loss_percent:
                    text += f", loss {pair.loss_percent:g}%"
                cells.append(text)
        lines.append(_row(cells))
    return lines


def _value(value: float | str | None) -> str:
    if value is None:
        return ""
    return md_escape(f"{value:g}" if isinstance(value, float) else value)


def render_markdown(run: VerifyRun, *, view: RunView | None = None) -> str:
    """Return the Markdown report.

    Args:
        run: The verification run.
        view: The run's view when the caller already built one.

    Returns:
        A document with the status, the matrix table, the problem findings table and
        the unreachable gateways.
    """
    view = view or RunView(run)
    duration = max(0.0, run.finished - run.started)
    lines = [
        f"# wgfleet verify: {_ICONS[view.severity]} {view.severity.upper()}",
        "",
        f"**{md_escape(view.summary_line())}**",
        "",
        f"- started: {iso_time(run.started)}, duration {duration:.1f} s",
    ]
    if run.inventory:
        lines.append(f"- inventory: {md_escape(run.inventory)}")
    lines += [
        "",
        "## Site matrix",
        "",
        "Rows: local site, columns: remote site; state and tunnel paths up/expected.",
        "",
        *_matrix(view),
        "",
        "## Findings",
        "",
    ]
    if view.problems:
        head = ["Severity", "Gateway", "Check", "Object", "Message", "Value", "Expected"]
        lines += [_row(head), _row(["---"] * len(head))]
        listed, collapsed = view.split_problems()
        for f in listed:
            lines.append(
                _row(
                    [
                        f"{_ICONS[f.severity]} {f.severity}",
                        md_escape(f.gateway or "-"),
                        f"`{f.check}`",
                        md_escape(f.object),
                        md_escape(f.message),
                        _value(f.value),
                        _value(f.expected),
                    ]
                )
            )
        for name, count in collapsed.items():
            cells = [f"{_ICONS['unknown']} unknown", md_escape(name), "", "", not_run(count)]
            lines.append(_row([*cells, "", ""]))
        lines.append("")
    lines.append(f"{view.counts['ok']} checks ok.")
    missing = view.unreported_unreachable()
    if missing:
        lines += ["", "## Unreachable gateways", ""]
        lines += [
            f"- **{md_escape(g.name)}**: {md_escape(g.error or 'unreachable')}" for g in missing
        ]
    return "\n".join(lines) + "\n"
