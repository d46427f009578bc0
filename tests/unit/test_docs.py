"""Every CLI command has help text and a place in the README (sqlite-utils' habit)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgfleet.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                path = (*prefix, name)
                yield path, sub, helps.get(name)
                yield from _commands(sub, path)


COMMANDS = list(_commands(build_parser()))


def test_the_cli_has_the_documented_commands() -> None:
    names = {" ".join(path) for path, _, _ in COMMANDS}
    assert {"inventory check", "plan", "render", "apply", "verify", "lab up", "lab down",
            "lab status", "lab reboot", "hosts trust", "hosts check"} <= names  # fmt: skip


@pytest.mark.parametrize(("path", "parser", "summary"), COMMANDS, ids=lambda v: str(v))
def test_every_command_has_help_and_every_option_too(
    path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str | None
) -> None:
    assert summary, f"`wgfleet {' '.join(path)}` has no one-line help"
    assert parser.description, f"`wgfleet {' '.join(path)}` has no description"
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"`wgfleet {' '.join(path)} {action.option_strings[0]}` lacks help"


@pytest.mark.parametrize(("path", "parser", "summary"), COMMANDS, ids=lambda v: str(v))
def test_every_command_is_in_the_readme(
    path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str | None
) -> None:
    assert f"wgfleet {' '.join(path)}" in README, (
        f"README does not mention `wgfleet {' '.join(path)}`"
    )
