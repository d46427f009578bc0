"""The HTML report: one self-contained page (inline CSS and SVG, no script, no fetches; pure).

The page shows the overall status, the site x site matrix (every cell has a ``sev-*``
class and a ``data-severity`` attribute), the problem findings, unreachable gateways,
the topology picture and a per-gateway summary. Every value from the run is escaped with
:func:`html.escape`, and a Content-Security-Policy forbids scripts and remote loads, so
even a message quoting hostile output cannot run code in a browser.
"""

from __future__ import annotations

from html import escape

from wgfleet.findings import PairStatus, Severity, VerifyRun
from wgfleet.report.svg import COLORS, render_topology
from wgfleet.report.view import (
    LABELS,
    SCHEMA,
    GatewayView,
    RunView,
    iso_time,
    not_run,
    printable,
)

_TEXT: dict[Severity, str] = {
    "ok": "#ffffff",
    "warning": "#1f2328",
    "critical": "#ffffff",
    "unknown": "#1f2328",
}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _css() -> str:
    severity_rules = "\n".join(
        f".sev-{s} {{ background: {COLORS[s]}; color: {_TEXT[s]}; }}" for s in COLORS
    )
    return f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1f2328; background: #ffffff; }}
header {{ padding: 16px 24px; }}
header h1 {{ margin: 0 0 4px 0; font-size: 24px; }}
header p {{ margin: 2px 0; }}
main {{ padding: 0 24px 24px 24px; }}
footer {{ padding: 0 24px 16px 24px; }}
h2 {{ font-size: 18px; margin: 24px 0 8px 0; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d0d7de; padding: 6px 10px; text-align: left;
  vertical-align: top; }}
