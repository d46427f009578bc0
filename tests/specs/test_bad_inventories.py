"""Data-driven bad inventories: each ``bad_inventories/<case>.yaml`` is one case, no code.

A spec starts from the shipped ``inventory/`` (the article's fleet), changes it, and lists
the problems ``load_fleet`` must report. Keys of a spec, applied in this order:

- ``files``: ``{file: text}`` replaces a whole file; ``{file: null}`` removes it;
- ``replace``: ``{file: [[old, new], ...]}`` textual edits (``old`` must occur);
- ``set``: ``{file: {dotted.path: value}}`` sets a value (``V1-1.data.gateway.index``;
  integers index lists, the index just past the end appends; missing mappings are
  created);
- ``delete``: ``{file: [dotted.path, ...]}`` removes keys;
- ``expect``: a list of ``{file, where, field, message}``; ``file``/``where``/``field``
  must be equal when given, ``message`` must be a substring.

Every expected entry must match a reported problem, and every reported problem must be
matched by an expected entry: nothing unexpected may be reported.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.specs.speclib import assert_reported, edit, load_spec
from wgfleet.errors import BadInputError, ExitStatus, Problem
from wgfleet.inventory import load_fleet

SPECS = Path(__file__).parent / "bad_inventories"
SHIPPED = Path(__file__).parents[2] / "inventory"
SPEC_KEYS = {"description", "files", "replace", "set", "delete", "expect"}


def _specs() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


def _apply(directory: Path, spec: dict[str, Any]) -> None:
    for file, content in (spec.get("files") or {}).items():
        if content is None:
            (directory / file).unlink()
        else:
            (directory / file).write_text(content, encoding="utf-8")
    for file, edits in (spec.get("replace") or {}).items():
        text = (directory / file).read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, f"{old!r} not found in {file}"
            text = text.replace(old, new)
        (directory / file).write_text(text, encoding="utf-8")
    for file in {*(spec.get("set") or {}), *(spec.get("delete") or {})}:
        document = yaml.safe_load((directory / file).read_text(encoding="utf-8")) or {}
        edit(
            document,
            (spec.get("set") or {}).get(file) or {},
            (spec.get("delete") or {}).get(file) or [],
        )
        (directory / file).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _matches(expected: dict[str, str], problem: Problem) -> bool:
    return (
        all(
            expected[key] == getattr(problem, key)
            for key in ("file", "where", "field")
            if key in expected
        )
        and str(expected.get("message", "")) in problem.message
    )


@pytest.fixture
def inventory_copy(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(SHIPPED, target)
    return target


def test_there_are_enough_specs() -> None:
    assert len(_specs()) >= 25


@pytest.mark.parametrize("spec_path", _specs(), ids=lambda path: path.stem)
def test_bad_inventory(spec_path: Path, inventory_copy: Path) -> None:
    spec = load_spec(spec_path, SPEC_KEYS)
    _apply(inventory_copy, spec)

    with pytest.raises(BadInputError) as caught:
        load_fleet(inventory_copy)

    problems = caught.value.problems
    assert caught.value.exit_status == ExitStatus.BAD_INPUT
    assert_reported(problems, spec["expect"], _matches)
