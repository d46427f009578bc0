"""Convergence against the lab's converged V1-1: nothing to do, then exactly the difference.

The facts come from ``gather_v1-1_converged.txt`` (the gather script's real output), the
desired state from the reference inventory's plan and rendered files with the gateways'
real public keys (those visible in the capture). Each scenario mutates the facts with
``dataclasses.replace`` the way the gateway would look, and checks the steps.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from wgfleet import commands as cmd
from wgfleet.allocations import load_allocations
from wgfleet.converge import (
    NS_SYSCTLS,
    FileChange,
    RefusedError,
    Step,
    bird_action,
    namespace_steps,
    peer_file_changes,
    tunnel_steps,
    wg_matches,
    wireguard_impl,
)
from wgfleet.facts import GatewayFacts, parse_gather
from wgfleet.inventory import load_fleet
from wgfleet.parsers.iproute import Link
from wgfleet.parsers.wg import WgInterface, WgPeer
from wgfleet.paths import GatewayPaths
from wgfleet.plan import FleetPlan, GatewayPlan, plan_fleet
from wgfleet.render import RenderedGateway, render_gateway

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
PATHS = GatewayPaths()
KEYS = {
    "V1-1": "S0ONR02RauunuYoOolQsLrHnTheIFJL6/gzmpIvnjWs=",
    "V2-1": "MuVi7Ul+EClRx/6UVlq77lI9vbobH5ZltsVg6t3yz3c=",
    "V2-2": "Fjerxdv7RtI9xA+aQr/YKucQSHkOulpvFMG9uOzbHFU=",
    "V3-1": "0RyDCVG2YvALkFpk+Z9k4M0js62TL8yGK7AazyZR6V4=",
    "V3-2": "df9Gdtl5wACUxfHAJcoMHkiU08+ncGyMeYHTm1Rz7AI=",
}
OTHER_KEY = "Qb6svv/NQmoTABOTUdlULZwkwJSlxQAjcHjJICHn2U8="  # wg99's in the raw dump
KEY_PATTERN = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


@pytest.fixture(scope="module")
def fleet_plan() -> FleetPlan:
    fleet = load_fleet(REPO / "inventory")
    allocations = load_allocations(REPO / "inventory" / "allocations.yaml", fleet.settings)
    plan, _ = plan_fleet(fleet, allocations)
    return plan


@pytest.fixture(scope="module")
def plan(fleet_plan: FleetPlan) -> GatewayPlan:
    return fleet_plan.gateway("V1-1")


@pytest.fixture(scope="module")
def rendered(fleet_plan: FleetPlan) -> RenderedGateway:
    return render_gateway(fleet_plan, "V1-1", KEYS)


@pytest.fixture(scope="module")
def facts() -> GatewayFacts:
    return parse_gather((DATA / "gather_v1-1_converged.txt").read_text(encoding="utf-8"))


def _without(mapping: dict[str, object], *names: str) -> dict[str, object]:
    return {k: v for k, v in mapping.items() if k not in names}


def _commands(steps: list[Step]) -> list[str]:
    return [c for step in steps for c in step.commands]


def _no_key_in(steps: list[Step]) -> None:
    for command in _commands(steps):
        assert not KEY_PATTERN.search(command.replace(cmd.NO_PSK, "")), command


def _removed_files(name: str) -> str:
    """A removed tunnel's files: peer file, preshared key, and their previous versions."""
    conf, psk = PATHS.peer_file(name), PATHS.psk_file(name)
    return f"rm -f {conf} {conf}.prev {psk} {psk}.prev"


def _wg_link(name: str, index: int) -> Link:
    return Link(name, index, "tun", 1420, True, "UNKNOWN")


def _wg(name: str, peer_key: str, public_key: str | None = KEYS["V1-1"]) -> WgInterface:
    peer = WgPeer(peer_key, False, "[2001:db8:9::9]:5801", ("0.0.0.0/0", "::/0"), 1, 0, 0, 0)
    return WgInterface(name, public_key, True, 5800 + int(name[2:]), None, (peer,))


# --- idempotence ------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["userspace", "kernel"])
def test_a_converged_gateway_needs_nothing(
    plan: GatewayPlan, rendered: RenderedGateway, facts: GatewayFacts, impl: str
) -> None:
    assert namespace_steps(plan, facts, PATHS) == []
    assert tunnel_steps(plan, facts, PATHS, KEYS, impl) == []  # type: ignore[arg-type]
    assert peer_file_changes(rendered, facts) == []
    assert bird_action(rendered.bird, facts) == ("none", None)


