"""Options shared by the commands that run against gateways."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_inventory(parser: argparse.ArgumentParser) -> None:
    """``--inventory DIR`` (default ``inventory``)."""
    parser.add_argument(
        "--inventory",
        "-i",
        type=Path,
        default=Path("inventory"),
        metavar="DIR",
        help="inventory directory holding hosts.yaml, groups.yaml and defaults.yaml "
        "(default: %(default)s)",
    )


def add_limit(parser: argparse.ArgumentParser) -> None:
    """``--limit NAME`` (hosts or groups, repeatable, comma-separated)."""
    parser.add_argument(
        "--limit",
        "-l",
        action="append",
        metavar="NAME",
        help="only these gateways: host names or groups such as site2 "
        "(repeat or separate with commas; default: all)",
    )


def add_workers(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` (gateways handled in parallel)."""
    parser.add_argument(
        "--workers",
        "-w",
        type=int,
        default=20,
        metavar="N",
        help="gateways handled in parallel (default: %(default)s)",
    )
