"""Typed, located reading of inventory values, recording a Problem for each bad one.

A parser is a function ``(scope, field, value) -> T``: it returns the parsed value, or
records a :class:`~wgfleet.errors.Problem` in ``scope`` and raises :class:`Invalid`, which
:meth:`Section.read` and :func:`list_of` catch: reading goes on with the next value, so
one pass over an inventory reports every problem.
Strings that may reach a shell on a gateway (names, users, paths) are checked here once.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from wgfleet.errors import Problem
from wgfleet.model import IPAddress, IPInterface, IPNetwork

T = TypeVar("T")
D = TypeVar("D")

# Characters a POSIX shell gives a meaning to; control characters are refused as well.
SHELL_METACHARACTERS = frozenset(";|&$`<>()'\"\\ \t\n\r*?[]{}")
IFNAMSIZ_MAX = 15  # Linux IFNAMSIZ (16) minus the terminating NUL
NAMESPACE_MAX = 64
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]+")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_USERNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


class Invalid(Exception):
    """Raised by a parser after it recorded its problem."""


@dataclass
class Scope:
    """Where problems go, and the file and host/group they are reported against."""

    file: str
    where: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, field: str, message: str) -> None:
        """Record one problem in this scope's file and host/group."""
        self.problems.append(Problem(self.file, self.where, field, message))

    def fail(self, field: str, message: str) -> NoReturn:
        """Record one problem and raise :class:`Invalid`."""
        self.add(field, message)
        raise Invalid(message)


Parser = Callable[[Scope, str, Any], T]