def test_every_live_tunnel_matches_the_plan(plan: GatewayPlan, facts: GatewayFacts) -> None:
    assert [t.interface for t in plan.tunnels] == ["wg3", "wg4", "wg5", "wg6"]
    assert all(wg_matches(t, facts, KEYS[t.peer]) for t in plan.tunnels)


@pytest.mark.parametrize(
    ("kernel", "wanted", "impl"),
    [
        (False, "auto", "userspace"),
        (True, "auto", "kernel"),
        (False, "kernel", "kernel"),
        (True, "userspace", "userspace"),
        (False, "userspace", "userspace"),
    ],
)
def test_wireguard_impl(facts: GatewayFacts, kernel: bool, wanted: str, impl: str) -> None:
    assert wireguard_impl(replace(facts, kernel_wireguard=kernel), wanted) == impl


# --- namespace --------------------------------------------------------------------------


def test_missing_namespace_is_created_and_lan0_moved_in(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    lan0 = replace(facts.private_links["lan0"], addresses=())
    bare = replace(
        facts,
        namespaces=frozenset(),
        links={**facts.links, "lan0": lan0},
        private_links={},
        sysctls={},
    )
    steps = namespace_steps(plan, bare, PATHS)
    assert [s.description for s in steps] == [
        "create network namespace private",
        "enable forwarding and keep_addr_on_down in private",
        "move lan0 into private",
        "configure lan0 in private",
    ]
    assert steps[0].commands == ("ip netns add private", "ip -n private link set dev lo up")
    (sysctl,) = steps[1].commands
    assert sysctl.startswith("ip netns exec private sysctl -q -w ")
    assert set(shlex.split(sysctl)[7:]) == {f"{k}={v}" for k, v in NS_SYSCTLS.items()}
    assert steps[2].commands == ("ip link set dev lan0 netns private",)
    # Moving a link drops its addresses: they are all (re)added, then the link goes up.
    assert steps[3].commands == (
        "ip -n private addr add 10.0.1.11/24 dev lan0",
        "ip -n private addr add 2001:db8:a1::11/64 dev lan0",
        "ip -n private link set dev lan0 up",
    )


def test_lan0_with_addresses_in_the_default_namespace_still_gets_all_addresses(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    bare = replace(
        facts,
        links={**facts.links, "lan0": facts.private_links["lan0"]},
        private_links=_without(facts.private_links, "lan0"),
    )
    steps = namespace_steps(plan, bare, PATHS)
    assert [s.description for s in steps] == ["move lan0 into private", "configure lan0 in private"]
    assert len(steps[1].commands) == 3


def test_moving_the_interface_that_carries_ssh_is_refused(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    bare = replace(
        facts,
        links={**facts.links, "lan0": facts.private_links["lan0"]},
        private_links=_without(facts.private_links, "lan0"),
        mgmt_interface="lan0",
    )
    with pytest.raises(RefusedError, match="lan0 carries the SSH session"):
        namespace_steps(plan, bare, PATHS)


def test_lan0_already_in_private_while_ssh_uses_it_is_fine(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    # Only a move would cut the session; a gateway managed over lan0 inside private is fine.
    assert namespace_steps(plan, replace(facts, mgmt_interface="lan0"), PATHS) == []


def test_a_missing_site_interface_is_refused(plan: GatewayPlan, facts: GatewayFacts) -> None:
    gone = replace(facts, private_links=_without(facts.private_links, "lan0"))
    with pytest.raises(RefusedError, match="lan0 does not exist"):
        namespace_steps(plan, gone, PATHS)


def test_only_the_wrong_sysctl_is_set(plan: GatewayPlan, facts: GatewayFacts) -> None:
    off = replace(facts, sysctls={**facts.sysctls, "net.ipv4.ip_forward": "0"})
    (step,) = namespace_steps(plan, off, PATHS)
    assert step.commands == ("ip netns exec private sysctl -q -w net.ipv4.ip_forward=1",)


def test_lan0_extra_and_missing_addresses_and_admin_down(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    lan0 = replace(
        facts.private_links["lan0"],
        up=False,
        addresses=(
            ipaddress.ip_interface("10.0.1.99/24"),
            ipaddress.ip_interface("2001:db8:a1::11/64"),
        ),
    )
    (step,) = namespace_steps(
        plan, replace(facts, private_links={**facts.private_links, "lan0": lan0}), PATHS
    )
    assert step.commands == (
        "ip -n private addr del 10.0.1.99/24 dev lan0",
        "ip -n private addr add 10.0.1.11/24 dev lan0",
        "ip -n private link set dev lan0 up",
    )


# --- tunnels ----------------------------------------------------------------------------


def _missing_wg5(facts: GatewayFacts) -> GatewayFacts:
    return replace(
        facts,
        private_links=_without(facts.private_links, "wg5"),
        wireguard=_without(facts.wireguard, "wg5"),
    )


def test_missing_userspace_tunnel_is_created_configured_moved_then_addressed(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    steps = tunnel_steps(plan, _missing_wg5(facts), PATHS, KEYS, "userspace")
    assert [s.description for s in steps] == [
        "create wg5 towards V3-1 (userspace) and move it into private",
        "configure wg5 in private",
    ]
    create = steps[0].commands
    assert create == (
        "rm -f /run/wireguard/wg5.sock",
        cmd.create_userspace("wg5"),
        cmd.feed_config(PATHS, "wg5", "setconf"),
        "ip link set dev wg5 netns private",
    )
    # wireguard-go is detached with setsid -w, then its UAPI is polled before going on.
    assert create[1].startswith("setsid -w wireguard-go wg5 ")
    assert create[1].index("setsid -w") < create[1].index("wg show wg5 listen-port")
    # Key and peer are set in the default namespace (endpoints resolve there), then moved.
    assert "ip netns exec" not in create[2]
    assert "wg setconf wg5 /dev/stdin" in create[2]
    assert f"cat {PATHS.private_key}; cat {PATHS.peer_file('wg5')}" in create[2]
    assert steps[1].commands == (
        "ip -n private addr add 169.254.1.4/31 dev wg5",
        "ip -n private addr add 2001:db8:ff::4/127 dev wg5",
        "ip -n private link set dev wg5 mtu 1420 up",
    )
    _no_key_in(steps)


def test_missing_kernel_tunnel_uses_ip_link_add(plan: GatewayPlan, facts: GatewayFacts) -> None:
    steps = tunnel_steps(plan, _missing_wg5(facts), PATHS, KEYS, "kernel")
    assert steps[0].description == "create wg5 towards V3-1 (kernel) and move it into private"
    assert steps[0].commands == (
        "ip link add dev wg5 type wireguard",
        cmd.feed_config(PATHS, "wg5", "setconf"),
        "ip link set dev wg5 netns private",
    )
    assert "wireguard-go" not in " ".join(_commands(steps))


def test_a_tunnel_left_in_the_default_namespace_is_configured_and_moved_not_recreated(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    half_done = replace(_missing_wg5(facts), links={**facts.links, "wg5": _wg_link("wg5", 9)})
    steps = tunnel_steps(plan, half_done, PATHS, KEYS, "userspace")
    assert steps[0].commands == (
        cmd.feed_config(PATHS, "wg5", "setconf"),
        "ip link set dev wg5 netns private",
    )


def _live_peer(facts: GatewayFacts, name: str, **changes: object) -> GatewayFacts:
    live = facts.wireguard[name]
    peer = replace(live.peers[0], **changes)  # type: ignore[arg-type]
    return replace(facts, wireguard={**facts.wireguard, name: replace(live, peers=(peer,))})


def _live_interface(facts: GatewayFacts, name: str, **changes: object) -> GatewayFacts:
    live = replace(facts.wireguard[name], **changes)  # type: ignore[arg-type]
    return replace(facts, wireguard={**facts.wireguard, name: live})


SYNC_CASES = {
    "peer key": lambda f: _live_peer(f, "wg5", public_key=OTHER_KEY),
    "endpoint, never connected": lambda f: _live_peer(
        f, "wg5", endpoint="[2001:db8:3::99]:5801", latest_handshake=0
    ),
    "no endpoint": lambda f: _live_peer(f, "wg5", endpoint=None),
    "allowed ips": lambda f: _live_peer(f, "wg5", allowed_ips=("::/0",)),
    "keepalive": lambda f: _live_peer(f, "wg5", keepalive=25),
    "preshared key": lambda f: _live_peer(f, "wg5", has_preshared_key=True),
    "listen port": lambda f: _live_interface(f, "wg5", listen_port=40000),
    "no private key": lambda f: _live_interface(f, "wg5", has_private_key=False),
    "other own key": lambda f: _live_interface(f, "wg5", public_key=OTHER_KEY),
    "two peers": lambda f: _live_interface(
        f, "wg5", peers=(*f.wireguard["wg5"].peers, *f.wireguard["wg6"].peers)
    ),
}


def test_a_peer_that_roamed_after_a_handshake_is_not_drift(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    roamed = _live_peer(facts, "wg5", endpoint="[2001:db8:3::99]:40123")
    assert roamed.wireguard["wg5"].peers[0].latest_handshake != 0
    assert tunnel_steps(plan, roamed, PATHS, KEYS, "userspace") == []


@pytest.mark.parametrize("case", SYNC_CASES)
def test_a_drifted_tunnel_is_synced_in_place(
    plan: GatewayPlan, facts: GatewayFacts, case: str
) -> None:
    drifted = SYNC_CASES[case](facts)
    (step,) = tunnel_steps(plan, drifted, PATHS, KEYS, "userspace")
    assert step.description == "update wg5 towards V3-1 in place"
    assert step.commands == (cmd.in_netns("private", cmd.feed_config(PATHS, "wg5", "syncconf")),)
    assert "link add" not in step.commands[0]
    assert "link del" not in step.commands[0]
    assert "setconf" not in step.commands[0]


def test_a_new_peer_key_rewrites_one_peer_file_and_syncs_one_tunnel(
    fleet_plan: FleetPlan, plan: GatewayPlan, facts: GatewayFacts
) -> None:
    keys = {**KEYS, "V3-1": OTHER_KEY}
    changes = peer_file_changes(render_gateway(fleet_plan, "V1-1", keys), facts)
    (change,) = changes
    assert change.path == PATHS.peer_file("wg5")
    assert change.mode == 0o600
    assert change.old == facts.files[PATHS.peer_file("wg5")]
    diff = change.diff()
    assert f"-PublicKey = {KEYS['V3-1']}\n" in diff
    assert f"+PublicKey = {OTHER_KEY}\n" in diff
    steps = tunnel_steps(plan, facts, PATHS, keys, "userspace", rewritten={"wg5"})
    assert [s.description for s in steps] == ["update wg5 towards V3-1 in place"]


def test_a_rewritten_peer_file_is_synced_even_when_the_live_state_looks_right(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    steps = tunnel_steps(plan, facts, PATHS, KEYS, "userspace", rewritten={"wg4"})
    assert [s.description for s in steps] == ["update wg4 towards V2-2 in place"]


def test_tunnel_address_and_mtu_drift(plan: GatewayPlan, facts: GatewayFacts) -> None:
    wg3 = replace(
        facts.private_links["wg3"],
        mtu=1280,
        addresses=(
            ipaddress.ip_interface("2001:db8:ff::/127"),
            ipaddress.ip_interface("2001:db8:ff::100/127"),
        ),
    )
    wg4 = replace(facts.private_links["wg4"], addresses=(), up=False)
    drifted = replace(facts, private_links={**facts.private_links, "wg3": wg3, "wg4": wg4})
    steps = tunnel_steps(plan, drifted, PATHS, KEYS, "userspace")
    assert [s.description for s in steps] == [
        "configure wg3 in private",
        "configure wg4 in private",
    ]
    assert steps[0].commands == (
        "ip -n private addr del 2001:db8:ff::100/127 dev wg3",
        "ip -n private addr add 169.254.1.0/31 dev wg3",
        "ip -n private link set dev wg3 mtu 1420",
    )
    assert steps[1].commands == (
        "ip -n private addr add 169.254.1.2/31 dev wg4",
        "ip -n private addr add 2001:db8:ff::2/127 dev wg4",
        "ip -n private link set dev wg4 up",
    )


def test_extra_tunnels_in_private_are_removed_in_natural_order(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    extra = replace(
        facts,
        private_links={
            **facts.private_links,
            "wg10": _wg_link("wg10", 20),
            "wg9": _wg_link("wg9", 21),
        },
        wireguard={**facts.wireguard, "wg10": _wg("wg10", OTHER_KEY), "wg9": _wg("wg9", OTHER_KEY)},
        peer_files=facts.peer_files | {"wg9.conf"},  # wg10 has lost its file: still ours
    )
    steps = tunnel_steps(plan, extra, PATHS, KEYS, "userspace")
    assert [s.description for s in steps] == [
        "remove wg9 (no longer in the plan)",
        "remove wg10 (no longer in the plan)",
    ]
    assert steps[0].commands == (
        "ip -n private link del dev wg9",
        _removed_files("wg9"),
    )


def test_a_stale_peer_file_is_removed(plan: GatewayPlan, facts: GatewayFacts) -> None:
    stale = replace(facts, peer_files=facts.peer_files | {"wg7.conf", "notes.txt"})
    (step,) = tunnel_steps(plan, stale, PATHS, KEYS, "userspace")
    assert step.description == "remove stale peer file of wg7"
    assert step.commands == (_removed_files("wg7"),)


def test_the_users_own_wireguard_in_the_default_namespace_is_left_alone(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    own = replace(
        facts,
        links={**facts.links, "wg0": _wg_link("wg0", 30)},
        wireguard={**facts.wireguard, "wg0": _wg("wg0", OTHER_KEY, public_key=OTHER_KEY)},
    )
    assert tunnel_steps(plan, own, PATHS, KEYS, "userspace") == []


def test_an_old_tunnel_of_ours_in_the_default_namespace_is_removed(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    ours = replace(
        facts,
        links={**facts.links, "wg1": _wg_link("wg1", 31)},
        wireguard={**facts.wireguard, "wg1": _wg("wg1", OTHER_KEY)},
        peer_files=facts.peer_files | {"wg1.conf"},
    )
    (step,) = tunnel_steps(plan, ours, PATHS, KEYS, "userspace")
    assert step.commands == ("ip link del dev wg1", _removed_files("wg1"))


def test_a_non_wireguard_link_in_private_is_not_removed(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    lan1 = replace(facts.private_links["lan0"], name="lan1", ifindex=40)
    other = replace(facts, private_links={**facts.private_links, "lan1": lan1})
    assert tunnel_steps(plan, other, PATHS, KEYS, "userspace") == []


def test_from_nothing_every_tunnel_is_created_in_plan_order(
    plan: GatewayPlan, facts: GatewayFacts
) -> None:
    empty = replace(
        facts,
        private_links={"lan0": facts.private_links["lan0"]},
        wireguard={},
        peer_files=frozenset(),
    )
    steps = tunnel_steps(plan, empty, PATHS, KEYS, "userspace")
    assert [s.description.split(" towards")[0] for s in steps[::2]] == [
        "create wg3",
        "create wg4",
        "create wg5",
        "create wg6",
    ]
    assert all(s.description.startswith("configure ") for s in steps[1::2])
    _no_key_in(steps)


# --- files and BIRD ---------------------------------------------------------------------


def test_missing_peer_file_is_a_new_file(rendered: RenderedGateway, facts: GatewayFacts) -> None:
    path = PATHS.peer_file("wg6")
    (change,) = peer_file_changes(rendered, replace(facts, files={**facts.files, path: None}))
    assert (change.path, change.old, change.mode) == (path, None, 0o600)
    assert change.content == rendered.wireguard["wg6"].content
    diff = change.diff()
    assert diff.startswith(f"--- /dev/null\n+++ {path}\n@@ -0,0 +1,")
    assert all(line.startswith("+") for line in diff.splitlines()[3:])


def test_bird_not_running_is_started(rendered: RenderedGateway, facts: GatewayFacts) -> None:
    assert bird_action(rendered.bird, replace(facts, bird_running=False)) == ("start", None)


def test_bird_not_running_with_an_old_config_starts_after_the_rewrite(
    rendered: RenderedGateway, facts: GatewayFacts
) -> None:
    old = "router id 10.0.1.99;\n"
    stopped = replace(facts, bird_running=False, files={**facts.files, PATHS.bird_config: old})
    action, change = bird_action(rendered.bird, stopped)
    assert action == "start"
    assert change is not None
    assert change.old == old
    assert "-router id 10.0.1.99;\n" in change.diff()


def test_bird_not_running_without_config_starts_with_a_new_file(
    rendered: RenderedGateway, facts: GatewayFacts
) -> None:
    bare = replace(facts, bird_running=False, files={**facts.files, PATHS.bird_config: None})
    action, change = bird_action(rendered.bird, bare)
    assert action == "start"
    assert change is not None
    assert change.old is None
    assert change.mode == 0o640
    assert change.diff().startswith(f"--- /dev/null\n+++ {PATHS.bird_config}\n")


def test_changed_bird_config_is_reconfigured_with_a_unified_diff(
    rendered: RenderedGateway, facts: GatewayFacts
) -> None:
    live = facts.files[PATHS.bird_config]
    assert live is not None
    edited = live.replace("hold time 6;", "hold time 90;")
    action, change = bird_action(
        rendered.bird, replace(facts, files={**facts.files, PATHS.bird_config: edited})
    )
    assert action == "reconfigure"
    assert change == FileChange(PATHS.bird_config, rendered.bird.content, 0o640, edited)
    diff = change.diff()
    lines = diff.splitlines()
    assert lines[:2] == [f"--- {PATHS.bird_config}", f"+++ {PATHS.bird_config}"]
    assert lines[2].startswith("@@ -")
    assert lines.count("-  hold time 90;") == 2  # both templates
    assert lines.count("+  hold time 6;") == 2
    assert all(line[:1] in " +-@" for line in lines)


def test_an_unchanged_file_has_an_empty_diff() -> None:
    assert FileChange("/x", "a\n", 0o600, "a\n").diff() == ""
