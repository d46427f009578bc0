"""The persistent allocations file: gateway marks and point-to-point subnets that never move.

``inventory/allocations.yaml`` is written by wgfleet and committed by the user beside the
inventory. It holds the two numbers a gateway's neighbours depend on:

* the **mark** of every gateway: the tunnel towards gateway G is ``wg<mark of G>`` and
  listens on ``listen_port_base + <mark of G>`` on every peer of G;
* the **link** of every unordered pair of gateways that have a tunnel: a /127 from the IPv6
  pool and a /31 from the IPv4 pool; the first gateway listed owns the even address of both.

``allocate`` keeps every entry still in use, drops those of gateways or pairs that are gone
and gives newcomers the lowest free numbers, so nothing that exists is ever renumbered.
Loading validates a hand-edited file and reports every problem, each naming the file and
the entry. Saving is atomic (temp file in the same directory, fsync, ``os.replace``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgfleet.errors import BadInputError, Problem
from wgfleet.inventory_yaml import load_yaml
from wgfleet.model import FleetSettings

FORMAT_VERSION = 1
_LINK_KEYS = ("gateways", "ipv6", "ipv4")
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
        host = self.ipv6.network_address + self.side(gateway)
        return ipaddress.IPv6Interface(f"{host}/{self.ipv6.prefixlen}")

    def address4(self, gateway: str) -> ipaddress.IPv4Interface:
        """Return the /31 address of ``gateway`` on this link."""
        host = self.ipv4.network_address + self.side(gateway)
        return ipaddress.IPv4Interface(f"{host}/{self.ipv4.prefixlen}")


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


def parse_allocations(text: str, settings: FleetSettings, file: str) -> Allocations:
    """Parse and validate the text of an allocations file named ``file`` in messages.

    Raises:
        BadInputError: Every problem found, each naming the file and the entry.
    """
    data, problems = load_yaml(text, file)
    if problems:
        raise BadInputError(problems)
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
        links = self._links(data.get("links") or [], marks)
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
            if not isinstance(name, str) or not isinstance(mark, int) or isinstance(mark, bool):
                self.add(where, "", f"must map a gateway name to an integer, not {mark!r}")
                continue
            if not 1 <= mark <= highest:
                self.add(where, "", f"mark {mark} is outside 1..{highest}")
                continue
            if mark in owner:
                self.add(where, "", f"duplicate mark {mark}: already the mark of {owner[mark]}")
                continue
            owner[mark] = name
            marks[name] = mark
        return marks

    def _links(self, raw: Any, marks: Mapping[str, int]) -> dict[PairKey, Link]:
        if not isinstance(raw, list):
            self.add("links", "", "must be a list of links")
            return {}
        links: dict[PairKey, Link] = {}
        seen6: dict[ipaddress.IPv6Network, str] = {}
        seen4: dict[ipaddress.IPv4Network, str] = {}
        for position, entry in enumerate(raw):
            link = self._link(position, entry, marks)
            if link is None:
                continue
            where = _link_where(position, link.gateways)
            key = pair_key(*link.gateways)
            problems_before = len(self.problems)
            if key in links:
                self.add(where, "gateways", "duplicate link: this pair is already listed")
            if link.ipv6 in seen6:
                self.add(where, "ipv6", f"duplicate subnet {link.ipv6}: already {seen6[link.ipv6]}")
            if link.ipv4 in seen4:
                self.add(where, "ipv4", f"duplicate subnet {link.ipv4}: already {seen4[link.ipv4]}")
            if len(self.problems) == problems_before:
                links[key] = link
                seen6[link.ipv6] = seen4[link.ipv4] = where
        return links

    def _link(self, position: int, entry: Any, marks: Mapping[str, int]) -> Link | None:
        where = f"links[{position}]"
        if not isinstance(entry, dict):
            self.add(where, "", "must be a mapping with keys gateways, ipv6, ipv4")
            return None
        names = entry.get("gateways")
        if isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names):
            where = _link_where(position, (names[0], names[1]))
        for key in sorted(set(entry) - set(_LINK_KEYS), key=str):
            self.add(where, str(key), "unknown key (expected gateways, ipv6, ipv4)")
        missing = [key for key in _LINK_KEYS if key not in entry]
        if missing:
            self.add(where, missing[0], "missing")
            return None
        problems_before = len(self.problems)
        if not (
            isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)
        ):
            self.add(where, "gateways", "must be a list of two gateway names")
            return None
        if names[0] == names[1]:
            self.add(where, "gateways", "a gateway cannot have a tunnel to itself")
        for name in names:
            if name not in marks:
                self.add(where, "gateways", f"{name} has no entry under marks")
        net6, even6 = self._pair(where, "ipv6", entry["ipv6"], 6)
        net4, even4 = self._pair(where, "ipv4", entry["ipv4"], 4)
        if even6 is not None and even4 is not None and even6 != even4:
            message = f"ownership mismatch: {names[even6]} owns the even IPv6 address"
            self.add(where, "ipv4", f"{message} but {names[even4]} owns the even IPv4 address")
        if len(self.problems) != problems_before or net6 is None or net4 is None:
            return None
        assert isinstance(net6, ipaddress.IPv6Network) and isinstance(net4, ipaddress.IPv4Network)
        ordered = (names[0], names[1]) if even6 == 0 else (names[1], names[0])
        return Link(gateways=ordered, ipv6=net6, ipv4=net4)

    def _pair(
        self, where: str, family: str, raw: Any, version: int
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, int | None]:
        """Validate a two-address list; return its subnet and the position of the even one."""
        length = 127 if version == 6 else 31
        pool = self.settings.pool6 if version == 6 else self.settings.pool4
        example = "2001:db8:ff::/127" if version == 6 else "169.254.1.0/31"
        if not (isinstance(raw, list) and len(raw) == 2):
            self.add(where, family, f"must be a list of two addresses like {example}")
            return None, None
        try:
            addresses = [ipaddress.ip_interface(str(item)) for item in raw]
        except ValueError as exc:
            self.add(where, family, f"not an address: {exc}")
            return None, None
        if any(addr.version != version for addr in addresses):
            self.add(where, family, f"must be IPv{version} addresses like {example}")
            return None, None
        if any(addr.network.prefixlen != length for addr in addresses):
            self.add(where, family, f"wrong prefix length: point-to-point addresses are /{length}")
            return None, None
        network = addresses[0].network
        if addresses[1].network != network or addresses[0].ip == addresses[1].ip:
            self.add(
                where, family, f"{raw[0]} and {raw[1]} must be the two addresses of one /{length}"
            )
            return None, None
        if not network.subnet_of(pool):  # type: ignore[arg-type]
            self.add(where, family, f"{network} is outside the pool {pool} (defaults.yaml)")
            return None, None
        even = 0 if addresses[0].ip == network.network_address else 1
        return network, even


def _link_where(position: int, names: tuple[str, str]) -> str:
    return f"links[{position}] {names[0]}/{names[1]}"


# --- writing --------------------------------------------------------------------------------

_HEADER = """\
# wgfleet allocations: written by wgfleet (`plan --save-allocations`), committed by you.
# marks: the tunnel towards a gateway is wg<mark> and listens on listen_port_base + <mark>.
# links: one per tunnel; the first gateway owns the even address of both subnets.
# Existing numbers never change when the fleet grows; entries of removed gateways are
# dropped. Hand edits are validated: a duplicate or inconsistent entry is refused.
"""


def _scalar(value: str) -> str:
    """Return ``value`` as a YAML flow scalar, quoted only when plain text would change it."""
    data, problems = load_yaml(f"[{value}]", "")
    return value if not problems and data == [value] else json.dumps(value)


def dump_allocations(allocations: Allocations) -> str:
    """Return the allocations as the text of an allocations file (stable order)."""
    lines = [_HEADER.rstrip("\n"), f"version: {FORMAT_VERSION}", "marks:"]
    for name, mark in sorted(allocations.marks.items(), key=lambda item: (item[1], item[0])):
        lines.append(f"  {_scalar(name)}: {mark}")
    if not allocations.marks:
        lines[-1] = "marks: {}"
    lines.append("links:" if allocations.links else "links: []")
    for link in sorted(allocations.links.values(), key=lambda link: (link.ipv6, link.ipv4)):
        a, b = link.gateways
        lines.append(f"  - gateways: [{_scalar(a)}, {_scalar(b)}]")
        six = [_scalar(str(link.address6(name))) for name in link.gateways]
        four = [_scalar(str(link.address4(name))) for name in link.gateways]
        lines.append(f"    ipv6: [{six[0]}, {six[1]}]")
        lines.append(f"    ipv4: [{four[0]}, {four[1]}]")
    return "\n".join(lines) + "\n"


def save_allocations(path: Path, allocations: Allocations) -> bool:
    """Write the allocations file atomically; return False if it already held this content.

    The text goes to a temp file in the same directory, is flushed and fsynced, then
    replaces the file with ``os.replace``; the directory is fsynced so the rename survives
    a crash. A reader sees the old file or the new one, never a mix.
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
