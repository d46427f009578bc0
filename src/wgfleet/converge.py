"""Decide what to change on a gateway: desired state (plan + rendered files) vs facts (pure).

Like pyinfra's operations, each function compares what is with what must be and returns
only the commands for the difference, so a converged gateway yields no step at all and
a second run changes nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from wgfleet import commands as cmd
from wgfleet.facts import GatewayFacts
from wgfleet.parsers.iproute import Link
from wgfleet.paths import GatewayPaths
from wgfleet.plan import GatewayPlan, Tunnel
from wgfleet.render import RenderedFile, RenderedGateway

Impl = Literal["kernel", "userspace"]
ALLOWED_IPS = frozenset({"0.0.0.0/0", "::/0"})
NS_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.all.keep_addr_on_down": "1",
    "net.ipv6.conf.default.keep_addr_on_down": "1",
}


@dataclass(frozen=True)
class FileChange:
    """A file to (re)write atomically on the gateway; ``old`` is None when it is new."""

    path: str
    content: str
    mode: int
    old: str | None

    def diff(self) -> str:
        """Unified diff of the change (files wgfleet writes never hold a secret)."""
        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                self.content.splitlines(keepends=True),
                fromfile=self.path if self.old is not None else "/dev/null",
                tofile=self.path,
            )
        )


@dataclass(frozen=True)
class Step:
    """One change: what it does, in words, and the commands that do it (run in order)."""

    description: str
    commands: tuple[str, ...]


class RefusedError(Exception):
    """A change wgfleet will not make (it would cut the management session, …)."""


def wireguard_impl(facts: GatewayFacts, wanted: str) -> Impl:
    """Resolve ``auto`` to kernel WireGuard when the gateway has it, else wireguard-go."""
    if wanted == "kernel" or (wanted == "auto" and facts.kernel_wireguard):
        return "kernel"
    return "userspace"


# --- namespace ------------------------------------------------------------------------------


def namespace_steps(plan: GatewayPlan, facts: GatewayFacts, paths: GatewayPaths) -> list[Step]:
    """Create the private namespace and move the site-side interfaces into it.

    Raises:
        RefusedError: A site-side interface carries the management (SSH) session, or is
            missing on the gateway.
    """
    ns = paths.namespace
    steps: list[Step] = []
    if not facts.has_namespace(ns):
        steps.append(
            Step(f"create network namespace {ns}", (f"ip netns add {cmd.q(ns)}",
                                                    cmd.ip_ns(ns, "link set dev lo up")))
        )  # fmt: skip
    wrong = {k: v for k, v in NS_SYSCTLS.items() if facts.sysctls.get(k) != v}
    if wrong or not facts.has_namespace(ns):
        settings = " ".join(f"{k}={v}" for k, v in (wrong or NS_SYSCTLS).items())
        steps.append(
            Step(
                f"enable forwarding and keep_addr_on_down in {ns}",
                (f"ip netns exec {cmd.q(ns)} sysctl -q -w {settings}",),
            )
        )
    for interface in plan.gateway.interfaces:
        name = interface.name
        if name in facts.links and name not in facts.private_links:
            if facts.mgmt_interface == name:
                raise RefusedError(
                    f"{name} carries the SSH session wgfleet is using: moving it into {ns} "
                    "would cut the gateway off. Manage the gateway through another interface."
                )
            steps.append(
                Step(
                    f"move {name} into {ns}", (f"ip link set dev {cmd.q(name)} netns {cmd.q(ns)}",)
                )
            )
            current: Link | None = None
        elif name in facts.private_links:
            current = facts.private_links[name]
        else:
            raise RefusedError(
                f"site-side interface {name} does not exist on the gateway "
                f"(inventory data.gateway.interfaces)"
            )
        steps.extend(_address_steps(ns, name, current, set(interface.addresses), up=True))
    return steps


def _address_steps(
    ns: str,
    name: str,
    current: Link | None,
    wanted: set[object],
    *,
    up: bool,
    mtu: int | None = None,
) -> list[Step]:
    have = set(current.addresses) if current else set()
    commands = [
        cmd.ip_ns(ns, f"addr del {a} dev {cmd.q(name)}") for a in sorted(have - wanted, key=str)
    ]
    commands += [
        cmd.ip_ns(ns, f"addr add {a} dev {cmd.q(name)}") for a in sorted(wanted - have, key=str)
    ]
    settings = []
    if mtu is not None and (current is None or current.mtu != mtu):
        settings.append(f"mtu {mtu}")
    if up and (current is None or not current.up):
        settings.append("up")
    if settings:
        commands.append(cmd.ip_ns(ns, f"link set dev {cmd.q(name)} {' '.join(settings)}"))
    if not commands:
        return []
    return [Step(f"configure {name} in {ns}", tuple(commands))]


# --- tunnels --------------------------------------------------------------------------------


def peer_file_changes(
    rendered: RenderedGateway, facts: GatewayFacts, skip: frozenset[str] = frozenset()
) -> list[FileChange]:
    """The peer files whose content differs from what the gateway has (``skip``: interfaces
    left as they are)."""
    return [
        FileChange(f.remote_path, f.content, f.mode, facts.files.get(f.remote_path))
        for name, f in rendered.wireguard.items()
        if facts.files.get(f.remote_path) != f.content and name not in skip
    ]


def roamed(endpoint: str | None, planned: str, latest_handshake: int) -> bool:
    """True when a live endpoint differs from the plan only because the peer roamed.

    WireGuard replaces the configured endpoint with the address a handshake came from
    (a peer behind NAT, a renumbered uplink): after a handshake, that is not drift, and
    re-applying the configured one on every run would fight the protocol.
    """
    return endpoint is not None and endpoint != planned and latest_handshake != 0


def psk_matches(tunnel: Tunnel, facts: GatewayFacts) -> bool:
    """Whether the live preshared key is the planned one: the key file's when the tunnel
    has one (and the file exists), none otherwise."""
    state = facts.psk.get(tunnel.interface)
    live = state.live if state else None
    if tunnel.preshared_key:
        return state is not None and state.file is not None and live == state.file
    return live is None


def wg_matches(tunnel: Tunnel, facts: GatewayFacts, peer_key: str) -> bool:
    """Whether the live interface already has the planned key, port, peer and preshared key."""
    live = facts.wireguard.get(tunnel.interface)
    if live is None or live.public_key != facts.public_key or not live.has_private_key:
        return False
    if live.listen_port != tunnel.listen_port or len(live.peers) != 1:
        return False
    peer = live.peers[0]
    return (
        peer.public_key == peer_key
        and (
            peer.endpoint == tunnel.endpoint
            or roamed(peer.endpoint, tunnel.endpoint, peer.latest_handshake)
        )
        and frozenset(peer.allowed_ips) == ALLOWED_IPS
        and peer.keepalive == tunnel.keepalive
        and peer.has_preshared_key == tunnel.preshared_key
        and psk_matches(tunnel, facts)
    )


def tunnel_steps(
    plan: GatewayPlan,
    facts: GatewayFacts,
    paths: GatewayPaths,
    public_keys: dict[str, str],
    impl: Impl,
    *,
    rewritten: set[str] = frozenset(),  # type: ignore[assignment]
    skip: frozenset[str] = frozenset(),
) -> list[Step]:
    """Create, update in place, or remove WireGuard interfaces to match the plan.

    ``rewritten`` names interfaces whose peer file is being rewritten in this run: their
    live config is synced from the new file even when it already looked right. ``skip``
    names planned interfaces to leave exactly as they are (their peer's key is unknown:
    the peer could not be reached); they are still planned, so never removed.
    """
    ns = paths.namespace
    steps: list[Step] = []
    wanted = {t.interface for t in plan.tunnels}
    for tunnel in plan.tunnels:
        name = tunnel.interface
        if name in skip:
            continue
        addresses: set[object] = {tunnel.local6, tunnel.local4}
        if name in facts.private_links:
            if name in rewritten or not wg_matches(tunnel, facts, public_keys[tunnel.peer]):
                steps.append(
                    Step(
                        f"update {name} towards {tunnel.peer} in place",
                        (
                            cmd.in_netns(
                                ns, cmd.feed_config(paths, name, "syncconf", tunnel.preshared_key)
                            ),
                        ),
                    )
                )
            steps.extend(
                _address_steps(
                    ns, name, facts.private_links[name], addresses, up=True, mtu=tunnel.mtu
                )
            )
            continue
        create: tuple[str, ...] = ()
        if name not in facts.links:
            create = (
                (cmd.create_kernel(name),)
                if impl == "kernel"
                else (f"rm -f /run/wireguard/{cmd.q(name)}.sock", cmd.create_userspace(name))
            )
        steps.append(
            Step(
                f"create {name} towards {tunnel.peer} ({impl}) and move it into {ns}",
                (
                    *create,
                    cmd.feed_config(paths, name, "setconf", tunnel.preshared_key),
                    f"ip link set dev {cmd.q(name)} netns {cmd.q(ns)}",
                ),
            )
        )
        steps.extend(_address_steps(ns, name, None, addresses, up=True, mtu=tunnel.mtu))
    stale_keys = [
        t.interface
        for t in plan.tunnels
        if not t.preshared_key and t.interface not in skip and _psk_file(facts, t.interface)
    ]
    if stale_keys:
        steps.append(
            Step(
                f"remove the preshared key files of {', '.join(stale_keys)} (none planned)",
                (_rm_with_previous(paths.psk_file(n) for n in stale_keys),),
            )
        )
    steps.extend(_removals(plan, facts, paths, wanted))
    return steps


def _psk_file(facts: GatewayFacts, interface: str) -> bool:
    state = facts.psk.get(interface)
    return state is not None and state.file is not None


def _removals(
    plan: GatewayPlan, facts: GatewayFacts, paths: GatewayPaths, wanted: set[str]
) -> list[Step]:
    """Tunnels and peer files of ours that the plan no longer has."""
    ns = paths.namespace
    site_side = {i.name for i in plan.gateway.interfaces}
    ours = {name.rsplit(".", 1)[0] for name in facts.peer_files if name.endswith((".conf", ".psk"))}
    steps: list[Step] = []
    # In the private namespace every WireGuard interface is ours; in the default one only
    # those wgfleet has a peer file for (a gateway may run its own WireGuard too).
    extra_private = {
        name
        for name, link in facts.private_links.items()
        if name in facts.wireguard and name not in wanted and name not in site_side
    }
    extra_default = {
        name
        for name in facts.links
        if name in ours and name not in wanted and name in facts.wireguard
    }
    for name in sorted(extra_private | extra_default, key=_natural):
        where = ns if name in extra_private else None
        steps.append(
            Step(
                f"remove {name} (no longer in the plan)",
                (
                    cmd.ip_ns(where, f"link del dev {cmd.q(name)}"),
                    _remove_files(paths, name),
                ),
            )
        )
    for name in sorted(ours - wanted - extra_private - extra_default, key=_natural):
        steps.append(Step(f"remove stale peer file of {name}", (_remove_files(paths, name),)))
    return steps


def _remove_files(paths: GatewayPaths, interface: str) -> str:
    """Remove a tunnel's peer file and preshared key (and their kept previous versions)."""
    return _rm_with_previous((paths.peer_file(interface), paths.psk_file(interface)))


def _rm_with_previous(files: Iterable[str]) -> str:
    """``rm -f`` of each file and its kept previous version (``.prev``)."""
    return "rm -f " + " ".join(cmd.q(f + suffix) for f in files for suffix in ("", ".prev"))


def _natural(name: str) -> tuple[str, int]:
    match = re.match(r"^(\D*)(\d*)$", name)
    if not match:
        return (name, 0)
    return (match.group(1), int(match.group(2) or 0))


# --- BIRD -----------------------------------------------------------------------------------

BirdAction = Literal["none", "start", "reconfigure"]


def bird_action(
    rendered: RenderedFile, facts: GatewayFacts
) -> tuple[BirdAction, FileChange | None]:
    """Whether BIRD's config changes, and whether the daemon must start or reconfigure."""
    old = facts.files.get(rendered.remote_path)
    change = (
        None
        if old == rendered.content
        else FileChange(rendered.remote_path, rendered.content, rendered.mode, old)
    )
    if not facts.bird_running:
        return "start", change
    return ("reconfigure" if change else "none"), change