thead th {{ background: #f6f8fa; }}
table.matrix td {{ min-width: 110px; text-align: center; font-weight: 600; }}
table.matrix th, table.matrix td {{ vertical-align: middle; }}
table.matrix td small {{ display: block; font-weight: 400; }}
table.matrix td.self, table.matrix td.none {{ background: #f6f8fa; color: #57606a; }}
table.findings td.severity {{ font-weight: 600; white-space: nowrap; }}
.note {{ color: #57606a; font-size: 13px; }}
svg.topology {{ max-width: 100%; height: auto; border: 1px solid #d0d7de;
  border-radius: 6px; }}
{severity_rules}
"""


def _cell(view: RunView, local: int, remote: int) -> str:
    if local == remote:
        return '<td class="self" data-severity="none">—</td>'
    pair: PairStatus | None = view.cell(local, remote)
    if pair is None:
        return '<td class="none" data-severity="none" title="not a planned pair">·</td>'
    details = [f"{pair.paths_up}/{pair.paths_expected} paths"]
    if pair.loss_percent is not None:
        details.append(f"loss {pair.loss_percent:g}%")
    if pair.rtt_avg_ms is not None:
        details.append(f"{pair.rtt_avg_ms:.1f} ms")
    title = f"{view.site_name(local)} → {view.site_name(remote)}: {pair.severity}"
    return (
        f'<td class="sev-{pair.severity}" data-severity="{pair.severity}" '
        f'data-local="{local}" data-remote="{remote}" title="{escape(title)}">'
        f"{LABELS[pair.severity]}<small>{escape(', '.join(details))}</small></td>"
    )


def _matrix(view: RunView) -> list[str]:
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in view.sites)
    rows = [
        f'<tr><th scope="row">{escape(row.name)}</th>'
        + "".join(_cell(view, row.number, column.number) for column in view.sites)
        + "</tr>"
        for row in view.sites
    ]
    return [
        '<table class="matrix" id="site-matrix">',
        f'<thead><tr><th scope="col">local \\ remote</th>{head}</tr></thead>',
        "<tbody>",
        *rows,
        "</tbody></table>",
    ]


def _value(value: float | str | None) -> str:
    if value is None:
        return ""
    return escape(f"{value:g}" if isinstance(value, float) else str(value))


def _findings(view: RunView) -> list[str]:
    if not view.problems:
        return [f'<p class="ok-note">Nothing flagged: all {view.counts["ok"]} checks ok.</p>']
    head = ("Severity", "Gateway", "Check", "Object", "Message", "Value", "Expected")
    listed, collapsed = view.split_problems()
    rows = [
        f'<tr data-severity="{f.severity}">'
        f'<td class="severity sev-{f.severity}">{f.severity}</td>'
        f"<td>{escape(f.gateway or '-')}</td><td><code>{escape(f.check)}</code></td>"
        f"<td>{escape(printable(f.object))}</td><td>{escape(printable(f.message))}</td>"
        f"<td>{_value(f.value)}</td><td>{_value(f.expected)}</td></tr>"
        for f in listed
    ]
    rows += [
        '<tr data-severity="unknown"><td class="severity sev-unknown">unknown</td>'
        f"<td>{escape(name)}</td><td></td><td></td><td>{not_run(count)}</td><td></td><td></td></tr>"
        for name, count in collapsed.items()
    ]
    return [
        '<table class="findings" id="findings">',
        "<thead><tr>" + "".join(f'<th scope="col">{h}</th>' for h in head) + "</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody></table>",
        f'<p class="note">{view.counts["ok"]} further checks ok.</p>',
    ]


def _gateway_row(gateway: GatewayView) -> str:
    planned_tunnels = [t for t in gateway.tunnels if t.planned]
    planned_sessions = [s for s in gateway.sessions if s.planned]
    tunnels_ok = sum(1 for t in planned_tunnels if t.state == "ok")
    sessions_up = sum(1 for s in planned_sessions if s.established)
    extra = len(gateway.tunnels) - len(planned_tunnels)
    extra += len(gateway.sessions) - len(planned_sessions)
    reach = "yes" if gateway.reachable else "no"
    error = printable(gateway.error or gateway.bird_error)
    return (
        f'<tr data-severity="{gateway.worst}"><th scope="row">{escape(gateway.name)}</th>'
        f"<td>{gateway.site if gateway.site is not None else ''}</td>"
        f'<td class="sev-{gateway.state}">{reach}</td>'
        f"<td>{tunnels_ok}/{len(planned_tunnels)}</td>"
        f"<td>{sessions_up}/{len(planned_sessions)}</td><td>{extra}</td>"
        f'<td class="sev-{gateway.worst}">{gateway.worst}</td><td>{escape(error)}</td></tr>'
    )


def _gateways(view: RunView) -> list[str]:
    head = ("Gateway", "Site", "Reachable", "Tunnels ok", "BGP up", "Extra", "Worst", "Error")
    return [
        '<table class="gateways" id="gateways">',
        "<thead><tr>" + "".join(f'<th scope="col">{h}</th>' for h in head) + "</tr></thead>",
        "<tbody>",
        *(_gateway_row(g) for g in view.gateways),
        "</tbody></table>",
    ]


def render_html(run: VerifyRun, *, view: RunView | None = None) -> str:
    """Return the HTML report: one page with no external resources.

    Args:
        run: The verification run.
        view: The run's view when the caller already built one.

    Returns:
        A complete HTML5 document.
    """
    view = view or RunView(run)
    status = view.severity
    duration = max(0.0, run.finished - run.started)
    started = iso_time(run.started)
    inventory = f", inventory {escape(run.inventory)}" if run.inventory else ""
    missing = view.unreported_unreachable()
    unreachable: list[str] = []
    if missing:
        unreachable = [
            '<section id="unreachable"><h2>Unreachable gateways</h2><ul>',
            *(
                f"<li><strong>{escape(g.name)}</strong>: "
                f"{escape(printable(g.error) or 'unreachable')}</li>"
                for g in missing
            ),
            "</ul></section>",
        ]
    body = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>wgfleet verify: {status.upper()} ({started})</title>",
        f"<style>{_css()}</style>",
        "</head>",
        "<body>",
        f'<header class="status sev-{status}" data-severity="{status}">',
        f"<h1>wgfleet verify: {status.upper()}</h1>",
        f"<p><strong>{escape(view.summary_line())}</strong></p>",
        f"<p>started {started}, duration {duration:.1f} s{inventory}</p>",
        "</header>",
        "<main>",
        '<section id="matrix"><h2>Site &times; site matrix</h2>',
        '<p class="note">Rows: local site, columns: remote site. Each cell: the worst state '
        "of the pair, tunnel paths up/expected, loss and round-trip time.</p>",
        *_matrix(view),
        "</section>",
        '<section id="problems"><h2>Findings</h2>',
        *_findings(view),
        "</section>",
        *unreachable,
        '<section id="topology"><h2>Topology</h2>',
        '<p class="note">Lines: tunnels, coloured by the worst tunnel and BGP finding on '
        "either end. Nodes: gateways, coloured by reachability, namespace and BIRD.</p>",
        render_topology(view),
        "</section>",
        '<section id="gateway-summary"><h2>Gateways</h2>',
        *_gateways(view),
        "</section>",
        "</main>",
        f'<footer class="note">wgfleet, report schema {SCHEMA}</footer>',
        "</body>",
        "</html>",
    ]
    return "\n".join(body) + "\n"
