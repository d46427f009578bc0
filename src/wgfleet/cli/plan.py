"""The ``wgfleet plan`` and ``wgfleet render`` commands: show the plan, write files for review.

Both read the inventory and its allocations file and touch no gateway. They never write
the allocations file unless ``--save-allocations`` is given: without it, numbers for new
gateways or tunnels are shown (and marked pending) but not recorded, so a review never
changes the repository behind the user's back. Save them, review the diff, commit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wgfleet.allocations import load_allocations, save_allocations
from wgfleet.cli.options import add_inventory
from wgfleet.errors import BadInputError, ExitStatus, Problem
from wgfleet.inventory import load_fleet
from wgfleet.inventory_yaml import load_yaml
from wgfleet.plan import FleetPlan, GatewayPlan, plan_fleet
from wgfleet.render import RenderedGateway, render_fleet

ALLOCATIONS_FILE = "allocations.yaml"
PLAN_FORMAT_VERSION = 1


def _common(parser: argparse.ArgumentParser) -> None:
    add_inventory(parser)
    parser.add_argument(
        "--allocations",
        type=Path,
        metavar="FILE",
        help=f"allocations file (default: DIR/{ALLOCATIONS_FILE})",
    )
    parser.add_argument(
        "--limit",
        "-l",
        action="append",
        metavar="HOST",
        help="only these gateways (repeat or separate with commas; default: all)",
    )
    parser.add_argument(
        "--save-allocations",
        action="store_true",
        help="record new marks and point-to-point subnets in the allocations file "
        "(atomically); without it the file is never written",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``wgfleet plan`` and ``wgfleet render``."""
    plan = subparsers.add_parser(
        "plan",
        help="show every gateway's tunnels, ports, addresses and BGP sessions",
        description=(
            "Plan the fleet from the inventory and the allocations file and print, per "
            "gateway, its tunnels (interface, ListenPort, peer, peer endpoint, point-to-point "
            "addresses) and BGP sessions. Contacts no gateway."
        ),
    )
    _common(plan)
    plan.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table for people, json for programs (a stable document; default: %(default)s)",
    )
    plan.set_defaults(handler=run_plan)

    render = subparsers.add_parser(
        "render",
        help="write every file of every gateway to a directory for review",
        description=(
            "Render the WireGuard peer files and the BIRD config of every gateway into "
            "OUT/<gateway>/wireguard/<interface>.conf and OUT/<gateway>/bird/. No private "
            "key is ever written (there is none on this machine). Peer public keys not "
            "given with --public-keys are rendered as marked placeholders that wg refuses."
        ),
    )
    _common(render)
    render.add_argument(
        "--out", "-o", type=Path, required=True, metavar="DIR", help="output directory"
    )
    render.add_argument(
        "--templates",
        type=Path,
        metavar="DIR",
        help="your templates directory; a file there replaces the shipped template of the "
        "same name (wireguard/tunnel.conf.j2, bird/bird.conf.j2)",
    )
    render.add_argument(
        "--public-keys",
        type=Path,
        metavar="FILE",
        help="YAML mapping of gateway name to WireGuard public key",
    )
    render.set_defaults(handler=run_render)


def _plan(args: argparse.Namespace) -> tuple[FleetPlan, list[GatewayPlan], bool]:
    """Load, plan, save allocations if asked; return the plan, the selection, pending."""
    fleet = load_fleet(args.inventory)
    path: Path = args.allocations or args.inventory / ALLOCATIONS_FILE
    current = load_allocations(path, fleet.settings)
    plan, new = plan_fleet(fleet, current)
    pending = new != current
    if pending and args.save_allocations:
        save_allocations(path, new)
        print(f"wgfleet: allocations saved to {path}: review and commit it", file=sys.stderr)
        pending = False
    elif pending:
        print(
            f"wgfleet: new allocations are not in {path} yet; run again with "
            "--save-allocations to record them",
            file=sys.stderr,
        )
    return plan, _select(plan, args.limit), pending


def _select(plan: FleetPlan, limit: list[str] | None) -> list[GatewayPlan]:
    if not limit:
        return list(plan.gateways)
    names = [name.strip() for item in limit for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in {g.name for g in plan.gateways}]
    if unknown:
        raise BadInputError(
            [Problem("--limit", name, "", "no such gateway in the inventory") for name in unknown]
        )
    wanted = set(names)
    return [g for g in plan.gateways if g.name in wanted]


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan as a table or as JSON."""
    plan, selected, pending = _plan(args)
    if args.format == "json":
        print(json.dumps(plan_document(plan, selected, pending), indent=2))
    else:
        print(format_table(selected), end="")
    return int(ExitStatus.OK)


def run_render(args: argparse.Namespace) -> int:
    """Render the selected gateways' files under ``--out``."""
    plan, selected, _ = _plan(args)
    keys = _public_keys(args.public_keys) if args.public_keys else {}
    rendered = render_fleet(
        plan,
        keys,
        templates_dir=args.templates,
        allow_placeholders=True,
        names=[g.name for g in selected],
    )
    written = write_tree(args.out, rendered)
    missing = sorted({peer for r in rendered for peer in r.missing_keys})
    if missing:
        print(
            f"wgfleet: public keys not known for {', '.join(missing)}: their peer files hold "
            "a PLACEHOLDER (review only; wg refuses them)",
            file=sys.stderr,
        )
    print(f"rendered {len(written)} files for {len(rendered)} gateways into {args.out}")
    return int(ExitStatus.OK)


