"""`wgfleet lab up | down | status | reboot`: the built-in fleet of real gateways."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from wgfleet.errors import ExitStatus


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lab`` command group."""
    lab = subparsers.add_parser(
        "lab",
        help="run a lab fleet of real gateways on this machine (needs root)",
        description=(
            "A fleet of real Linux gateways on this machine: each one has its own network, "
            "PID, mount and UTS namespaces, its own sshd and host key, reachable on "
            "127.77.<site>.<gateway>:PORT. Sites are LAN namespaces with a host to ping."
        ),
    )
    commands = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--name", default="main", help="lab instance name (default: %(default)s)"
        )
        parser.add_argument(
            "--state-root",
            type=Path,
            default=Path("/var/lib/wgfleet-lab"),
            help="where labs keep their state (default: %(default)s)",
        )

    up = commands.add_parser(
        "up",
        help="bring the lab up (idempotent) and write its inventory and known_hosts",
        description="Bring the lab up; running it again on a lab that is up changes nothing.",
    )
    common(up)
    up.add_argument("--sites", type=int, default=3, help="number of sites (default: 3)")
    up.add_argument("--gateways", type=int, default=2, help="gateways per site (default: 2)")
    up.add_argument(
        "--port", type=int, default=2222, help="SSH port of every gateway (default: 2222)"
    )
    up.set_defaults(handler=_up)

    down = commands.add_parser(
        "down",
        help="remove every namespace, process, mount and file the lab made",
        description="Tear the lab down, also after a partial or failed `up`.",
    )
    common(down)
    down.set_defaults(handler=_down)

    status = commands.add_parser(
        "status",
        help="show each gateway's power state and SSH reachability",
        description="Probe every gateway over SSH with strict host-key checking.",
    )
    common(status)
    status.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    status.set_defaults(handler=_status)

    reboot = commands.add_parser(
        "reboot",
        help="simulate a reboot of one gateway (/run, tunnels, daemons gone; /etc kept)",
        description="Power-cycle one gateway and wait until its sshd answers again.",
    )
    common(reboot)
    reboot.add_argument("gateway", help="gateway name, e.g. V1-1")
    reboot.set_defaults(handler=_reboot)

    ssh = commands.add_parser(
        "ssh",
        help="cut or restore SSH to one gateway (it keeps forwarding: a management outage)",
        description="Make one gateway unreachable over SSH, or reachable again.",
    )
    common(ssh)
    ssh.add_argument("gateway", help="gateway name, e.g. V1-1")
    ssh.add_argument("state", choices=("on", "off"), help="on: reachable; off: connections close")
    ssh.set_defaults(handler=_ssh)


def _ssh(args: argparse.Namespace) -> int:
    from wgfleet.lab.manager import set_ssh

    set_ssh(args.name, args.gateway, args.state == "on", args.state_root)
    print(f"SSH to {args.gateway} is {args.state}")
    return int(ExitStatus.OK)


def _up(args: argparse.Namespace) -> int:
    from wgfleet.lab.manager import up
    from wgfleet.lab.topology import build_topology

    topo = build_topology(
        args.sites, args.gateways, name=args.name, port=args.port, state_root=args.state_root
    )
    started = time.monotonic()
    up(topo)
    elapsed = time.monotonic() - started
    print(
        f"lab {topo.name!r} is up: {len(topo.sites)} sites x "
        f"{len(topo.gateways) // len(topo.sites)} gateways in {elapsed:.1f} s\n"
        f"  inventory:   {topo.state_dir / 'inventory'}\n"
        f"  known_hosts: {topo.state_dir / 'known_hosts'}\n"
        f"  ssh key:     {topo.state_dir / 'id_ed25519'}\n"
        f"  try:         ssh -i {topo.state_dir / 'id_ed25519'} -o UserKnownHostsFile="
        f"{topo.state_dir / 'known_hosts'} -p {topo.port} root@{topo.gateways[0].mgmt_address}"
    )
    return int(ExitStatus.OK)


def _down(args: argparse.Namespace) -> int:
    from wgfleet.lab.manager import down

    removed = down(args.name, args.state_root)
    if removed:
        print(f"lab {args.name!r} removed: " + ", ".join(removed))
    else:
        print(f"lab {args.name!r}: nothing to remove")
    return int(ExitStatus.OK)


def _status(args: argparse.Namespace) -> int:
    from wgfleet.lab.status import lab_status

    rows = lab_status(args.name, args.state_root)
    if args.format == "json":
        print(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        print(f"{'GATEWAY':<8} {'SSH':<22} {'POWER':<6} {'STATE':<12} {'RTT':>8}  HOSTNAME/ERROR")
        for row in rows:
            state = "reachable" if row.reachable else "UNREACHABLE"
            rtt = f"{row.latency_ms:.0f} ms" if row.latency_ms is not None else "-"
            print(
                f"{row.gateway:<8} {row.address + ':' + str(row.port):<22} "
                f"{'on' if row.powered else 'off':<6} {state:<12} {rtt:>8}  "
                f"{row.hostname or row.error}"
            )
    down = [row.gateway for row in rows if not row.reachable]
    # The summary goes to stderr in JSON mode so that stdout stays one JSON document.
    summary = sys.stderr if args.format == "json" else sys.stdout
    if down:
        print(f"{len(down)} of {len(rows)} gateways unreachable: {', '.join(down)}", file=summary)
        return int(ExitStatus.UNREACHABLE)
    print(f"all {len(rows)} gateways reachable", file=summary)
    return int(ExitStatus.OK)


def _reboot(args: argparse.Namespace) -> int:
    from wgfleet.lab.manager import reboot

    seconds = reboot(args.name, args.gateway, args.state_root)
    print(f"{args.gateway} rebooted in {seconds:.1f} s")
    return int(ExitStatus.OK)
