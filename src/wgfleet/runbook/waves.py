"""Wave planning: which selected gateways a run changes together, and in which order (pure).

Strategies (``docs/runbooks.md``):

* ``one-gateway-per-site``: wave *k* holds the *k*-th selected gateway (by index) of every
  site; a site with fewer selected gateways sits out the later waves. A site never has two
  gateways changing at once, and a gateway's site partner comes only in a later wave.
* ``serial``: one gateway per wave, in inventory order.
* ``batch``: ``batch_size`` gateways per wave, never two of one site in the same wave. Each
  wave takes the next gateway (by index) of the sites with the most gateways left, ties in
  inventory order: the fewest waves possible, and a site's gateways still go in index order.
* ``all``: one wave with every selected gateway.

Inventory order is the plan's order: site, then index. Within a wave, gateways keep it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wgfleet.plan import FleetPlan, GatewayPlan
from wgfleet.runbook import STRATEGIES, Strategy


@dataclass(frozen=True)
class Wave:
    """The gateways one wave changes together.

    Attributes:
        number: 1 for the first wave (what people and the change record see); the wave's
            position in :func:`plan_waves`'s list is ``number - 1``.
        gateways: Gateway names, in inventory order.
    """

    number: int
    gateways: tuple[str, ...]


def plan_waves(
    plan: FleetPlan, selected: Sequence[str], strategy: Strategy, batch_size: int | None = None
) -> list[Wave]:
    """Split the selected gateways into waves.

    Args:
        plan: The fleet plan (gives each gateway's site, index and inventory position).
        selected: Names of the gateways the run targets, in any order; duplicates are ignored.
        strategy: One of :data:`wgfleet.runbook.STRATEGIES`.
        batch_size: Gateways per wave, for ``batch`` only (at least 1).

    Returns:
        The waves, numbered from 1; empty when nothing is selected.

    Raises:
        ValueError: A selected name is not a gateway of the plan, the strategy is unknown,
            or ``batch`` has no valid ``batch_size``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown wave strategy {strategy!r}")
    wanted = set(selected)
    unknown = sorted(wanted - {g.name for g in plan.gateways})
    if unknown:
        raise ValueError(f"not gateways of the plan: {', '.join(unknown)}")
    members = [g for g in plan.gateways if g.name in wanted]
    groups: list[list[GatewayPlan]]
    if strategy == "all":
        groups = [members] if members else []
    elif strategy == "serial":
        groups = [[g] for g in members]
    elif strategy == "one-gateway-per-site":
        groups = _per_site(members)
    else:
        if batch_size is None or batch_size < 1:
            raise ValueError(f"strategy batch needs a batch_size of at least 1, got {batch_size}")
        groups = _batches(members, batch_size)
    return [
        Wave(number, tuple(g.name for g in group)) for number, group in enumerate(groups, start=1)
    ]


def _per_site(members: list[GatewayPlan]) -> list[list[GatewayPlan]]:
    """Wave k: the k-th member of every site (members come in site, then index order)."""
    groups: list[list[GatewayPlan]] = []
    rank: dict[int, int] = {}
    for gateway in members:
        k = rank.get(gateway.gateway.site, 0)
        rank[gateway.gateway.site] = k + 1
        if k == len(groups):
            groups.append([])
        groups[k].append(gateway)
    return groups


def _batches(members: list[GatewayPlan], size: int) -> list[list[GatewayPlan]]:
    """Each wave takes the next gateway of the ``size`` sites with the most left to change.

    Highest level first (Hu's algorithm for unit tasks in chains): it needs the fewest
    waves possible, ``max(ceil(gateways / size), gateways of the largest site)``. Ties go
    to the site that comes first in inventory order.
    """
    queues: dict[int, list[GatewayPlan]] = {}
    for gateway in members:
        queues.setdefault(gateway.gateway.site, []).append(gateway)
    order = {g.name: position for position, g in enumerate(members)}
    first = {site: order[queue[0].name] for site, queue in queues.items()}
    groups: list[list[GatewayPlan]] = []
    while queues:
        chosen = sorted(queues, key=lambda site: (-len(queues[site]), first[site]))[:size]
        group = [queues[site].pop(0) for site in chosen]
        for site in chosen:
            if not queues[site]:
                del queues[site]
        groups.append(sorted(group, key=lambda g: order[g.name]))
    return groups
