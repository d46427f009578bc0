"""The terminal summary: site x site matrix, problems by severity, one summary line (pure).

``render_terminal`` is what a person at a terminal reads; ``render_quiet`` is for cron:
empty when everything is healthy, otherwise only the problem lines and the summary line,
so cron mails exactly when something is wrong.
"""

from __future__ import annotations

from wgfleet.findings import Finding, Severity, VerifyRun
from wgfleet.report.view import LABELS, SEVERITIES, RunView, iso_time, not_run, printable

_ANSI: dict[Severity, str] = {
    "ok": "\033[32m",
    "warning": "\033[33m",
    "critical": "\033[1;31m",
    "unknown": "\033[35m",
}
_RESET = "\033[0m"
_HEADINGS: dict[Severity, str] = {
    "critical": "CRITICAL",
    "warning": "WARNING",
    "unknown": "UNKNOWN",
    "ok": "OK",
}


def _paint(text: str, severity: Severity, color: bool) -> str:
    return f"{_ANSI[severity]}{text}{_RESET}" if color else text


def cell_text(view: RunView, local: int, remote: int) -> tuple[str, Severity | None]:
    """Return a matrix cell's text (``ok 4/4``, ``WARN 2/4``, ``-`` on the diagonal)."""
    if local == remote:
        return "-", None
    pair = view.cell(local, remote)
    if pair is None:
        return ".", None
    return f"{LABELS[pair.severity]} {pair.paths_up}/{pair.paths_expected}", pair.severity


def render_matrix(view: RunView, *, color: bool = False) -> list[str]:
    """Return the site x site matrix as aligned lines (rows local, columns remote)."""
    corner = "local \\ remote"
    numbers = [site.number for site in view.sites]
    cells = {(a, b): cell_text(view, a, b) for a in numbers for b in numbers}
    width = max(
        [len(corner), *(len(site.name) for site in view.sites)]
        + [len(text) for text, _ in cells.values()]
    )
    header = corner.ljust(width) + "  " + "  ".join(s.name.ljust(width) for s in view.sites)
    lines = [header.rstrip()]
    for row in view.sites:
        parts = [row.name.ljust(width)]
        for column in view.sites:
            text, severity = cells[(row.number, column.number)]
            pad = " " * (width - len(text))
            parts.append((_paint(text, severity, color) if severity else text) + pad)
        lines.append("  ".join(parts).rstrip())
    return lines


def _finding_lines(findings: list[Finding]) -> list[str]:
    width_gw = max((len(f.gateway or "-") for f in findings), default=0)
    width_check = max((len(f.check) for f in findings), default=0)
    return [
        f"  {(f.gateway or '-').ljust(width_gw)}  {f.check.ljust(width_check)}  "
        f"{printable(f.object)}: {printable(f.message)}"
        for f in findings
    ]


def render_terminal(run: VerifyRun, *, color: bool = False, view: RunView | None = None) -> str:
    """Return the full terminal summary.

    Args:
        run: The verification run.
        color: Colour cells and headings with ANSI escapes (when writing to a terminal).
        view: The run's view when the caller already built one.

    Returns:
        Lines ending with a newline: header, matrix, problems by severity, summary line.
    """
    view = view or RunView(run)
    duration = max(0.0, run.finished - run.started)
    status = _paint(view.severity.upper(), view.severity, color)
    where = f", inventory {printable(run.inventory)}" if run.inventory else ""
    lines = [
        f"wgfleet verify: {status} at {iso_time(run.started)} ({duration:.1f} s{where})",
        "",
        *render_matrix(view, color=color),
        "  (rows: local site, columns: remote site; state and tunnel paths up/expected)",
    ]
    listed, collapsed = view.split_problems()
    for severity in SEVERITIES:
        count = sum(1 for f in view.problems if f.severity == severity)
        if count:
            group = [f for f in listed if f.severity == severity]
            heading = f"{_HEADINGS[severity]} ({count})"
            lines += ["", _paint(heading, severity, color), *_finding_lines(group)]
            if severity == "unknown":
                lines += [f"  {name}: {not_run(n)}" for name, n in collapsed.items()]
    missing = view.unreported_unreachable()
    if missing:
        lines += ["", _paint(f"UNREACHABLE ({len(missing)})", "critical", color)]
        lines += [f"  {g.name}: {printable(g.error) or 'unreachable'}" for g in missing]
    if view.healthy:
        lines += ["", f"all {view.counts['ok']} checks ok"]
    lines += ["", view.summary_line()]
    return "\n".join(lines) + "\n"


def render_quiet(run: VerifyRun, *, view: RunView | None = None) -> str:
    """Return nothing for a healthy run, else one line per problem and the summary line.

    Args:
        run: The verification run.
        view: The run's view when the caller already built one.

    Returns:
        ``""`` when nothing is flagged and every gateway answered; otherwise lines like
        ``CRIT V1-1 tunnel.exists wg5: …`` (worst first), then ``verify: …``.
    """
    view = view or RunView(run)
    if view.healthy:
        return ""
    listed, collapsed = view.split_problems()
    lines = [
        f"{LABELS[f.severity]} {f.gateway or '-'} {f.check} "
        f"{printable(f.object)}: {printable(f.message)}"
        for f in listed
    ]
    lines += [f"{LABELS['unknown']} {name}: {not_run(n)}" for name, n in collapsed.items()]
    lines += [
        f"UNREACHABLE {g.name}: {printable(g.error) or 'unreachable'}"
        for g in view.unreported_unreachable()
    ]
    lines.append(view.summary_line())
    return "\n".join(lines) + "\n"


def summary_line(run: VerifyRun) -> str:
    """Return ``verify: 6 gateways, 0 unreachable, 0 critical, 2 warnings``."""
    return RunView(run).summary_line()
