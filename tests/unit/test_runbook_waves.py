"""Wave planning: the strategies on the article's fleet and on uneven ones, and properties."""

from __future__ import annotations

import ipaddress
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fleets import fleet, reference_fleet, site
from wgfleet.allocations import Allocations
from wgfleet.model import FleetSettings
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.runbook import STRATEGIES, Strategy
from wgfleet.runbook.waves import Wave, plan_waves

POOLS = FleetSettings(pool4=ipaddress.IPv4Network("169.254.0.0/20"))
ARTICLE = plan_fleet(reference_fleet(), Allocations())[0]


@cache
def uneven(shape: tuple[tuple[int, int], ...]) -> FleetPlan:
    """A plan with ``count`` gateways (index 1..count) in each ``(site, count)``."""
    sites = [site(number) for number, _ in shape]
    return plan_fleet(fleet(sites, dict(shape), settings=POOLS), Allocations())[0]


def names(waves: list[Wave]) -> list[list[str]]:
    return [list(w.gateways) for w in waves]


def test_one_gateway_per_site_on_the_article_fleet() -> None:
    waves = plan_waves(ARTICLE, [g.name for g in ARTICLE.gateways], "one-gateway-per-site")
    assert waves == [Wave(1, ("V1-1", "V2-1", "V3-1")), Wave(2, ("V1-2", "V2-2", "V3-2"))]


def test_sites_with_fewer_gateways_sit_out_later_waves() -> None:
    plan = uneven(((1, 3), (2, 1), (3, 2)))
    waves = plan_waves(plan, [g.name for g in plan.gateways], "one-gateway-per-site")
    assert names(waves) == [["V1-1", "V2-1", "V3-1"], ["V1-2", "V3-2"], ["V1-3"]]


def test_one_gateway_per_site_ranks_the_selected_gateways() -> None:
    plan = uneven(((1, 3), (2, 2)))
    waves = plan_waves(plan, ["V1-3", "V2-2", "V1-1"], "one-gateway-per-site")
    assert names(waves) == [["V1-1", "V2-2"], ["V1-3"]]


def test_serial_is_inventory_order_whatever_the_selection_order() -> None:
    waves = plan_waves(ARTICLE, ["V3-2", "V1-1", "V2-1", "V1-1"], "serial")
    assert waves == [Wave(1, ("V1-1",)), Wave(2, ("V2-1",)), Wave(3, ("V3-2",))]


def test_all_is_one_wave() -> None:
    waves = plan_waves(ARTICLE, ["V2-2", "V1-1", "V1-2"], "all")
    assert waves == [Wave(1, ("V1-1", "V1-2", "V2-2"))]


def test_batch_never_puts_two_gateways_of_a_site_in_one_wave() -> None:
    waves = plan_waves(ARTICLE, [g.name for g in ARTICLE.gateways], "batch", 2)
    assert names(waves) == [["V1-1", "V2-1"], ["V1-2", "V3-1"], ["V2-2", "V3-2"]]


def test_batch_takes_the_sites_with_most_gateways_left_first() -> None:
    plan = uneven(((1, 1), (2, 3), (3, 1)))
    waves = plan_waves(plan, [g.name for g in plan.gateways], "batch", 2)
    assert names(waves) == [["V1-1", "V2-1"], ["V2-2", "V3-1"], ["V2-3"]]


def test_batch_larger_than_the_sites_is_one_gateway_per_site() -> None:
    waves = plan_waves(ARTICLE, [g.name for g in ARTICLE.gateways], "batch", 10)
    assert names(waves) == [["V1-1", "V2-1", "V3-1"], ["V1-2", "V2-2", "V3-2"]]


def test_batch_of_one_changes_a_site_partner_last() -> None:
    waves = plan_waves(ARTICLE, [g.name for g in ARTICLE.gateways], "batch", 1)
    assert [w.gateways for w in waves] == [
        ("V1-1",), ("V2-1",), ("V3-1",), ("V1-2",), ("V2-2",), ("V3-2",)
    ]  # fmt: skip


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nothing_selected_is_no_wave(strategy: Strategy) -> None:
    assert plan_waves(ARTICLE, [], strategy, 2) == []


def test_unknown_gateway_is_refused() -> None:
    with pytest.raises(ValueError, match="not gateways of the plan: V9-9"):
        plan_waves(ARTICLE, ["V1-1", "V9-9"], "serial")


@pytest.mark.parametrize("size", [None, 0])
def test_batch_needs_a_size(size: int | None) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        plan_waves(ARTICLE, ["V1-1"], "batch", size)


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown wave strategy"):
        plan_waves(ARTICLE, ["V1-1"], "random", None)  # type: ignore[arg-type]


shapes = st.lists(
    st.tuples(st.integers(1, 9), st.integers(1, 4)), min_size=1, max_size=5,
    unique_by=lambda t: t[0],
).map(lambda items: tuple(sorted(items)))  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(shape=shapes, strategy=st.sampled_from(STRATEGIES), size=st.integers(1, 5), data=st.data())
def test_wave_properties(
    shape: tuple[tuple[int, int], ...], strategy: Strategy, size: int, data: st.DataObject
) -> None:
    plan = uneven(shape)
    everyone = [g.name for g in plan.gateways]
    selected = data.draw(st.lists(st.sampled_from(everyone), unique=True), label="selected")
    waves = plan_waves(plan, selected, strategy, size)
    position = {name: i for i, name in enumerate(everyone)}
    site_of = {g.name: g.gateway.site for g in plan.gateways}
    index_of = {g.name: g.gateway.index for g in plan.gateways}

    # Every selected gateway is in exactly one wave; waves are numbered 1.. and not empty.
    placed = [name for wave in waves for name in wave.gateways]
    assert sorted(placed) == sorted(selected)
    assert [w.number for w in waves] == list(range(1, len(waves) + 1))
    assert all(w.gateways for w in waves)
    # Inventory order inside a wave, and a site's gateways in index order across waves.
    for wave in waves:
        assert list(wave.gateways) == sorted(wave.gateways, key=position.__getitem__)
    wave_of = {name: w.number for w in waves for name in w.gateways}
    for a in selected:
        for b in selected:
            if site_of[a] == site_of[b] and index_of[a] < index_of[b]:
                assert wave_of[a] <= wave_of[b]
    # A site never changes two gateways at once, except when asked for (all, serial is 1).
    if strategy in ("one-gateway-per-site", "batch", "serial"):
        for wave in waves:
            sites = [site_of[name] for name in wave.gateways]
            assert len(sites) == len(set(sites))
    if strategy == "batch" and selected:
        assert all(len(w.gateways) <= size for w in waves)
        largest = max(sum(1 for n in selected if site_of[n] == s) for s, _ in shape)
        assert len(waves) == max(-(-len(selected) // size), largest)  # the fewest possible
    if strategy == "one-gateway-per-site" and selected:
        counts = [sum(1 for n in selected if site_of[n] == s) for s, _ in shape]
        assert len(waves) == max(counts)
    if strategy == "serial":
        assert all(len(w.gateways) == 1 for w in waves)
    if strategy == "all":
        assert len(waves) == (1 if selected else 0)
