"""Tests of the inventory loader: the article's fleet, Nornir's semantics, strict YAML, rules."""

from __future__ import annotations

import ipaddress
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nornir.core.inventory import Host
from nornir.plugins.inventory.simple import SimpleInventory

from wgfleet import inventory_values as v
from wgfleet.errors import BadInputError, Problem
from wgfleet.inventory import load_fleet, load_nornir, tunnel_count
from wgfleet.inventory_nornir import Inheritance, read_element, read_elements
from wgfleet.inventory_yaml import load_yaml
from wgfleet.model import FleetSettings, StaticRoute

SHIPPED = Path(__file__).parents[2] / "inventory"
Edit = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(SHIPPED, target)
    return target


def edit(directory: Path, change: Edit) -> Path:
    """Apply ``change(hosts, groups, defaults)`` to the YAML files of ``directory``."""
    documents = [
        yaml.safe_load((directory / name).read_text()) or {}
        for name in ("hosts.yaml", "groups.yaml", "defaults.yaml")
    ]
    change(*documents)
    for name, document in zip(
        ("hosts.yaml", "groups.yaml", "defaults.yaml"), documents, strict=True
    ):
        (directory / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


def problems_of(directory: Path) -> list[Problem]:
    with pytest.raises(BadInputError) as caught:
        load_fleet(directory)
    return caught.value.problems


def write_fleet(directory: Path, per_site: list[int], **fleet: Any) -> Path:
    """Write an article-style inventory: site s has per_site[s-1] gateways."""
    directory.mkdir(parents=True, exist_ok=True)
    hosts: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for s, count in enumerate(per_site, start=1):
        groups[f"site{s}"] = {
            "data": {
                "site": {
                    "number": s,
                    "asn": 65000 + s,
                    "prefixes": [f"2001:db8:a{s:x}::/64", f"10.{s // 256}.{s % 256}.0/24"],
                }
            }
        }
        for n in range(1, count + 1):
            hosts[f"V{s}-{n}"] = {
                "hostname": f"10.255.{s}.{n}",
                "groups": [f"site{s}"],
                "data": {
                    "gateway": {
                        "index": n,
                        "endpoint": f"2001:db8:{s:x}::{n:x}",
                        "interfaces": [
                            {"name": "lan0", "addresses": [f"2001:db8:a{s:x}::{10 + n:x}/64"]}
                        ],
                    }
                },
            }
    (directory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (directory / "groups.yaml").write_text(yaml.safe_dump(groups))
    (directory / "defaults.yaml").write_text(yaml.safe_dump({"data": {"fleet": fleet}}))
    return directory


# The article's fleet ----------------------------------------------------------------


def test_shipped_inventory_is_the_article_fleet() -> None:
    fleet = load_fleet(SHIPPED)

    assert fleet.settings == FleetSettings()
    assert [(s.name, s.number, s.asn) for s in fleet.sites] == [
        ("site1", 1, 65001),
        ("site2", 2, 65002),
        ("site3", 3, 65003),
    ]
    assert fleet.site(2).prefixes == (
        ipaddress.ip_network("2001:db8:a2::/64"),
        ipaddress.ip_network("10.0.2.0/24"),
    )
    assert all(site.routing.mode == "connected" and site.role == "spoke" for site in fleet.sites)
    assert [g.name for g in fleet.gateways] == ["V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2"]
    for gateway in fleet.gateways:
        s, n = gateway.site, gateway.index
        assert gateway.name == f"V{s}-{n}"
        assert gateway.endpoint == ipaddress.ip_address(f"2001:db8:{s}::{n}")
        assert (gateway.hostname, gateway.port) == (f"127.77.{s}.{n}", 2222)
        assert (gateway.username, gateway.become, gateway.wireguard) == ("root", "root", "auto")
        assert gateway.keepalive is None
        assert [i.name for i in gateway.interfaces] == ["lan0"]
        assert gateway.interfaces[0].addresses == (
            ipaddress.ip_interface(f"2001:db8:a{s}::1{n}/64"),
            ipaddress.ip_interface(f"10.0.{s}.1{n}/24"),
        )
    assert tunnel_count(fleet) == 12


def test_load_nornir_sees_the_same_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing (e.g. nornir.log) may be written here
    nornir = load_nornir(SHIPPED, runner={"options": {"num_workers": 3}})
    fleet = load_fleet(SHIPPED)

    assert sorted(nornir.inventory.hosts) == [g.name for g in fleet.gateways]
    for gateway in fleet.gateways:
        host = nornir.inventory.hosts[gateway.name]
        params = host.get_connection_parameters("wgssh")
        assert (params.hostname, params.port, params.username) == (
            gateway.hostname,
            gateway.port,
            gateway.username,
        )
        assert host["gateway"]["index"] == gateway.index
    assert nornir.config.runner.plugin == "threaded"
    assert nornir.config.runner.options == {"num_workers": 3}
    assert nornir.config.logging.enabled is False
    assert list(tmp_path.iterdir()) == []


def test_load_nornir_validates_first(inventory: Path) -> None:
    edit(inventory, lambda h, g, d: h["V1-1"].update(port="22"))
    with pytest.raises(BadInputError):
        load_nornir(inventory)


# Files and directories --------------------------------------------------------------


def test_missing_directory_is_named(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nowhere") == [
        Problem(str(tmp_path / "nowhere"), "", "", "inventory directory not found")
    ]


def test_every_missing_file_is_named(tmp_path: Path) -> None:
    tmp_path.joinpath("groups.yaml").write_text("")
    files = [p.file for p in problems_of(tmp_path)]
    assert files == ["hosts.yaml", "defaults.yaml"]


def test_empty_defaults_file_means_default_settings(inventory: Path) -> None:
    (inventory / "defaults.yaml").write_text("# nothing here\n")
    assert load_fleet(inventory).settings == FleetSettings()


def test_top_level_list_is_refused(inventory: Path) -> None:
    (inventory / "groups.yaml").write_text("- site1\n")
    assert "must be a mapping of names to entries" in problems_of(inventory)[0].message


def test_problem_text_names_file_object_and_field(inventory: Path) -> None:
    edit(inventory, lambda h, g, d: h["V1-1"]["data"]["gateway"].update(endpoint="nope"))
    with pytest.raises(BadInputError) as caught:
        load_fleet(inventory)
    assert str(caught.value).splitlines() == [
        "1 problem found, nothing was changed:",
        "  - hosts.yaml: V1-1: data.gateway.endpoint: 'nope' is not an IP address",
    ]


def test_every_problem_is_reported_in_one_pass(inventory: Path) -> None:
    def break_everything(hosts: dict[str, Any], groups: dict[str, Any], _: Any) -> None:
        for name, host in hosts.items():
            host["data"]["gateway"]["wireguard"] = "fast"
            host["port"] = 0
            host["data"]["gateway"]["interfaces"][0]["name"] = f"{name}/lan"
        for group in groups.values():
            group["data"]["site"]["asn"] = 23456

    problems = problems_of(edit(inventory, break_everything))
    assert len(problems) == 6 * 3 + 3  # an invalid ASN is not also a duplicate ASN


# Nornir's inheritance ----------------------------------------------------------------


def test_attributes_and_data_are_inherited_like_nornir(inventory: Path) -> None:
    def use_groups(hosts: dict[str, Any], groups: dict[str, Any], defaults: dict[str, Any]) -> None:
        groups["ops"] = {"username": "ops", "port": 2200, "groups": ["core"]}
        groups["core"] = {"username": "core", "port": 2201}
        hosts["V1-1"]["groups"] = ["site1", "ops"]
        del hosts["V1-1"]["port"]
        hosts["V1-1"]["data"]["gateway"]["become"] = "sudo"
        hosts["V2-1"]["groups"] = ["site2", "core"]
        hosts["V2-1"]["data"]["gateway"]["become"] = "sudo"
        defaults["connection_options"]["wgssh"]["port"] = 2022
        hosts["V3-1"]["connection_options"] = {"wgssh": {"hostname": "gw31.example.net"}}

    fleet = load_fleet(edit(inventory, use_groups))
    # connection_options.wgssh beats the host's own port, as in Nornir.
    assert (fleet.gateway("V1-1").username, fleet.gateway("V1-1").port) == ("ops", 2022)
    assert fleet.gateway("V2-1").username == "core"
    assert fleet.gateway("V3-1").hostname == "gw31.example.net"


def _write_random_inventory(directory: Path, spec: dict[str, Any]) -> None:
    for name in ("hosts", "groups", "defaults"):
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(spec[name]))


_names = st.sampled_from(["g1", "g2", "g3", "g4"])
_attrs = st.fixed_dictionaries(
    {},
    optional={
        "hostname": st.sampled_from(["10.0.0.1", "10.0.0.2", "gw.example"]),
        "port": st.integers(1, 3),
        "username": st.sampled_from(["alice", "bob"]),
        "data": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
        "connection_options": st.fixed_dictionaries(
            {"wgssh": st.fixed_dictionaries({}, optional={"port": st.integers(4, 6)})}
        ),
    },
)


@st.composite
def _inventories(draw: st.DrawFn) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for index, name in enumerate(["g1", "g2", "g3", "g4"]):
        entry = dict(draw(_attrs))
        # Parents only among later groups: no cycles (Nornir would recurse forever).
        later = [f"g{n}" for n in range(index + 2, 5)]
        if later:
            entry["groups"] = draw(st.lists(st.sampled_from(later), unique=True, max_size=2))
        groups[name] = entry
    hosts = {
        f"h{n}": {**draw(_attrs), "groups": draw(st.lists(_names, unique=True, max_size=3))}
        for n in range(3)
    }
    defaults = draw(_attrs)
    return {"hosts": hosts, "groups": groups, "defaults": defaults}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_inventories())
