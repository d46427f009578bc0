"""The `wgfleet` command line: argument parsing and the one place exceptions become exit codes."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from wgfleet import __version__
from wgfleet.errors import ExitStatus, WgfleetError


class _Registrar(Protocol):
    def __call__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


# Sub-command modules, each exposing ``register(subparsers)``; order is the --help order.
_COMMAND_MODULES = ("inventory", "plan", "apply", "verify", "runbook", "lab", "hosts")


def _registrars() -> list[_Registrar]:
    found: list[_Registrar] = []
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"wgfleet.cli.{name}")
        found.append(module.register)
    return found


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="wgfleet",
        description="Agentless rollout and verification of route-based WireGuard VPNs with BGP.",
    )
    parser.add_argument("--version", action="version", version=f"wgfleet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
        register(subparsers)
    return parser


Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except WgfleetError as exc:
        print(f"wgfleet: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except BrokenPipeError:  # `wgfleet … | head`: the reader went away, nothing to report
        sys.stderr.close()
        return int(ExitStatus.OK)
    except KeyboardInterrupt:
        print("wgfleet: interrupted", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
