"""Loading an inventory directory into a validated :class:`~wgfleet.model.Fleet` (and into Nornir).

The directory holds Nornir SimpleInventory files: ``hosts.yaml``, ``groups.yaml`` and
``defaults.yaml``. ``hostname``, ``port``, ``username`` and top-level ``data`` keys are
inherited host → its groups (Nornir's order) → defaults, exactly as Nornir does.
wgfleet reads three ``data`` keys and leaves every other one to the user:

- ``data.fleet`` in defaults.yaml: fleet settings (every key optional);
- ``data.site`` in groups.yaml: a group holding it is a *site*;
- ``data.gateway`` in hosts.yaml: a host holding it is a *gateway* and belongs to
  exactly one site group (directly or through its groups).

Everything is checked in one pass; all problems are raised together as a
:class:`~wgfleet.errors.BadInputError`, each naming file, host or group, and field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wgfleet import inventory_values as v
from wgfleet.errors import BadInputError, Problem
from wgfleet.inventory_nornir import (
    CONNECTION,
    INVALID,
    Element,
    Inheritance,
    check_data_keys,
    read_element,
    read_elements,
)
from wgfleet.inventory_rules import Member, check_fleet, count_tunnels
from wgfleet.inventory_schema import SiteDraft, parse_fleet, parse_gateway, parse_site
from wgfleet.inventory_yaml import load_yaml
from wgfleet.model import Fleet, FleetSettings, Gateway, Site

if TYPE_CHECKING:
    from nornir.core import Nornir

__all__ = ["CONNECTION", "INVENTORY_FILES", "load_fleet", "load_nornir", "tunnel_count"]

INVENTORY_FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")
T = TypeVar("T")


def _read_documents(inventory_dir: Path) -> tuple[dict[str, dict[Any, Any]], list[Problem]]:
    """Parse the three files; raise when one is missing or cannot be parsed at all."""
    if not inventory_dir.is_dir():
        what = "is not a directory" if inventory_dir.exists() else "inventory directory not found"
        raise BadInputError([Problem(str(inventory_dir), "", "", what)])
    documents: dict[str, dict[Any, Any]] = {}
    problems: list[Problem] = []
    for file in INVENTORY_FILES:
        path = inventory_dir / file
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(
                Problem(file, "", "", f"missing inventory file {path} (an empty file is fine)")
            )
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(file, "", "", f"cannot read {path}: {exc}"))
            continue
        document, found = load_yaml(content, file)
        problems += found
        if document is None and not found:
            document = {}  # empty or only comments, as Nornir allows
        if isinstance(document, dict):
            documents[file] = document
        elif document is not None:
            problems.append(
                Problem(
                    file,
                    "",
                    "",
                    f"must be a mapping of names to entries, got {v.describe(document)}",
                )
            )
    if len(documents) < len(INVENTORY_FILES):
        raise BadInputError(problems)
    return documents, problems


def _membership(
    member_scope: v.Scope, chain: list[Element], sites: dict[str, SiteDraft], *, quiet: bool
) -> str | None:
    """Return the one site group of a gateway, or report why there is not exactly one."""
    found = [element.name for element in chain[1:-1] if element.name in sites]
    if len(found) == 1:
        return found[0]
    if quiet:  # its groups are already reported invalid
        return None
    if found:
        member_scope.add(
            "groups",
            f"belongs to {len(found)} site groups ({', '.join(found)}); "
            "a gateway belongs to exactly one site",
        )
    else:
        known = ", ".join(sites) or "(none defined)"
        member_scope.add("groups", f"a gateway must belong to a site group; add one of: {known}")
    return None


def _build(settings: FleetSettings, sites: list[SiteDraft], members: list[Member]) -> Fleet:
    """Turn checked drafts into the model (every required field is known to be valid)."""
    built_sites = {
        site.name: Site(
            name=site.name,
            number=_known(site.number),
            asn=_known(site.asn),
            prefixes=site.prefixes,
            routing=site.routing,
            probes=site.probes,
            role=site.role,
        )
        for site in sites
    }
    gateways: list[Gateway] = []
    for member in members:
        endpoint = member.gateway.endpoint
        if endpoint is None:  # pragma: no cover - such a draft always carries a problem
            raise AssertionError(f"{member.name}: invalid endpoint passed validation")
        gateways.append(
            Gateway(
                name=member.name,
                site=built_sites[_known(member.site)].number,
                index=_known(member.gateway.index),
                endpoint=endpoint,
                hostname=_known(member.hostname),
                port=_known(member.port),
                username=_known(member.username),
                become=member.gateway.become,
                wireguard=member.gateway.wireguard,
                keepalive=member.gateway.keepalive,
                interfaces=member.gateway.interfaces,
            )
        )
    return Fleet(
        settings=settings,
        sites=tuple(sorted(built_sites.values(), key=lambda site: site.number)),
        gateways=tuple(sorted(gateways, key=lambda gw: (gw.site, gw.index))),
    )


def _valid(value: Any, default: Any) -> Any:
    """Map an inherited attribute to a Member field: default if unset, None if invalid."""
    if value is None:
        return default
    return None if value is INVALID else value


def _known(value: T | None) -> T:
    if value is None:  # pragma: no cover - every such draft carries a problem
        raise AssertionError("a draft with an invalid field passed validation")
    return value


def _in_file_order(
    problems: Iterable[Problem], documents: dict[str, dict[Any, Any]]
) -> list[Problem]:
    """Sort problems by file, then host or group in file order, keeping their own order."""
    rank = {file: rank for rank, file in enumerate(INVENTORY_FILES)}
    position = {file: {str(k): n for n, k in enumerate(doc)} for file, doc in documents.items()}

    def key(item: tuple[int, Problem]) -> tuple[int, int, int]:
        index, problem = item
        where = position.get(problem.file, {}).get(problem.where, -1)
        return rank.get(problem.file, len(rank)), where, index

    return [problem for _, problem in sorted(enumerate(problems), key=key)]


def load_fleet(inventory_dir: Path | str) -> Fleet:
    """Load and validate an inventory directory.

    Args:
        inventory_dir: The directory holding hosts.yaml, groups.yaml and defaults.yaml.

    Returns:
        The validated fleet: sites sorted by number, gateways by (site, index).

    Raises:
        BadInputError: With every problem found, each naming file, host or group and
            field; also when the directory or one of the files is missing.
    """
    documents, problems = _read_documents(Path(inventory_dir))
    hosts = read_elements("hosts.yaml", documents["hosts.yaml"], problems)
    groups = read_elements("groups.yaml", documents["groups.yaml"], problems)
    scope = v.Scope("defaults.yaml", "defaults", problems)
    defaults = read_element(scope, documents["defaults.yaml"], grouped=False) or Element(
        "defaults", scope, None, None, None, (), {}, {}
    )
    for element in (*hosts.values(), *groups.values(), defaults):
        check_data_keys(element)
    inheritance = Inheritance(groups, defaults, hosts)

    settings = parse_fleet(defaults.scope, defaults.data.get("fleet"))
    sites = {
        name: parse_site(group.scope, name, group.data["site"])
        for name, group in groups.items()
        if "site" in group.data
    }
    members: list[Member] = []
    bad_groups = {p.where for p in problems if p.file == "hosts.yaml" and p.field == "groups"}
    for name, host in hosts.items():
        if host.data.get("gateway") is None:
            if "gateway" in host.data:
                host.scope.add("data.gateway", "must be a mapping, got an empty value")
            continue
        chain = inheritance.chain(host)
        hostname = inheritance.attribute(host, "hostname")
        if hostname is None:
            host.scope.add(
                "hostname", "no management address: set hostname on the host, a group or defaults"
            )
        members.append(
            Member(
                name=name,
                site=_membership(host.scope, chain, sites, quiet=name in bad_groups),
                gateway=parse_gateway(host.scope, host.data["gateway"]),
                hostname=_valid(hostname, None),
                port=_valid(inheritance.attribute(host, "port"), 22),
                username=_valid(inheritance.attribute(host, "username"), "root"),
            )
        )
    broken = frozenset((problem.field, problem.where) for problem in problems)
    problems += check_fleet(settings, list(sites.values()), members, broken)
    if problems:
        raise BadInputError(_in_file_order(dict.fromkeys(problems), documents))
    return _build(settings, list(sites.values()), members)


def tunnel_count(fleet: Fleet) -> int:
    """Return how many tunnels the fleet's topology needs (pairs of peering gateways).

    Full mesh: every pair of gateways of different sites. Hub-and-spoke: only the pairs
    with at least one gateway of a hub site.
    """
    hubs = {site.number for site in fleet.sites if site.role == "hub"}
    per_site = Counter(gateway.site for gateway in fleet.gateways)
    return count_tunnels(per_site, hubs, fleet.settings.topology)


def load_nornir(inventory_dir: Path | str, *, validate: bool = True, **kwargs: Any) -> Nornir:
    """Return a Nornir object for the inventory (SimpleInventory, threaded runner, no log file).

    Args:
        inventory_dir: The inventory directory.
        validate: Validate it with :func:`load_fleet` first, so bad input is reported
            the wgfleet way before Nornir reads it.
        **kwargs: Passed to ``InitNornir``; a mapping for ``runner``, ``inventory`` or
            ``logging`` is merged into wgfleet's (``runner={"options": {"num_workers": 5}}``).

    Returns:
        The initialised ``nornir.core.Nornir``.

    Raises:
        BadInputError: When ``validate`` is set and the inventory is invalid.
    """
    from nornir import InitNornir

    inventory_dir = Path(inventory_dir)
    if validate:
        load_fleet(inventory_dir)
    config: dict[str, Any] = {
        "runner": {"plugin": "threaded", "options": {}},
        "inventory": {
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(inventory_dir / "hosts.yaml"),
                "group_file": str(inventory_dir / "groups.yaml"),
                "defaults_file": str(inventory_dir / "defaults.yaml"),
            },
        },
        "logging": {"enabled": False},
    }
    for key, value in kwargs.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    nornir: Nornir = InitNornir(**config)
    return nornir
