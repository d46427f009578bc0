"""The topology picture: sites as boxes, gateways as nodes, tunnels as lines (inline SVG, pure).

Gateways sit on one circle, site by site with a gap between sites, so a tunnel (a chord
of the circle) never crosses a third gateway; each site is a box around its gateways,
labelled outside the circle. A tunnel is one line, coloured (and dashed, for readers who
cannot tell the colours apart) by the worst ``tunnel.*`` / ``bgp.*`` finding on either
end; a gateway's colour is its reachability, namespace and BIRD state. Lines and nodes
carry a ``<title>`` (a tooltip in browsers) and ``data-severity``. All text is escaped.
"""

from __future__ import annotations

import math
from html import escape

from wgfleet.findings import Severity
from wgfleet.report.view import SEVERITIES, RunView

# The colours of every report: matrix cells, lines, nodes, banners.
COLORS: dict[Severity, str] = {
    "ok": "#2da44e",
    "warning": "#e3b341",
    "critical": "#cf222e",
    "unknown": "#8c959f",
}
DASHES: dict[Severity, str] = {"ok": "", "warning": "", "critical": "10 5", "unknown": "3 4"}

_SLOT = 78  # arc length per gateway (and per gap between sites) on the circle
_RADIUS = 15  # of a gateway node
_PAD = 34  # between a gateway node's centre and its site box
_MARGIN = 100  # room for the labels outside the circle
_LEGEND_H = 40


def _fmt(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _anchor(dx: float) -> str:
    return "start" if dx > 0.3 else "end" if dx < -0.3 else "middle"


def _legend() -> list[str]:
    parts = ['<g class="legend" font-size="12">']
    x = 16
    for severity in reversed(SEVERITIES):
        dash = f' stroke-dasharray="{DASHES[severity]}"' if DASHES[severity] else ""
        parts.append(
            f'<line x1="{x}" y1="20" x2="{x + 28}" y2="20" '
            f'stroke="{COLORS[severity]}" stroke-width="4"{dash}/>'
            f'<text x="{x + 34}" y="24">{severity}</text>'
        )
        x += 110
    parts.append("</g>")
    return parts


def render_topology(view: RunView) -> str:
    """Return the topology picture of a run as one ``<svg>`` element.

    Args:
        view: The run's view (sites, gateways, links and their states).

    Returns:
        SVG markup, self-contained (no external references), sized to its content.
    """
    sites = [s for s in view.sites if s.gateways]
    slots = sum(len(s.gateways) + 1 for s in sites)
    radius = max(170.0, slots * _SLOT / (2 * math.pi))
    width = 2 * (radius + _MARGIN)
    height = 2 * (radius + _MARGIN) + _LEGEND_H - 40
    cx, cy = width / 2, _LEGEND_H + radius + _MARGIN - 20

    def point(slot: float, distance: float) -> tuple[float, float, float, float]:
        angle = -math.pi / 2 + 2 * math.pi * slot / max(slots, 1)
        dx, dy = math.cos(angle), math.sin(angle)
        return cx + distance * dx, cy + distance * dy, dx, dy

    nodes: dict[str, tuple[float, float, float, float]] = {}
    boxes: list[str] = []
    labels: list[str] = []
    slot = 0.5
    for site in sites:
        for name in site.gateways:
            nodes[name] = point(slot, radius)
            slot += 1
        xs = [nodes[n][0] for n in site.gateways]
        ys = [nodes[n][1] for n in site.gateways]
        left, top = min(xs) - _PAD, min(ys) - _PAD
        box_w, box_h = max(xs) - min(xs) + 2 * _PAD, max(ys) - min(ys) + 2 * _PAD
        asn = f" AS {site.asn}" if site.asn else ""
        boxes.append(
            f'<g class="site" data-site="{site.number}">'
            f'<rect x="{_fmt(left)}" y="{_fmt(top)}" width="{_fmt(box_w)}" '
            f'height="{_fmt(box_h)}" rx="14" fill="#f6f8fa" stroke="#57606a" '
            'stroke-width="1.5"/></g>'
        )
        labels.append(
            f'<text class="site-label" data-site="{site.number}" x="{_fmt(left + box_w / 2)}" '
            f'y="{_fmt(top - 8)}" text-anchor="middle" font-weight="bold" '
            f'paint-order="stroke" stroke="#ffffff" stroke-width="4">'
            f"{escape(site.name)}{escape(asn)}</text>"
        )
        slot += 1  # the gap between two sites

    lines: list[str] = []
    for link in view.links():
        if link.a not in nodes or link.b not in nodes:
            continue
        (x1, y1, _, _), (x2, y2, _, _) = nodes[link.a], nodes[link.b]
        dash = f' stroke-dasharray="{DASHES[link.state]}"' if DASHES[link.state] else ""
        ends = f"{link.a} {link.a_interface} — {link.b} {link.b_interface or '?'}"
        lines.append(
            f'<line class="tunnel sev-{link.state}" data-severity="{link.state}" '
            f'data-a="{escape(link.a)}" data-b="{escape(link.b)}" '
            f'x1="{_fmt(x1)}" y1="{_fmt(y1)}" x2="{_fmt(x2)}" y2="{_fmt(y2)}" '
            f'stroke="{COLORS[link.state]}" stroke-width="3"{dash}>'
            f"<title>{escape(ends)}: {link.state}</title></line>"
        )

    gateways: list[str] = []
    for name, (x, y, dx, dy) in nodes.items():
        gateway = view.gateway(name)
        state: Severity = gateway.state if gateway else "unknown"
        detail = "reachable" if gateway and gateway.reachable else "unreachable"
        if gateway and gateway.error:
            detail += f": {gateway.error}"
        tx, ty = x + dx * (_RADIUS + 6), y + dy * (_RADIUS + 6) + 4 + 8 * dy
        gateways.append(
            f'<g class="gateway sev-{state}" data-severity="{state}" '
            f'data-gateway="{escape(name)}">'
            f"<title>{escape(name)}: {state}, {escape(detail)}</title>"
            f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="{_RADIUS}" fill="{COLORS[state]}" '
            'stroke="#24292f" stroke-width="1.5"/>'
            f'<text x="{_fmt(tx)}" y="{_fmt(ty)}" text-anchor="{_anchor(dx)}" '
            'paint-order="stroke" stroke="#f6f8fa" stroke-width="4">'
            f"{escape(name)}</text></g>"
        )

    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" role="img" '
            f'aria-label="VPN topology" viewBox="0 0 {_fmt(width)} {_fmt(height)}" '
            f'width="{_fmt(width)}" height="{_fmt(height)}" '
            'font-family="system-ui, sans-serif" font-size="13">',
            "<title>VPN topology: sites, gateways and tunnels by state</title>",
            *_legend(),
            '<g class="sites">',
            *boxes,
            "</g>",
            '<g class="tunnels" stroke-linecap="round">',
            *lines,
            "</g>",
            '<g class="gateways">',
            *gateways,
            "</g>",
            '<g class="site-labels">',
            *labels,
            "</g>",
            "</svg>",
        ]
    )
