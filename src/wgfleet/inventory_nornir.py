"""Nornir SimpleInventory semantics: hosts, groups and defaults, and how values are inherited.

A host's ``hostname``, ``port`` and ``username`` come from the host, else from its
groups in Nornir's ``extended_groups()`` order, else from the defaults, and
``connection_options.wgssh`` overrides them as Nornir's ``get_connection_parameters``
does. Top-level ``data`` keys are inherited the same way (the whole value of the first
element that has the key wins: no deep merge). Unknown group references and group
cycles, which would crash Nornir, are reported and left out.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from dataclasses import dataclass
from typing import Any

from wgfleet import inventory_values as v
from wgfleet.errors import Problem
from wgfleet.inventory_schema import PORT_MAX

CONNECTION = "wgssh"  # the connection_options entry whose hostname/port/username win
_ATTRIBUTES = ("hostname", "port", "username", "password", "platform")
_CONNECTION_KEYS = (*_ATTRIBUTES, "extras")
_PATH_EXTRAS = ("key_file", "known_hosts", "ssh_config_file")
_OBJECT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# Which file each of wgfleet's data keys belongs in.
DATA_HOME = {"fleet": "defaults.yaml", "site": "groups.yaml", "gateway": "hosts.yaml"}


INVALID: Any = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()
"""An attribute that is set but invalid (its problem is recorded): not inherited past."""


def _attribute(section: v.Section, key: str, parse: v.Parser[Any]) -> Any:
    return section.read(key, parse, INVALID) if section.has(key) else None


@dataclass
class Element:
    """A host, group or the defaults, as Nornir sees it before inheritance.

    ``hostname``, ``port`` and ``username`` are ``None`` when absent and
    :data:`INVALID` when set to something invalid.
    """

    name: str
    scope: v.Scope
    hostname: Any
    port: Any
    username: Any
    groups: tuple[str, ...]
    data: dict[str, Any]
    options: dict[str, dict[str, Any]]


def _connection_options(scope: v.Scope, value: Any) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    try:
        entries = v.mapping(scope, "connection_options", value)
    except v.Invalid:
        return options
    for name, entry in entries.items():
        section = v.Section.open(scope, f"connection_options.{name}", entry, (), _CONNECTION_KEYS)
        if section is None:
            continue
        extras = section.read("extras", v.mapping, {})
        for key in _PATH_EXTRAS:
            if extras.get(key) is not None:
                with contextlib.suppress(v.Invalid):
                    v.path(scope, f"{section.field('extras')}.{key}", extras[key])
        options[name] = {
            "hostname": _attribute(section, "hostname", v.hostname),
            "port": _attribute(section, "port", v.integer(1, PORT_MAX)),
            "username": _attribute(section, "username", v.username),
        }
    return options


def read_element(scope: v.Scope, value: Any, *, grouped: bool = True) -> Element | None:
    keys = (*_ATTRIBUTES, *(("groups",) if grouped else ()), "data", "connection_options")
    section = v.Section.open(scope, "", value, (), keys)
    if section is None:
        return None
    section.read("password", v.text, None)
    section.read("platform", v.text, None)
    return Element(
        name=scope.where,
        scope=scope,
        hostname=_attribute(section, "hostname", v.hostname),
        port=_attribute(section, "port", v.integer(1, PORT_MAX)),
        username=_attribute(section, "username", v.username),
        groups=section.read("groups", v.list_of(v.text), ()),
        data=section.read("data", v.mapping, {}),
        options=_connection_options(scope, section.data.get("connection_options") or {}),
    )


def read_elements(
    file: str, document: dict[Any, Any], problems: list[Problem]
) -> dict[str, Element]:
    elements: dict[str, Element] = {}
    for name, value in document.items():
        scope = v.Scope(file, str(name), problems)
        if not isinstance(name, str) or not _OBJECT_NAME.fullmatch(name):
            scope.add(
                "",
                f"name {name!r} may only use letters, digits, '_', '.' and '-' "
                "(at most 64, not starting with '.' or '-')",
            )
            continue
        element = read_element(scope, value)
        if element is not None:
            elements[name] = element
    return elements


def check_data_keys(element: Element) -> None:
    home = element.scope.file
    for key in element.data:
        if key in DATA_HOME and DATA_HOME[key] != home:
            element.scope.add(
                f"data.{key}", f"data.{key} belongs in {DATA_HOME[key]}, not in {home}"
            )
            continue
        if key in DATA_HOME:
            continue
        close = [k for k in DATA_HOME if k == key.lower()] or difflib.get_close_matches(
            key, list(DATA_HOME), n=1, cutoff=0.8
        )
        if close:
            element.scope.add(f"data.{key}", f"unknown key {key!r}; did you mean {close[0]!r}?")


class Inheritance:
    """Nornir's inheritance: a host's groups in ``extended_groups()`` order, then defaults.

    Unknown group references and group cycles are reported, then left out, so that the
    lookups below always terminate.
    """

    def __init__(
        self, groups: dict[str, Element], defaults: Element, hosts: dict[str, Element]
    ) -> None:
        self.groups = groups
        self.defaults = defaults
        self._memo: dict[tuple[str, ...], tuple[str, ...]] = {}
        for element in (*groups.values(), *hosts.values()):
            self._drop_unknown(element)
        self._drop_cycles()

    def _drop_unknown(self, element: Element) -> None:
        for index, name in enumerate(element.groups):
            if name not in self.groups:
                element.scope.add(
                    f"groups[{index}]",
                    f"unknown group {name!r}{v.suggestion(name, self.groups)}",
                )
        element.groups = tuple(name for name in element.groups if name in self.groups)

    def _drop_cycles(self) -> None:
        done: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            element = self.groups[name]
            here = (*path, name)
            for parent in element.groups:
                if parent in here:
                    cycle = " -> ".join((*here[here.index(parent) :], parent))
                    element.scope.add("groups", f"group cycle: {cycle}")
                    element.groups = tuple(g for g in element.groups if g != parent)
                elif parent not in done:
                    visit(parent, here)
            done.add(name)

        for name in self.groups:
            if name not in done:
                visit(name, ())

    def _extended(self, direct: tuple[str, ...]) -> tuple[str, ...]:
        if direct not in self._memo:
            result: list[str] = []
            for group in direct:
                for name in (group, *self._extended(self.groups[group].groups)):
                    if name not in result:
                        result.append(name)
            self._memo[direct] = tuple(result)
        return self._memo[direct]

    def chain(self, host: Element) -> list[Element]:
        """Return the host, its extended groups and the defaults, in lookup order."""
        return [host, *(self.groups[n] for n in self._extended(host.groups)), self.defaults]

    def _options(self, element: Element) -> list[dict[str, Any]]:
        """Nornir's ``_get_connection_options_recursively`` order for ``CONNECTION``."""
        found = [element.options.get(CONNECTION, {})]
        for group in element.groups:
            found += self._options(self.groups[group])
        return [*found, self.defaults.options.get(CONNECTION, {})]

    def attribute(self, host: Element, key: str) -> Any:
        """Resolve ``hostname``/``port``/``username`` for the wgssh connection, like Nornir.

        Returns:
            The value; ``None`` when set nowhere; :data:`INVALID` when the value that
            would win is invalid (its problem is already recorded).
        """
        for options in self._options(host):
            if options.get(key) is not None:
                return options[key]
        for element in self.chain(host):
            value = getattr(element, key)
            if value is not None:
                return value
        return None

    def data(self, host: Element) -> dict[str, Any]:
        """Resolve ``data`` like Nornir's ``Host.extended_data()`` (first top-level key wins)."""
        result: dict[str, Any] = {}
        for element in self.chain(host):
            for key, value in element.data.items():
                result.setdefault(key, value)
        return result
