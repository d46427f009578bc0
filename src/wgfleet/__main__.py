"""``python -m wgfleet`` runs the CLI."""

from wgfleet.cli import run

run()
