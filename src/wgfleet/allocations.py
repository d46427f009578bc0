"""The persistent allocations file: gateway marks and point-to-point subnets that never move.

``inventory/allocations.yaml`` is written by wgfleet and committed by the user beside the
inventory. It holds the two numbers a gateway's neighbours depend on:

* the **mark** of every gateway: the tunnel towards gateway G is ``wg<mark of G>`` and
  listens on ``listen_port_base + <mark of G>`` on every peer of G;
* the **link** of every unordered pair of gateways that have a tunnel: a /127 from the IPv6
  pool and a /31 from the IPv4 pool, one line per tunnel::

      links:
        V1-1/V2-1: [2001:db8:ff::/127, 169.254.1.0/31]

  The gateway named first owns the even address of both subnets (``2001:db8:ff::`` and
  ``169.254.1.0``), the second the odd one.

``allocate`` keeps every entry still in use, drops those of gateways or pairs that are gone
and gives newcomers the lowest free numbers, so nothing that exists is ever renumbered.
Loading validates a hand-edited file and reports every problem, each naming the file and
the entry. Saving is atomic (temp file in the same directory, fsync, rename). The file is
read with libyaml when available (a 12,640-tunnel mesh loads in about a second); names
that YAML would not read back as strings are written quoted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wgfleet.errors import BadInputError, Problem
from wgfleet.model import FleetSettings

FORMAT_VERSION = 1
_IFNAMSIZ = 15  # Linux interface names: at most 15 characters

PairKey = tuple[str, str]


def pair_key(a: str, b: str) -> PairKey:
    """Return the key of the unordered pair ``{a, b}`` (names sorted)."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class Link:
    """The point-to-point subnets of one tunnel; ``gateways[0]`` owns the even addresses."""

    gateways: tuple[str, str]
    ipv6: ipaddress.IPv6Network
    ipv4: ipaddress.IPv4Network

    def side(self, gateway: str) -> int:
        """Return 0 if ``gateway`` owns the even addresses, 1 for the odd ones."""
        return self.gateways.index(gateway)

    def address6(self, gateway: str) -> ipaddress.IPv6Interface:
        """Return the /127 address of ``gateway`` on this link."""
        return ipaddress.IPv6Interface((int(self.ipv6.network_address) + self.side(gateway), 127))

    def address4(self, gateway: str) -> ipaddress.IPv4Interface:
        """Return the /31 address of ``gateway`` on this link."""
        return ipaddress.IPv4Interface((int(self.ipv4.network_address) + self.side(gateway), 31))

    def host6(self, gateway: str) -> ipaddress.IPv6Address:
        """Return the IPv6 address of ``gateway`` on this link, without prefix length."""
        return ipaddress.IPv6Address(int(self.ipv6.network_address) + self.side(gateway))

    def host4(self, gateway: str) -> ipaddress.IPv4Address:
        """Return the IPv4 address of ``gateway`` on this link, without prefix length."""
        return ipaddress.IPv4Address(int(self.ipv4.network_address) + self.side(gateway))


@dataclass(frozen=True)
class Allocations:
    """Marks per gateway and links per unordered gateway pair (see the module docstring)."""

    marks: Mapping[str, int] = field(default_factory=dict)
    links: Mapping[PairKey, Link] = field(default_factory=dict)

    def link(self, a: str, b: str) -> Link:
        """Return the link between gateways ``a`` and ``b`` (KeyError if none)."""
        return self.links[pair_key(a, b)]


def max_mark(settings: FleetSettings) -> int:
    """Return the highest mark whose port and interface name are still valid."""
    by_port = 65535 - settings.listen_port_base
    by_name = int(10 ** max(_IFNAMSIZ - len(settings.interface_prefix), 0)) - 1
    return min(by_port, by_name)


