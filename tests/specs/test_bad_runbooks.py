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

from wgfleet.errors import BadInputError, ExitStatus, Problem
from wgfleet.inventory_yaml import load_yaml
from wgfleet.runbook.schema import parse_runbook

SPECS = Path(__file__).parent / "bad_runbooks"
SHIPPED = Path(__file__).parents[2] / "runbooks"
SPEC_KEYS = {"description", "start", "text", "replace", "set", "delete", "expect"}
FILE = "runbook.yaml"


def _specs() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


def _load_spec(path: Path) -> dict[str, Any]:
    spec, problems = load_yaml(path.read_text(encoding="utf-8"), path.name)
    assert not problems, problems
    assert isinstance(spec, dict), f"{path.name}: a spec is a mapping"
    assert set(spec) <= SPEC_KEYS, f"{path.name}: unknown keys {set(spec) - SPEC_KEYS}"
    assert spec.get("description"), f"{path.name}: say what the case is about"
    assert spec.get("expect"), f"{path.name}: list the expected problems"
    assert ("start" in spec) != ("text" in spec), f"{path.name}: give start or text"
    return spec


def _walk(document: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(document, list):
            document = document[int(part)]
        else:
            document = document.setdefault(part, {})
    return document


def _build(spec: dict[str, Any]) -> str:
    text = spec["text"] if "text" in spec else (SHIPPED / spec["start"]).read_text("utf-8")
    for old, new in spec.get("replace") or []:
        assert old in text, f"{old!r} not found"
        text = text.replace(old, new)
    if spec.get("set") or spec.get("delete"):
        document = yaml.safe_load(text)
        for dotted, value in (spec.get("set") or {}).items():
            *parents, last = str(dotted).split(".")
            container = _walk(document, parents)
            if isinstance(container, list) and int(last) == len(container):
                container.append(value)
            elif isinstance(container, list):
                container[int(last)] = value
            else:
                container[last] = value
        for dotted in spec.get("delete") or []:
            *parents, last = str(dotted).split(".")
            container = _walk(document, parents)
            del container[int(last) if isinstance(container, list) else last]
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
    expected: list[dict[str, str]] = spec["expect"]
    missing = [entry for entry in expected if not any(_matches(entry, p) for p in problems)]
    unexpected = [p for p in problems if not any(_matches(entry, p) for entry in expected)]
    report = "\n".join(f"  {p!r}" for p in problems)
    assert not missing, f"expected but not reported: {missing}\nreported:\n{report}"
    assert not unexpected, f"reported but not expected: {unexpected}"