def test_inheritance_matches_nornir(spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as raw:
        directory = Path(raw)
        _write_random_inventory(directory, spec)
        nornir = SimpleInventory(
            str(directory / "hosts.yaml"),
            str(directory / "groups.yaml"),
            str(directory / "defaults.yaml"),
        ).load()
    problems: list[Problem] = []
    hosts = read_elements("hosts.yaml", spec["hosts"], problems)
    groups = read_elements("groups.yaml", spec["groups"], problems)
    defaults = read_element(v.Scope("defaults.yaml", "defaults", problems), spec["defaults"])
    assert defaults is not None
    inheritance = Inheritance(groups, defaults, hosts)
    assert problems == []
    for name, host in hosts.items():
        theirs: Host = nornir.hosts[name]
        params = theirs.get_connection_parameters("wgssh")
        for key in ("hostname", "port", "username"):
            assert inheritance.attribute(host, key) == getattr(params, key), (name, key)
        assert inheritance.data(host) == theirs.extended_data()
        chain = [element.name for element in inheritance.chain(host)[1:-1]]
        assert chain == [group.name for group in theirs.extended_groups()]


# Accepted variations -----------------------------------------------------------------


def test_hub_and_spoke_needs_fewer_point_to_point_subnets(inventory: Path) -> None:
    def hub(_: Any, groups: dict[str, Any], defaults: dict[str, Any]) -> None:
        groups["site1"]["data"]["site"]["role"] = "hub"
        defaults["data"]["fleet"]["topology"] = "hub-and-spoke"
        defaults["data"]["fleet"]["pools"]["ipv4"] = "169.254.1.0/28"  # 8 /31s

    fleet = load_fleet(edit(inventory, hub))
    assert tunnel_count(fleet) == 8  # 2 hub gateways x 4 spoke gateways
    assert fleet.site(1).role == "hub"

    edit(inventory, lambda h, g, d: d["data"]["fleet"].update(topology="full-mesh"))
    [problem] = problems_of(inventory)
    assert problem.field == "data.fleet.pools.ipv4"
    assert "holds 8 /31 subnet(s) but the full-mesh fleet needs 12" in problem.message


def test_routing_modes_static_and_ospf(inventory: Path) -> None:
    def routes(_: Any, groups: dict[str, Any], __: Any) -> None:
        groups["site1"]["data"]["site"]["routes"] = {
            "mode": "static",
            "static": [
                {"prefix": "10.0.1.0/24", "via": "10.0.1.1"},
                {"prefix": "10.9.0.0/16", "interface": "lan0"},
            ],
        }
        groups["site2"]["data"]["site"]["routes"] = {"mode": "ospf", "interfaces": ["lan0"]}

    fleet = load_fleet(edit(inventory, routes))
    assert fleet.site(1).routing.static == (
        StaticRoute(ipaddress.ip_network("10.0.1.0/24"), ipaddress.ip_address("10.0.1.1")),
        StaticRoute(ipaddress.ip_network("10.9.0.0/16"), None, "lan0"),
    )
    assert fleet.site(2).routing.mode == "ospf"
    assert fleet.site(2).routing.ospf_interfaces == ("lan0",)


def test_sudo_user_keepalive_and_fleet_settings(inventory: Path) -> None:
    def change(hosts: dict[str, Any], _: Any, defaults: dict[str, Any]) -> None:
        hosts["V1-1"]["username"] = "wgadmin"
        hosts["V1-1"]["data"]["gateway"].update(become="sudo", keepalive=25, wireguard="kernel")
        defaults["data"]["fleet"].update(mtu=1380, bfd=True, namespace="vpn", interface_prefix="t")
        defaults["data"]["fleet"]["bgp"].update(hold_time=0, error_wait_time=[1, 1])
        defaults["data"]["fleet"]["verify"].update(loss_warning_percent=2.5)
        defaults["data"]["user_note"] = "user data is left alone"

    fleet = load_fleet(edit(inventory, change))
    gateway = fleet.gateway("V1-1")
    assert (gateway.username, gateway.become, gateway.keepalive) == ("wgadmin", "sudo", 25)
    assert gateway.wireguard == "kernel"
    settings_ = fleet.settings
    assert (settings_.mtu, settings_.bfd, settings_.namespace) == (1380, True, "vpn")
    assert settings_.interface_prefix == "t"
    assert (settings_.bgp.hold_time, settings_.bgp.error_wait_time) == (0, (1, 1))
    assert settings_.verify.loss_warning_percent == 2.5


def test_non_gateway_hosts_and_groups_are_allowed(inventory: Path) -> None:
    def extra(hosts: dict[str, Any], groups: dict[str, Any], _: Any) -> None:
        hosts["monitor"] = {"hostname": "192.0.2.9", "groups": ["tools"]}
        groups["tools"] = {"data": {"owner": "noc"}}

    assert len(load_fleet(edit(inventory, extra)).gateways) == 6


# Strict YAML --------------------------------------------------------------------------


def test_yaml_1_2_scalars() -> None:
    document, problems = load_yaml(
        "a: yes\nb: off\nc: 010\nd: 0o10\ne: 0x1F\nf: 1:30\ng: true\nh: ~\ni: 2001:db8::1\n"
        "j: 2026-01-01\nk: 1.5\n",
        "x.yaml",
    )
    assert problems == []
    assert document == {
        "a": "yes",
        "b": "off",
        "c": 10,
        "d": 8,
        "e": 31,
        "f": "1:30",
        "g": True,
        "h": None,
        "i": "2001:db8::1",
        "j": "2026-01-01",
        "k": 1.5,
    }


def test_every_duplicate_key_is_reported_with_its_path() -> None:
    text = "V1-1:\n  port: 1\n  port: 2\nV1-2: {}\nV1-1: {data: {a: 1, a: 2}}\n"
    document, problems = load_yaml(text, "hosts.yaml")
    assert [(p.where, p.field) for p in problems] == [
        ("V1-1", "port"),
        ("V1-1", ""),
        ("V1-1", "data.a"),
    ]
    assert "line 5, first on line 1" in problems[1].message
    assert document["V1-1"] == {"data": {"a": 2}}


def test_merge_keys_are_not_duplicates() -> None:
    document, problems = load_yaml("base: &b {x: 1}\nc:\n  <<: *b\n  x: 2\n", "groups.yaml")
    assert problems == []
    assert document["c"] == {"x": 2}


def test_syntax_error_is_located() -> None:
    _, [problem] = load_yaml("a: 1\n b: 2\n", "defaults.yaml")
    assert (problem.file, problem.where) == ("defaults.yaml", "line 2")
    assert problem.message.startswith("YAML syntax error: mapping values are not allowed")


def test_python_tags_are_refused() -> None:
    _, [problem] = load_yaml("a: !!python/object/apply:os.system [id]\n", "hosts.yaml")
    assert "could not determine a constructor" in problem.message


# Value parsers (properties) -----------------------------------------------------------

_SAFE = string.ascii_letters + string.digits + "_.-"


@given(st.text(min_size=1, max_size=20), st.sampled_from(sorted(v.SHELL_METACHARACTERS)))
def test_any_shell_metacharacter_is_refused(text: str, bad: str) -> None:
    scope = v.Scope("f", "w")
    value = text[: len(text) // 2] + bad + text[len(text) // 2 :]
    with pytest.raises(v.Invalid):
        v.namespace_name(scope, "ns", value)
    assert scope.problems


@given(st.text(alphabet=_SAFE, min_size=1, max_size=15))
def test_interface_names_linux_accepts_are_accepted(name: str) -> None:
    scope = v.Scope("f", "w")
    if name.startswith("-") or name in (".", ".."):
        with pytest.raises(v.Invalid):
            v.interface_name(scope, "name", name)
    else:
        assert v.interface_name(scope, "name", name) == name
        assert scope.problems == []


@given(st.integers(16, 40))
def test_long_interface_names_are_refused(length: int) -> None:
    scope = v.Scope("f", "w")
    with pytest.raises(v.Invalid):
        v.interface_name(scope, "name", "a" * length)
    assert f"is {length} characters" in scope.problems[0].message


@pytest.mark.parametrize("value", [True, False, "1", 1.0, None, [1]])
def test_integers_refuse_other_types(value: object) -> None:
    scope = v.Scope("f", "w")
    with pytest.raises(v.Invalid):
        v.integer(0, 10)(scope, "x", value)
    assert scope.problems[0].message.startswith("must be an integer")


# Generated fleets -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=6), st.integers(22, 31))
def test_pool_capacity_rule_matches_the_tunnel_count(per_site: list[int], length: int) -> None:
    tunnels = (sum(per_site) ** 2 - sum(n * n for n in per_site)) // 2
    capacity = 2 ** (31 - length)
    with tempfile.TemporaryDirectory() as raw:
        directory = write_fleet(Path(raw), per_site, pools={"ipv4": f"169.254.0.0/{length}"})
        if capacity >= tunnels:
            fleet = load_fleet(directory)
            assert tunnel_count(fleet) == tunnels
            assert len(fleet.gateways) == sum(per_site)
        else:
            [problem] = problems_of(directory)
            assert problem.field == "data.fleet.pools.ipv4"
            assert f"needs {tunnels}" in problem.message
