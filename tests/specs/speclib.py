"""What the data-driven spec runners share: loading a spec, editing a YAML document by
dotted paths, and matching the reported problems against the expected ones both ways."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from wgfleet.errors import Problem
from wgfleet.inventory_yaml import load_yaml


def load_spec(path: Path, keys: set[str]) -> dict[str, Any]:
    """A spec file: a mapping of known ``keys``, with a description and expectations."""
    spec, problems = load_yaml(path.read_text(encoding="utf-8"), path.name)
    assert not problems, problems
    assert isinstance(spec, dict), f"{path.name}: a spec is a mapping"
    assert set(spec) <= keys, f"{path.name}: unknown keys {set(spec) - keys}"
    assert spec.get("description"), f"{path.name}: say what the case is about"
    assert spec.get("expect"), f"{path.name}: list the expected problems"
    return spec


def _walk(document: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(document, list):
            document = document[int(part)]
        else:
            document = document.setdefault(part, {})
    return document


def edit(document: Any, sets: Mapping[str, Any], deletes: Iterable[str]) -> Any:
    """Set values and delete keys by dotted path (``wave.1.gate.timeout``): integers index
    lists, the index just past the end appends, missing mappings are created."""
    for dotted, value in sets.items():
        *parents, last = str(dotted).split(".")
        container = _walk(document, parents)
        if isinstance(container, list) and int(last) == len(container):
            container.append(value)
        elif isinstance(container, list):
            container[int(last)] = value
        else:
            container[last] = value
    for dotted in deletes:
        *parents, last = str(dotted).split(".")
        container = _walk(document, parents)
        del container[int(last) if isinstance(container, list) else last]
    return document


def assert_reported(
    problems: list[Problem],
    expected: list[dict[str, str]],
    matches: Callable[[dict[str, str], Problem], bool],
) -> None:
    """Every expected entry is reported, and nothing else is."""
    missing = [entry for entry in expected if not any(matches(entry, p) for p in problems)]
    unexpected = [p for p in problems if not any(matches(entry, p) for entry in expected)]
    report = "\n".join(f"  {p!r}" for p in problems)
    assert not missing, f"expected but not reported: {missing}\nreported:\n{report}"
    assert not unexpected, f"reported but not expected: {unexpected}"
