"""Data-driven bad runbooks: each ``bad_runbooks/<case>.yaml`` is one case, no code.

A spec starts from a shipped runbook (``start: rollout.yaml``) or a whole text of its own
(``text``), changes it, and lists the problems ``parse_runbook`` must report. Keys of a
spec, applied in this order:

- ``start``: a file name in ``runbooks/``; or ``text``: the runbook's whole text;
- ``replace``: ``[[old, new], ...]`` textual edits (``old`` must occur);
- ``set``: ``{dotted.path: value}`` sets a value (``wave.1.gate.timeout``; integers index
  lists, the index just past the end appends; missing mappings are created);
- ``delete``: ``[dotted.path, ...]`` removes keys;
- ``expect``: a list of ``{where, field, message}``; ``where``/``field`` must be equal when
  given, ``message`` must be a substring. ``file`` is always ``runbook.yaml``.

Every expected entry must match a reported problem, and every reported problem must be
matched by an expected entry: nothing unexpected may be reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.specs.speclib import assert_reported, edit, load_spec
from wgfleet.errors import BadInputError, ExitStatus, Problem
from wgfleet.runbook.schema import parse_runbook

SPECS = Path(__file__).parent / "bad_runbooks"
SHIPPED = Path(__file__).parents[2] / "runbooks"
SPEC_KEYS = {"description", "start", "text", "replace", "set", "delete", "expect"}
FILE = "runbook.yaml"


def _specs() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


def _load_spec(path: Path) -> dict[str, Any]:
    spec = load_spec(path, SPEC_KEYS)
    assert ("start" in spec) != ("text" in spec), f"{path.name}: give start or text"
    return spec


def _build(spec: dict[str, Any]) -> str:
    text = spec["text"] if "text" in spec else (SHIPPED / spec["start"]).read_text("utf-8")
    for old, new in spec.get("replace") or []:
        assert old in text, f"{old!r} not found"
        text = text.replace(old, new)
    if spec.get("set") or spec.get("delete"):
        document = yaml.safe_load(text)
        edit(document, spec.get("set") or {}, spec.get("delete") or [])
        text = yaml.safe_dump(document, sort_keys=False)
    return str(text)


def _matches(expected: dict[str, str], problem: Problem) -> bool:
    return (
        problem.file == FILE
        and all(
            expected[key] == getattr(problem, key) for key in ("where", "field") if key in expected
        )
        and str(expected.get("message", "")) in problem.message
    )


def test_there_are_enough_specs() -> None:
    assert len(_specs()) >= 25


@pytest.mark.parametrize("spec_path", _specs(), ids=lambda path: path.stem)
def test_bad_runbook(spec_path: Path) -> None:
    spec = _load_spec(spec_path)

    with pytest.raises(BadInputError) as caught:
        parse_runbook(_build(spec), FILE)

    problems = caught.value.problems
    assert caught.value.exit_status == ExitStatus.BAD_INPUT
    assert_reported(problems, spec["expect"], _matches)
