"""The lab topology model: names, namespaces and addresses for N sites x M gateways."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from wgfleet.errors import BadInputError
from wgfleet.lab.inventory import known_hosts_lines, lab_inventory
from wgfleet.lab.topology import MAX_GATEWAYS, MAX_SITES, build_topology

REPO = Path(__file__).resolve().parents[2]


def test_default_lab_is_the_articles_fleet() -> None:
    topo = build_topology()
    assert [gw.name for gw in topo.gateways] == ["V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2"]
    v21 = topo.gateway("v2-1")
    assert str(v21.endpoint) == "2001:db8:2::1/64"
    assert str(v21.mgmt_address) == "127.77.2.1"
    assert str(v21.lan6) == "2001:db8:a2::11/64"
    assert str(v21.lan4) == "10.0.2.11/24"
    assert [str(s.host6) for s in topo.sites] == [
        "2001:db8:a1::1/64",
        "2001:db8:a2::1/64",
        "2001:db8:a3::1/64",
    ]
    assert topo.state_dir == Path("/var/lib/wgfleet-lab/main")
    assert topo.port == 2222


def test_namespaces_carry_the_lab_name() -> None:
    topo = build_topology(2, 1, name="t2")
    assert topo.all_netns() == [
        "wgl-t2-inet",
        "wgl-t2-s1",
        "wgl-t2-s2",
        "wgl-t2-g1-1",
        "wgl-t2-g2-1",
    ]
    assert all(ns.startswith(topo.netns_prefix) for ns in topo.all_netns())


@settings(deadline=None)  # large labs take a while to build on a loaded machine
@given(st.integers(2, MAX_SITES), st.integers(1, MAX_GATEWAYS))
def test_every_address_and_name_is_unique(sites: int, gateways: int) -> None:
    topo = build_topology(sites, gateways)
    assert len(topo.gateways) == sites * gateways
    for attr in ("name", "netns", "mgmt_address", "endpoint", "lan6", "lan4"):
        values = [getattr(gw, attr) for gw in topo.gateways]
        assert len(set(values)) == len(values), attr
    for gw in topo.gateways:
        site = topo.sites[gw.site - 1]
        assert gw.lan6 in site.host6.network or gw.lan6.ip in site.host6.network
        assert gw.lan4.ip in site.host4.network
        assert gw.lan6.ip != site.host6.ip and gw.lan4.ip != site.host4.ip
        assert gw.mgmt_address in ipaddress.IPv4Network("127.0.0.0/8")
        assert gw.endpoint.ip in ipaddress.IPv6Network("2001:db8::/32")
        # Interface names Linux accepts.
        assert len(gw.site_veth) <= 15 and len(gw.inet_veth) <= 15


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sites": 0}, "--sites: must be 1..99, got 0"),
        ({"sites": 100}, "--sites: must be 1..99, got 100"),
        ({"sites": 1}, "a VPN needs at least 2 sites"),
        ({"gateways": 0}, "--gateways: must be 1..8 gateways per site, got 0"),
        ({"name": ""}, "--name"),
        ({"name": "x" * 9}, "--name"),
        ({"name": "a;b"}, "--name"),
        ({"port": 22}, "--port: must be 1024..65535, got 22"),
    ],
)
def test_bad_sizes_are_refused_with_the_option_named(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(BadInputError) as info:
        build_topology(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(BadInputError) as info:
        build_topology(0, 0, name="BAD", port=1)
    assert len(info.value.problems) == 4


def test_lab_inventory_equals_the_shipped_article_inventory() -> None:
    generated = lab_inventory(build_topology())
    for name in ("hosts", "groups"):
        shipped = yaml.safe_load((REPO / "inventory" / f"{name}.yaml").read_text())
        assert generated[name] == shipped, name
    shipped_defaults = yaml.safe_load((REPO / "inventory" / "defaults.yaml").read_text())
    assert generated["defaults"]["connection_options"] == shipped_defaults["connection_options"]
    assert generated["defaults"]["username"] == shipped_defaults["username"]


def test_known_hosts_use_the_bracketed_port_form() -> None:
    topo = build_topology(2, 1, port=2299)
    lines = known_hosts_lines(topo, {"V1-1": "ssh-ed25519 AAAA1", "V2-1": "ssh-ed25519 AAAA2"})
    assert lines == ["[127.77.1.1]:2299 ssh-ed25519 AAAA1", "[127.77.2.1]:2299 ssh-ed25519 AAAA2"]
