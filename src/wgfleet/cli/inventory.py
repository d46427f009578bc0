"""The ``wgfleet inventory`` commands: checking an inventory directory before anything runs."""

from __future__ import annotations

import argparse

from wgfleet.cli.options import add_inventory
from wgfleet.errors import ExitStatus
from wgfleet.inventory import load_fleet, tunnel_count


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``wgfleet inventory`` and its sub-commands."""
    parser = subparsers.add_parser(
        "inventory",
        help="check the inventory (hosts.yaml, groups.yaml, defaults.yaml)",
        description="Commands that read the inventory and touch no gateway.",
    )
    commands = parser.add_subparsers(dest="inventory_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="validate the inventory and print a one-line summary",
        description=(
            "Load and validate the inventory without contacting any gateway. On success "
            "print a one-line summary and exit 0; otherwise print every problem found, "
            "each naming its file, host or group and field, and exit 64."
        ),
    )
    add_inventory(check)
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Validate the inventory named by ``args.inventory`` and print its summary.

    Args:
        args: The parsed arguments (``inventory``: the directory).

    Returns:
        ``ExitStatus.OK``; invalid input raises ``BadInputError`` (exit 64 in ``main``).
    """
    fleet = load_fleet(args.inventory)
    sites = len(fleet.sites)
    gateways = len(fleet.gateways)
    tunnels = tunnel_count(fleet)
    hubs = sum(1 for site in fleet.sites if site.role == "hub")
    topology: str = fleet.settings.topology
    if topology == "hub-and-spoke":
        topology += f" ({hubs} hub site{'s' if hubs != 1 else ''})"
    print(
        f"inventory OK ({args.inventory}): {sites} site{'s' if sites != 1 else ''}, "
        f"{gateways} gateway{'s' if gateways != 1 else ''}, {topology} topology, "
        f"{tunnels} tunnel{'s' if tunnels != 1 else ''}"
    )
    return int(ExitStatus.OK)