def _capacity(pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> int:
    bits = pool.max_prefixlen - 1 - pool.prefixlen
    return 2**bits if bits >= 0 else 0


def _index(pool: ipaddress.IPv4Network | ipaddress.IPv6Network, network: Any) -> int:
    return (int(network.network_address) - int(pool.network_address)) // 2


def _free(used: set[int], limit: int) -> Iterator[int]:
    """Yield, lowest first, the numbers in ``0..limit-1`` that are not in ``used``."""
    candidate = 0
    while candidate < limit:
        if candidate not in used:
            yield candidate
        candidate += 1


def allocate(
    current: Allocations,
    gateways: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    settings: FleetSettings,
) -> Allocations:
    """Return the allocations for the current fleet, keeping every existing number.

    Args:
        current: What the allocations file holds (already validated).
        gateways: Every gateway of the fleet, in the order new marks are handed out.
        pairs: Every pair of gateways that must have a tunnel, in the order new subnets are
            handed out; a new link gives the even addresses to the pair's first gateway.
        settings: Fleet settings (pools, port base, interface prefix).

    Returns:
        Allocations with exactly one mark per gateway and one link per pair.

    Raises:
        BadInputError: A pool or the mark space is too small for the fleet.
    """
    present = set(gateways)
    marks = {name: mark for name, mark in current.marks.items() if name in present}
    highest = max_mark(settings)
    free_marks = _free(set(marks.values()) | {0}, highest + 1)
    for name in gateways:
        if name not in marks:
            mark = next(free_marks, None)
            if mark is None:
                message = f"no mark left for {name}: ports and interface names fit {highest}"
                raise BadInputError([_settings_problem("listen_port_base", message)])
            marks[name] = mark

    wanted = {pair_key(a, b): (a, b) for a, b in pairs}
    links = {key: link for key, link in current.links.items() if key in wanted}
    pool6, pool4 = settings.pool6, settings.pool4
    free6 = _free({_index(pool6, link.ipv6) for link in links.values()}, _capacity(pool6))
    free4 = _free({_index(pool4, link.ipv4) for link in links.values()}, _capacity(pool4))
    for key, (a, b) in wanted.items():
        if key in links:
            continue
        index6, index4 = next(free6, None), next(free4, None)
        if index6 is None or index4 is None:
            field_name, pool = ("pools.ipv6", pool6) if index6 is None else ("pools.ipv4", pool4)
            message = f"{pool} is too small: the fleet needs {len(wanted)} point-to-point subnets"
            raise BadInputError([_settings_problem(field_name, message)])
        links[key] = Link(
            gateways=(a, b),
            ipv6=ipaddress.IPv6Network((int(pool6.network_address) + 2 * index6, 127)),
            ipv4=ipaddress.IPv4Network((int(pool4.network_address) + 2 * index4, 31)),
        )
    return Allocations(marks=marks, links=links)


def _settings_problem(field_name: str, message: str) -> Problem:
    return Problem("defaults.yaml", "data.fleet", field_name, message)


# --- loading and validation ---------------------------------------------------------------


def load_allocations(path: Path, settings: FleetSettings) -> Allocations:
    """Read and validate the allocations file; a missing file means nothing allocated yet.

    Raises:
        BadInputError: The file cannot be read or is inconsistent; every problem is listed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Allocations()
    except OSError as exc:
        raise BadInputError([Problem(str(path), "", "", f"cannot read: {exc.strerror}")]) from exc
    return parse_allocations(text, settings, str(path))


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader (libyaml when available) that refuses duplicate keys."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_allocations(text: str, settings: FleetSettings, file: str) -> Allocations:
    """Parse and validate the text of an allocations file named ``file`` in messages.

    Raises:
        BadInputError: Every problem found, each naming the file and the entry.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise BadInputError([Problem(file, where, "", f"not valid YAML: {exc}")]) from exc
    return _Validator(file, settings).run(data)


class _Validator:
    """Collects every problem of one allocations document before raising."""

    def __init__(self, file: str, settings: FleetSettings) -> None:
        self.file = file
        self.settings = settings
        self.problems: list[Problem] = []

    def add(self, where: str, field_name: str, message: str) -> None:
        self.problems.append(Problem(self.file, where, field_name, message))

    def run(self, data: Any) -> Allocations:
        if data is None:
            return Allocations()
        if not isinstance(data, dict):
            self.add("", "", "must be a mapping with keys version, marks, links")
            raise BadInputError(self.problems)
        for key in sorted(set(data) - {"version", "marks", "links"}, key=str):
            self.add("", str(key), "unknown key (expected version, marks, links)")
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            self.add("", "version", f"unsupported version {data['version']!r} (expected 1)")
        marks = self._marks(data.get("marks") or {})
        links = self._links(data.get("links") or {}, marks)
        if self.problems:
            raise BadInputError(self.problems)
        return Allocations(marks=marks, links=links)

    def _marks(self, raw: Any) -> dict[str, int]:
        if not isinstance(raw, dict):
            self.add("marks", "", "must be a mapping of gateway name to mark")
            return {}
        marks: dict[str, int] = {}
        owner: dict[int, str] = {}
        highest = max_mark(self.settings)
        for name, mark in raw.items():
            where = f"marks.{name}"
            if not isinstance(name, str):
                self.add(where, "", "a gateway name must be a string: quote it")
            elif not isinstance(mark, int) or isinstance(mark, bool):
                self.add(where, "", f"must be an integer mark, not {mark!r}")
            elif not 1 <= mark <= highest:
                self.add(where, "", f"mark {mark} is outside 1..{highest}")
            elif mark in owner:
                self.add(where, "", f"duplicate mark {mark}: already the mark of {owner[mark]}")
            else:
                owner[mark] = name
                marks[name] = mark
        return marks

    def _links(self, raw: Any, marks: Mapping[str, int]) -> dict[PairKey, Link]:
        if not isinstance(raw, dict):
            self.add("links", "", "must be a mapping of A/B to [ipv6 /127, ipv4 /31]")
            return {}
        links: dict[PairKey, Link] = {}
        seen6: dict[ipaddress.IPv6Network, str] = {}
        seen4: dict[ipaddress.IPv4Network, str] = {}
        for name, value in raw.items():
            link = self._link(str(name), value, marks)
            if link is None:
                continue
            where = f"links.{name}"
            key = pair_key(*link.gateways)
            count = len(self.problems)
            if key in links:
                self.add(where, "", "duplicate link: this pair is already listed")
            if link.ipv6 in seen6:
                self.add(where, "ipv6", f"duplicate subnet {link.ipv6}: also {seen6[link.ipv6]}")
            if link.ipv4 in seen4:
                self.add(where, "ipv4", f"duplicate subnet {link.ipv4}: also {seen4[link.ipv4]}")
            if len(self.problems) == count:
                links[key] = link
                seen6[link.ipv6] = seen4[link.ipv4] = where
        return links

    def _link(self, name: str, value: Any, marks: Mapping[str, int]) -> Link | None:
        where = f"links.{name}"
        gateways = name.split("/")
        if len(gateways) != 2 or not all(gateways):
            self.add(where, "", "the key must name two gateways as A/B")
            return None
        a, b = gateways
        count = len(self.problems)
        if a == b:
            self.add(where, "", "a gateway cannot have a tunnel to itself")
        for gateway in (a, b):
            if gateway not in marks:
                self.add(where, "", f"{gateway} has no entry under marks")
        if not (isinstance(value, list) and len(value) == 2):
            self.add(
                where, "", "must be [ipv6 /127, ipv4 /31], e.g. [2001:db8:ff::/127, 169.254.1.0/31]"
            )
            return None
        net6 = self._subnet(where, "ipv6", value[0], a, self.settings.pool6)
        net4 = self._subnet(where, "ipv4", value[1], a, self.settings.pool4)
        if len(self.problems) != count or net6 is None or net4 is None:
            return None
        assert isinstance(net6, ipaddress.IPv6Network) and isinstance(net4, ipaddress.IPv4Network)
        return Link(gateways=(a, b), ipv6=net6, ipv4=net4)

    def _subnet(
        self,
        where: str,
        family: str,
        raw: Any,
        even_owner: str,
        pool: ipaddress.IPv4Network | ipaddress.IPv6Network,
    ) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        length, version = pool.max_prefixlen - 1, pool.version
        kind = ipaddress.IPv6Interface if version == 6 else ipaddress.IPv4Interface
        try:
            interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface = kind(str(raw))
        except ValueError:
            example = f"like {_EXAMPLE[family]}; the order is [ipv6, ipv4]"
            self.add(where, family, f"{raw!r} is not an IPv{version} subnet ({example})")
            return None
        if interface.network.prefixlen != length:
            self.add(where, family, f"wrong prefix length: {raw} should be a /{length}")
        elif interface.ip != interface.network.network_address:
            message = f"ownership mismatch: {raw} is the odd address but {even_owner}, named first,"
            self.add(where, family, f"{message} owns the even one: write {interface.network}")
        elif not interface.network.subnet_of(pool):  # type: ignore[arg-type]
            self.add(
                where, family, f"{interface.network} is outside the pool {pool} (defaults.yaml)"
            )
        else:
            return interface.network
        return None


_EXAMPLE = {"ipv6": "2001:db8:ff::/127", "ipv4": "169.254.1.0/31"}

# --- writing --------------------------------------------------------------------------------

_HEADER = """\
# wgfleet allocations: written by `wgfleet plan --save-allocations`; commit it with the inventory.
# marks: the tunnel towards a gateway is wg<mark> and listens on listen_port_base + <mark>.
# links: one line per tunnel, A/B: [IPv6 /127, IPv4 /31]; A owns the even addresses, B the odd.
# Numbers never change when the fleet grows; entries of removed gateways are dropped.
# Hand edits are validated: a duplicate or inconsistent entry is refused, naming the line.
"""

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _name(value: str) -> str:
    """Return a gateway name (or A/B key) as YAML, quoted unless it reads back as itself."""
    parts = value.split("/")
    plain = all(_PLAIN.match(p) and p.lower() not in _YAML_WORDS for p in parts)
    return value if plain else json.dumps(value)


def dump_allocations(allocations: Allocations) -> str:
    """Return the allocations as the text of an allocations file (stable order)."""
    lines = [_HEADER.rstrip("\n"), f"version: {FORMAT_VERSION}", "marks:"]
    for name, mark in sorted(allocations.marks.items(), key=lambda item: (item[1], item[0])):
        lines.append(f"  {_name(name)}: {mark}")
    if not allocations.marks:
        lines[-1] = "marks: {}"
    lines.append("links:" if allocations.links else "links: {}")
    for link in sorted(allocations.links.values(), key=lambda link: (link.ipv6, link.ipv4)):
        key = _name(f"{link.gateways[0]}/{link.gateways[1]}")
        lines.append(f"  {key}: [{link.ipv6}, {link.ipv4}]")
    return "\n".join(lines) + "\n"


def save_allocations(path: Path, allocations: Allocations) -> bool:
    """Write the allocations file atomically; return False if it already held this content.

    The text goes to a temp file in the same directory, is flushed and fsynced, then
    renamed over the file; the directory is fsynced so the rename survives a crash. A
    reader sees the old file or the new one, never a mix.
    """
    text = dump_allocations(allocations)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return False
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        Path(temp_name).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temp_name).unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
