"""Strict reading of inventory YAML files: YAML 1.2 scalars, duplicate keys refused, errors located.

PyYAML's ``SafeLoader`` speaks YAML 1.1, where ``yes``/``no``/``on``/``off`` are booleans,
``010`` is octal and ``1:30`` is a base-60 integer. Nornir reads the same files with
ruamel.yaml in YAML 1.2 mode, where all of those are plain strings or decimals. The
loader here resolves scalars like YAML 1.2's core schema so that wgfleet and Nornir see
the same values, and it reports every duplicate mapping key (YAML would silently keep
the last one, so a second ``V1-1:`` would quietly replace the first gateway).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from wgfleet.errors import Problem

_MERGE_TAG = "tag:yaml.org,2002:merge"


# libyaml's parser when PyYAML was built with it (10x faster on large fleets); the
# resolver and constructor stay in Python, so the behaviour is the same.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A safe loader with YAML 1.2 core-schema scalar resolution.

    Duplicate keys are found on the composed node tree by :func:`load_yaml` (so every
    duplicate is reported with its path and line, not only the first one).
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012  (rebuilt below, per class)


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    value = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    sign = -1 if value.startswith("-") else 1
    digits = value.lstrip("+-")
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


def _install_core_schema(loader: type[yaml.SafeLoader]) -> None:
    resolvers: list[tuple[str, str, str]] = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        (
            "tag:yaml.org,2002:float",
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            "-+.0123456789",
        ),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
        ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
    ]
    for tag, pattern, first in resolvers:
        loader.add_implicit_resolver(tag, re.compile(pattern), list(first))
    # The empty scalar has no first character to dispatch on.
    loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
    loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


_install_core_schema(StrictLoader)


@dataclass(frozen=True)
class DuplicateKey:
    """A mapping key that appears more than once in one mapping."""

    path: tuple[str, ...]
    first_line: int
    line: int


def _key_text(loader: StrictLoader, node: Node) -> str | None:
    if not isinstance(node, ScalarNode):
        return None
    value = loader.construct_object(node, deep=True)
    return str(value)


def _duplicates(loader: StrictLoader, root: Node) -> Iterator[DuplicateKey]:
    stack: list[tuple[Node, tuple[str, ...]]] = [(root, ())]
    visited: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in visited:  # an alias: already walked
            continue
        visited.add(id(node))
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                key = _key_text(loader, key_node)
                line = key_node.start_mark.line + 1
                if key is not None and key in seen:
                    yield DuplicateKey((*path, key), seen[key], line)
                elif key is not None:
                    seen[key] = line
                stack.append((value_node, (*path, key if key is not None else "?")))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, f"[{index}]")))


def split_location(file: str, path: tuple[str, ...]) -> tuple[str, str]:
    """Split a key path into the Problem's ``where`` (host/group) and dotted ``field``.

    Args:
        file: The inventory file name; ``defaults.yaml`` has no host or group level.
        path: Keys from the document root; list items appear as ``[N]``.

    Returns:
        ``(where, field)``, e.g. ``("V1-1", "data.gateway.endpoint")``.
    """
    if file == "defaults.yaml":
        where, rest = "defaults", path
    else:
        where, rest = (path[0], path[1:]) if path else ("", ())
    field = ""
    for part in rest:
        field += part if part.startswith("[") or not field else f".{part}"
    return where, field


def load_yaml(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse one inventory file strictly.

    Args:
        text: The file's content.
        file: Its name, used in problems (``hosts.yaml``).

    Returns:
        The parsed document (``None`` when it could not be parsed) and the problems found:
        a syntax error with its line and column, or every duplicate key.
    """
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        problems = [
            Problem(
                file,
                *split_location(file, dup.path),
                f"duplicate key {dup.path[-1]!r} (line {dup.line}, first on line "
                f"{dup.first_line}): YAML would silently keep only the last one",
            )
            for dup in sorted(_duplicates(loader, node), key=lambda dup: dup.line)
        ]
        document = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" (from line {exc.context_mark.line + 1})"
        what = ": ".join(part for part in (context, exc.problem) if part)
        if mark is None:
            return None, [Problem(file, "", "", f"YAML syntax error: {what}")]
        return None, [
            Problem(
                file,
                f"line {mark.line + 1}",
                "",
                f"YAML syntax error: {what} (line {mark.line + 1}, column {mark.column + 1})",
            )
        ]
    except yaml.YAMLError as exc:
        return None, [Problem(file, "", "", f"YAML error: {exc}")]
    finally:
        loader.dispose()
    return document, problems