def describe(value: Any) -> str:
    """Say what a YAML value is, for messages ("string '65001'", "boolean true")."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if value is None:
        return "an empty value"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def suggestion(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def integer(lo: int, hi: int, what: str = "") -> Parser[int]:
    """Parser of an integer in ``[lo, hi]`` (booleans and quoted numbers are refused)."""

    def parse(scope: Scope, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = " (remove the quotes)" if isinstance(value, str) and value.isdigit() else ""
            scope.fail(field, f"must be an integer, got {describe(value)}{hint}")
        if not lo <= value <= hi:
            scope.fail(field, f"must be between {lo} and {hi}{what}, got {value}")
        return value

    return parse


def number(lo: float, hi: float) -> Parser[float]:
    """Parser of a finite number (integer or decimal) in ``[lo, hi]``."""

    def parse(scope: Scope, field: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            scope.fail(field, f"must be a number, got {describe(value)}")
        if not lo <= value <= hi:
            scope.fail(field, f"must be between {lo:g} and {hi:g}, got {value:g}")
        return float(value)

    return parse


def boolean(scope: Scope, field: str, value: Any) -> bool:
    """Parse ``true``/``false`` (YAML 1.2: ``yes``, ``no``, ``on``, ``off`` are strings)."""
    if not isinstance(value, bool):
        scope.fail(field, f"must be true or false, got {describe(value)}")
    return value


def text(scope: Scope, field: str, value: Any) -> str:
    """Parse a non-empty string."""
    if not isinstance(value, str) or not value:
        scope.fail(field, f"must be a non-empty string, got {describe(value)}")
    return value


def choice(*options: str) -> Parser[str]:
    """Parser of one string among ``options`` (a typo gets the close match suggested)."""

    def parse(scope: Scope, field: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            shown = repr(value) if isinstance(value, str) else describe(value)
            scope.fail(
                field,
                f"must be one of {', '.join(options)}, got {shown}"
                + (suggestion(value, options) if isinstance(value, str) else ""),
            )
        return value

    return parse


def shell_safe(scope: Scope, field: str, value: str) -> str:
    """Check that ``value`` holds no shell metacharacter or control character."""
    bad = sorted({c for c in value if c in SHELL_METACHARACTERS or ord(c) < 32 or ord(c) == 127})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        scope.fail(field, f"may not contain shell metacharacters (found {shown}): {value!r}")
    if value.startswith("-"):
        scope.fail(
            field, f"may not start with '-' (a command would read it as an option): {value!r}"
        )
    return value


def _safe_string(scope: Scope, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        scope.fail(field, f"must be a non-empty string, got {describe(value)}")
    return shell_safe(scope, field, value)


def linux_name(what: str, max_length: int) -> Parser[str]:
    """Parser of a name Linux accepts for an interface or namespace (``[A-Za-z0-9_.-]``)."""

    def parse(scope: Scope, field: str, value: Any) -> str:
        name = _safe_string(scope, field, value)
        if not _NAME_CHARS.fullmatch(name) or name in (".", ".."):
            scope.fail(field, f"{what} {name!r} may only use letters, digits, '_', '.' and '-'")
        if len(name) > max_length:
            scope.fail(
                field,
                f"{what} {name!r} is {len(name)} characters; Linux allows at most {max_length}",
            )
        return name

    return parse


interface_name = linux_name("interface name", IFNAMSIZ_MAX)
namespace_name = linux_name("namespace name", NAMESPACE_MAX)


def hostname(scope: Scope, field: str, value: Any) -> str:
    """Parse a management address: an IP address or a DNS name."""
    name = _safe_string(scope, field, value)
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        scope.fail(field, f"{name!r} is neither an IP address nor a valid DNS name")
    return name


def username(scope: Scope, field: str, value: Any) -> str:
    """Parse a POSIX user name."""
    name = _safe_string(scope, field, value)
    if not _USERNAME.fullmatch(name):
        scope.fail(field, f"{name!r} is not a valid user name ([A-Za-z_][A-Za-z0-9_.-], ≤ 32)")
    return name


def path(scope: Scope, field: str, value: Any) -> str:
    """Parse a file path that may be used in a command line."""
    return _safe_string(scope, field, value)


def _ip_text(scope: Scope, field: str, value: Any, what: str) -> str:
    if not isinstance(value, str):
        scope.fail(field, f"must be {what} written as a string, got {describe(value)}")
    if "%" in value:
        scope.fail(field, f"{value!r}: a zone index (%...) is not allowed")
    return value


def address(scope: Scope, field: str, value: Any) -> IPAddress:
    """Parse an IPv4 or IPv6 address without prefix length."""
    raw = _ip_text(scope, field, value, "an IP address")
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        scope.fail(field, f"{raw!r} is not an IP address")


def interface_address(scope: Scope, field: str, value: Any) -> IPInterface:
    """Parse an interface address with its prefix length (``10.0.1.11/24``)."""
    raw = _ip_text(scope, field, value, "an address/prefix-length")
    if "/" not in raw:
        scope.fail(field, f"{raw!r} needs a prefix length (e.g. {raw}/64 or {raw}/24)")
    try:
        return ipaddress.ip_interface(raw)
    except ValueError:
        scope.fail(field, f"{raw!r} is not an address/prefix-length")


def network(version: int | None = None) -> Parser[IPNetwork]:
    """Parser of a network prefix (host bits must be zero), optionally of one IP version."""

    def parse(scope: Scope, field: str, value: Any) -> IPNetwork:
        raw = _ip_text(scope, field, value, "a network prefix")
        try:
            net = ipaddress.ip_network(raw)
        except ValueError:
            try:
                loose = ipaddress.ip_network(raw, strict=False)
            except ValueError:
                scope.fail(field, f"{raw!r} is not a network prefix")
            scope.fail(field, f"{raw!r} has host bits set; did you mean {str(loose)!r}?")
        if version is not None and net.version != version:
            scope.fail(field, f"{raw!r} must be an IPv{version} prefix")
        return net

    return parse


def mapping(scope: Scope, field: str, value: Any) -> dict[str, Any]:
    """Parse a mapping whose keys are strings."""
    if not isinstance(value, dict):
        scope.fail(field, f"must be a mapping, got {describe(value)}")
    for key in value:
        if not isinstance(key, str):
            scope.add(join(field, str(key)), f"key {key!r} must be a string")
    return {key: item for key, item in value.items() if isinstance(key, str)}


def list_of(item: Parser[T], *, nonempty: bool = False) -> Parser[tuple[T, ...]]:
    """Parser of a list whose items ``item`` parses (invalid items are reported and left out)."""

    def parse(scope: Scope, field: str, value: Any) -> tuple[T, ...]:
        if not isinstance(value, list):
            scope.fail(field, f"must be a list, got {describe(value)}")
        if nonempty and not value:
            scope.fail(field, "must not be empty")
        parsed: list[T] = []
        for index, entry in enumerate(value):
            try:
                parsed.append(item(scope, f"{field}[{index}]", entry))
            except Invalid:
                continue
        return tuple(parsed)

    return parse


def join(path: str, key: str) -> str:
    """Join a dotted field path and a key."""
    return f"{path}.{key}" if path else key


class Section:
    """A mapping being read: unknown and missing keys are reported when it is opened."""

    def __init__(
        self,
        scope: Scope,
        path: str,
        data: Mapping[str, Any],
        required: Iterable[str] = (),
        optional: Iterable[str] = (),
    ) -> None:
        """Check the keys of ``data`` (found at ``path``) against the known ones.

        Args:
            scope: Where problems go.
            path: The dotted field path of the mapping (``data.gateway``).
            data: The mapping.
            required: Keys that must be present with a value.
            optional: Keys that may be present.
        """
        self.scope = scope
        self.path = path
        self.data = data
        required = tuple(required)
        known = (*required, *optional)
        for key in data:
            if key not in known:
                hint = suggestion(key, known) or f"; expected one of: {', '.join(known)}"
                scope.add(self.field(key), f"unknown key {key!r}{hint}")
        for key in required:
            if data.get(key) is None:
                scope.add(self.field(key), f"missing required key {key!r}")

    @classmethod
    def open(
        cls,
        scope: Scope,
        path: str,
        value: Any,
        required: Iterable[str] = (),
        optional: Iterable[str] = (),
    ) -> Section | None:
        """Return a Section for ``value``, or record that it is not a mapping."""
        try:
            data = mapping(scope, path, value)
        except Invalid:
            return None
        return cls(scope, path, data, required, optional)

    def field(self, key: str) -> str:
        """Return the dotted field path of ``key``."""
        return join(self.path, key)

    def has(self, key: str) -> bool:
        """Return whether ``key`` is present with a value."""
        return self.data.get(key) is not None

    def read(self, key: str, parse: Parser[T], default: D) -> T | D:
        """Parse ``key``; return ``default`` when it is absent, empty or invalid."""
        value = self.data.get(key)
        if value is None:
            return default
        try:
            return parse(self.scope, self.field(key), value)
        except Invalid:
            return default

    def section(
        self, key: str, required: Iterable[str] = (), optional: Iterable[str] = ()
    ) -> Section | None:
        """Open the mapping under ``key`` (``None`` when absent or not a mapping)."""
        value = self.data.get(key)
        if value is None:
            return None
        return Section.open(self.scope, self.field(key), value, required, optional)