def _public_keys(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError([Problem(str(path), "", "", f"cannot read: {exc.strerror}")]) from exc
    data, problems = load_yaml(text, str(path))
    if problems:
        raise BadInputError(problems)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise BadInputError([Problem(str(path), "", "", "must map gateway names to public keys")])
    return data


def plan_document(plan: FleetPlan, gateways: list[GatewayPlan], pending: bool) -> dict[str, Any]:
    """Return the stable JSON document of ``wgfleet plan --format json``."""
    return {
        "format": "wgfleet-plan",
        "version": PLAN_FORMAT_VERSION,
        "topology": plan.settings.topology,
        "namespace": plan.settings.namespace,
        "allocations_pending": pending,
        "gateways": [_gateway_document(g) for g in gateways],
    }


def _gateway_document(g: GatewayPlan) -> dict[str, Any]:
    return {
        "name": g.name,
        "site": g.site.number,
        "index": g.gateway.index,
        "asn": g.site.asn,
        "role": g.role,
        "mark": g.mark,
        "router_id": str(g.router_id),
        "endpoint": str(g.gateway.endpoint),
        "tunnels": [
            {
                "interface": t.interface,
                "listen_port": t.listen_port,
                "peer": t.peer,
                "peer_site": t.peer_site,
                "peer_asn": t.peer_asn,
                "peer_endpoint": t.endpoint,
                "local6": str(t.local6),
                "peer6": str(t.peer6),
                "local4": str(t.local4),
                "peer4": str(t.peer4),
                "keepalive": t.keepalive,
                "mtu": t.mtu,
            }
            for t in g.tunnels
        ],
        "sessions": [
            {
                "name": s.name,
                "family": s.family,
                "interface": s.interface,
                "peer": s.peer,
                "local_address": str(s.local_address),
                "peer_address": str(s.peer_address),
                "local_asn": s.local_asn,
                "peer_asn": s.peer_asn,
            }
            for s in g.sessions
        ],
        "expected": {
            "interfaces": list(g.expected.interfaces),
            "sessions": list(g.expected.sessions),
            "ping": [str(a) for a in g.expected.ping],
            "routes": [
                {
                    "sites": list(r.sites),
                    "prefixes": [str(p) for p in r.prefixes],
                    "ecmp_width": r.ecmp_width,
                    "interfaces": list(r.interfaces),
                }
                for r in g.expected.routes
            ],
        },
    }


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_table(gateways: list[GatewayPlan]) -> str:
    """Return the human-readable plan: one block per gateway, two lines per tunnel."""
    out: list[str] = []
    for g in gateways:
        out.append(
            f"{g.name}  site {g.site.number}  AS {g.site.asn}  mark {g.mark}  "
            f"router id {g.router_id}  endpoint {g.gateway.endpoint}"
            + (f"  ({g.role})" if g.role != "mesh" else "")
        )
        rows: list[tuple[str, ...]] = [
            ("TUNNEL", "PORT", "PEER", "PEER ENDPOINT", "LOCAL", "PEER ADDRESS", "SESSION")
        ]
        sessions = {(s.interface, s.family): s.name for s in g.sessions}
        for t in g.tunnels:
            rows.append(
                (
                    t.interface,
                    str(t.listen_port),
                    t.peer,
                    t.endpoint,
                    str(t.local6),
                    str(t.peer6),
                    sessions[(t.interface, "ipv6")],
                )
            )
            rows.append(
                ("", "", "", "", str(t.local4), str(t.peer4), sessions[(t.interface, "ipv4")])
            )
        out.extend(_columns(rows) if g.tunnels else ["  no tunnels"])
        for r in g.expected.routes:
            sites = (
                f"site {r.sites[0]}"
                if len(r.sites) == 1
                else f"{len(r.sites)} spoke sites via hubs"
            )
            prefixes = " ".join(str(p) for p in r.prefixes[:4])
            if len(r.prefixes) > 4:
                prefixes += f" … ({len(r.prefixes)} prefixes)"
            out.append(
                f"  expect {sites}: {prefixes}  x{r.ecmp_width} via {' '.join(r.interfaces)}"
            )
        out.append("")
    return "\n".join(out)


def write_tree(out_dir: Path, rendered: Iterable[RenderedGateway]) -> list[Path]:
    """Write ``out_dir/<gateway>/<relative path>`` for review; return the files written.

    Stale ``*.conf`` files of an earlier render (a tunnel that is gone) are removed from
    the ``wireguard`` and ``bird`` directories of each rendered gateway, so the tree is
    exactly what the gateway would get.
    """
    written: list[Path] = []
    for gateway in rendered:
        if gateway.name in ("", ".", "..") or "/" in gateway.name:
            raise BadInputError(
                [Problem("hosts.yaml", gateway.name, "", "not usable as a directory name")]
            )
        root = out_dir / gateway.name
        keep = {root / f.relative_path for f in gateway.files}
        for sub in ("wireguard", "bird"):
            for stale in (root / sub).glob("*.conf") if (root / sub).is_dir() else ():
                if stale not in keep:
                    stale.unlink()
        for file in gateway.files:
            target = root / file.relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8")
            target.chmod(file.mode)
            written.append(target)
    return written
