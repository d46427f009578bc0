"""Placeholder for the `inventory` commands (being built)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register no commands yet."""
    del subparsers
