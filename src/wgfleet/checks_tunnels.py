"""Tunnel checks of one gateway: tunnel.exists, .peer, .handshake, .psk and .extra.

Pure functions of the plan, the gateway's observation and the :class:`Context` (which
holds the other gateways' observations, so a peer's key can be compared with the key the
remote end reports for itself).
"""

from __future__ import annotations

import ipaddress

from wgfleet.checks_paths import Context, reference_time, tunnel_peer
from wgfleet.findings import Finding, Severity
from wgfleet.observation import Observation
from wgfleet.parsers.wg import WgInterface, WgPeer
from wgfleet.plan import GatewayPlan, Tunnel

_ALLOWED = frozenset({ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")})
_ALLOWED_TEXT = frozenset({"0.0.0.0/0", "::/0"})


def _short(key: str | None) -> str:
    """A public key shortened for a message (public keys are not secret, just long)."""
    return "(none)" if key is None else f"{key[:10]}…"


def _label(gateway: GatewayPlan, tunnel: Tunnel) -> str:
    return f"{gateway.name} {tunnel.interface} towards {tunnel.peer}"


def _endpoint(text: str | None) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """``[2001:db8:2::1]:5801`` or ``192.0.2.1:5801`` as (address, port); None if unparsable."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return ipaddress.ip_address(host.strip("[]")), int(port)
    except ValueError:
        return None


def _allowed(values: tuple[str, ...]) -> frozenset[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if set(values) == _ALLOWED_TEXT:
        return _ALLOWED
    networks = set()
    for value in values:
        try:
            networks.add(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            continue
    return frozenset(networks)


def _planned_endpoint(ctx: Context, tunnel: Tunnel) -> str:
    """``Tunnel.endpoint``, with the address printed through the run's cache."""
    host = ctx.texts[tunnel.peer_endpoint]
    text = f"[{host}]" if tunnel.peer_endpoint.version == 6 else host
    return f"{text}:{tunnel.peer_port}"


def remote_key(ctx: Context, gateway: GatewayPlan, tunnel: Tunnel) -> tuple[str | None, str]:
    """The public key the remote end reports for its tunnel back, and where it came from.

    Returns (None, "") when the remote was not observed or has no such interface: the peer
    key then cannot be checked (the plan holds no keys).
    """
    remote = ctx.observations.get(tunnel.peer)
    back = ctx.ends.get((tunnel.peer, gateway.name))
    if remote is None or not remote.reachable or back is None:
        return None, ""
    interface = remote.wireguard.get(back.tunnel.interface)
    if interface is None or interface.public_key is None:
        return None, ""
    return interface.public_key, f"{tunnel.peer}'s {back.tunnel.interface}"


def _exists(ctx: Context, gateway: GatewayPlan, tunnel: Tunnel, obs: Observation) -> Finding:
    name, label = tunnel.interface, _label(gateway, tunnel)
    namespace = ctx.plan.settings.namespace
    link = obs.links.get(name)
    interface = obs.wireguard.get(name)
    problems: list[str] = []
    if not obs.namespace:
        problems.append(f"namespace {namespace} is missing, so is the tunnel")
    elif link is None and interface is None:
        problems.append(f"interface missing from namespace {namespace}")
    elif link is None:
        problems.append(f"WireGuard interface exists but is not in namespace {namespace}")
    elif interface is None:
        problems.append(f"link in namespace {namespace} is not a WireGuard interface")
    else:
        if interface.listen_port != tunnel.listen_port:
            problems.append(f"listens on {interface.listen_port}, plan says {tunnel.listen_port}")
        elif tunnel.listen_port not in obs.udp_ports:
            problems.append(
                f"no UDP socket on port {tunnel.listen_port} in the default namespace "
                "(created inside the namespace?)"
            )
        if not link.up:
            problems.append("link is down")
    if not problems:
        return Finding(
            "tunnel.exists",
            "ok",
            gateway.name,
            name,
            f"{label}: in namespace {namespace}, UDP {tunnel.listen_port} open",
            site_pair=(gateway.site.number, tunnel.peer_site),
        )
    severity, consequence = ctx.failure(gateway.site.number, tunnel.peer_site)
    return Finding(
        "tunnel.exists",
        severity,
        gateway.name,
        name,
        f"{label}: {'; '.join(problems)} (apply to repair; {consequence})",
        site_pair=(gateway.site.number, tunnel.peer_site),
    )


def _peer(
    ctx: Context, gateway: GatewayPlan, tunnel: Tunnel, interface: WgInterface
) -> tuple[Finding, WgPeer | None]:
    label = _label(gateway, tunnel)
    planned = _planned_endpoint(ctx, tunnel)
    key, key_source = remote_key(ctx, gateway, tunnel)
    peer = tunnel_peer(interface, key)
    problems: list[str] = []
    if not interface.peers:
        problems.append("no peer configured")
    elif len(interface.peers) > 1:
        problems.append(f"{len(interface.peers)} peers, plan says 1")
    if peer is not None:
        if key is not None and peer.public_key != key:
            problems.append(
                f"peer key {_short(peer.public_key)} but {key_source} has key {_short(key)}"
            )
        if (
            peer.endpoint != planned
            and _endpoint(peer.endpoint) != _endpoint(planned)
            and peer.latest_handshake == 0  # after a handshake a peer may roam (NAT)
        ):
            problems.append(f"endpoint {peer.endpoint or '(none)'}, plan says {planned}")
        if _allowed(peer.allowed_ips) != _ALLOWED:
            shown = ", ".join(peer.allowed_ips) or "(none)"
            problems.append(f"allowed IPs {shown}, plan says 0.0.0.0/0, ::/0")
    if not problems:
        checked = f", key matches {key_source}" if key is not None else ""
        finding = Finding(
            "tunnel.peer",
            "ok",
            gateway.name,
            tunnel.interface,
            f"{label}: peer at {planned}, allowed IPs 0.0.0.0/0, ::/0{checked}",
            value=peer.endpoint if peer else None,
            expected=planned,
            site_pair=(gateway.site.number, tunnel.peer_site),
        )
        return finding, peer
    severity, consequence = ctx.failure(gateway.site.number, tunnel.peer_site)
    finding = Finding(
        "tunnel.peer",
        severity,
        gateway.name,
        tunnel.interface,
        f"{label}: {'; '.join(problems)} (apply to repair; {consequence})",
        value=peer.endpoint if peer else None,
        expected=planned,
        site_pair=(gateway.site.number, tunnel.peer_site),
    )
    return finding, peer


def _handshake(
    ctx: Context, gateway: GatewayPlan, tunnel: Tunnel, peer: WgPeer, obs: Observation
) -> Finding:
    verify = ctx.verify
    label = _label(gateway, tunnel)
    pair = (gateway.site.number, tunnel.peer_site)
    back = ctx.ends.get((tunnel.peer, gateway.name))
    hint = (
        f"check {tunnel.peer}'s {back.tunnel.interface} and UDP {tunnel.peer_port} on the way"
        if back is not None
        else f"check {tunnel.peer} and UDP {tunnel.peer_port} on the way"
    )
    ref = reference_time(obs, ctx.now)
    severity: Severity
    if peer.latest_handshake == 0:
        severity, consequence = ctx.failure(*pair)
        return Finding(
            "tunnel.handshake",
            severity,
            gateway.name,
            tunnel.interface,
            f"{label}: never had a handshake ({hint}; {consequence})",
            value="never",
            expected=float(verify.handshake_warning),
            site_pair=pair,
        )
    if ref is None:
        return Finding(
            "tunnel.handshake",
            "unknown",
            gateway.name,
            tunnel.interface,
            f"{label}: handshake age unknown (no collection time)",
            expected=float(verify.handshake_warning),
            site_pair=pair,
        )
    age = max(0.0, ref - peer.latest_handshake)
    if age > verify.handshake_critical:
        severity, consequence = ctx.failure(*pair)
        message = (
            f"{label}: latest handshake {age:.0f} s ago, down above "
            f"{verify.handshake_critical} s ({hint}; {consequence})"
        )
    elif age > verify.handshake_warning:
        # Suspect, not yet down: a rekey is late. A warning whatever the pair's state.
        severity = "warning"
        message = (
            f"{label}: latest handshake {age:.0f} s ago, suspect above "
            f"{verify.handshake_warning} s (down above {verify.handshake_critical} s)"
        )
    else:
        severity = "ok"
        message = f"{label}: latest handshake {age:.0f} s ago"
    return Finding(
        "tunnel.handshake",
        severity,
        gateway.name,
        tunnel.interface,
        message,
        value=round(age, 1),
        expected=float(verify.handshake_warning),
        site_pair=pair,
    )


def _extra(ctx: Context, gateway: GatewayPlan, obs: Observation) -> list[Finding]:
    planned = set(gateway.expected.interfaces)
    namespace = ctx.plan.settings.namespace
    wireguard = set(obs.wireguard) | {
        name for name, link in obs.links.items() if link.kind == "wireguard"
    }
    extra = sorted(wireguard - planned)
    if not extra:
        return [
            Finding(
                "tunnel.extra",
                "ok",
                gateway.name,
                "",
                f"{gateway.name}: no WireGuard interface outside the plan",
            )
        ]
    findings = []
    for name in extra:
        where = f"in namespace {namespace}" if name in obs.links else "outside the namespace"
        interface = obs.wireguard.get(name)
        detail = ""
        if interface is not None:
            endpoints = ", ".join(p.endpoint or "(none)" for p in interface.peers) or "no peer"
            detail = f", UDP {interface.listen_port}, peer {endpoints}"
        findings.append(
            Finding(
                "tunnel.extra",
                "warning",
                gateway.name,
                name,
                f"{gateway.name} {name}: WireGuard interface {where}{detail} is not in the "
                "plan (remove it, or add its peer to the inventory)",
            )
        )
    return findings


def _psk(
    ctx: Context, gateway: GatewayPlan, tunnel: Tunnel, peer: WgPeer, obs: Observation
) -> Finding | None:
    """The preshared key: as planned, and the same as the remote end's (by fingerprint).

    None for a tunnel that has none and should have none (nothing to report).
    """
    if not tunnel.preshared_key and not peer.has_preshared_key:
        return None
    label = _label(gateway, tunnel)
    pair = (gateway.site.number, tunnel.peer_site)
    state = obs.psk.get(tunnel.interface)
    mine = state.live if state else None

    def found(severity: Severity, message: str) -> Finding:
        return Finding("tunnel.psk", severity, gateway.name, tunnel.interface,
                       f"{label}: {message}", site_pair=pair)  # fmt: skip

    if not tunnel.preshared_key:
        return found("warning", "has a preshared key the plan does not (fleet.preshared_keys "
                     "is off); apply removes it")  # fmt: skip
    if not peer.has_preshared_key:
        return found("warning", "no preshared key although fleet.preshared_keys is on; apply "
                     "sets one up at both ends")  # fmt: skip
    remote = ctx.observations.get(tunnel.peer)
    back = ctx.ends.get((tunnel.peer, gateway.name))
    theirs: str | None = None
    if remote is not None and remote.reachable and back is not None:
        other = remote.psk.get(back.tunnel.interface)
        theirs = other.live if other else None
    if mine is not None and theirs is not None and mine != theirs:
        severity, consequence = ctx.failure(gateway.site.number, tunnel.peer_site)
        return found(severity, f"preshared key differs from {tunnel.peer}'s "
                     f"{back.tunnel.interface if back else '?'}: the next handshake fails "
                     f"(apply to repair; {consequence})")  # fmt: skip
    if state is not None and state.file != state.live:
        return found("warning", "the live preshared key is not the one in its key file "
                     "(apply pending)")  # fmt: skip
    same = f", the same as {tunnel.peer}'s" if theirs is not None else ""
    return found("ok", f"preshared key set{same}")


def tunnel_findings(ctx: Context, gateway: GatewayPlan, obs: Observation) -> list[Finding]:
    """Every tunnel finding of one reachable gateway.

    ``tunnel.exists`` is reported for every planned tunnel; ``tunnel.peer`` and
    ``tunnel.handshake`` only where WireGuard has the interface (a missing tunnel is one
    finding, not three).
    """
    findings: list[Finding] = []
    for tunnel in gateway.tunnels:
        findings.append(_exists(ctx, gateway, tunnel, obs))
        interface = obs.wireguard.get(tunnel.interface)
        if interface is None:
            continue
        finding, peer = _peer(ctx, gateway, tunnel, interface)
        findings.append(finding)
        if peer is not None:
            findings.append(_handshake(ctx, gateway, tunnel, peer, obs))
            psk = _psk(ctx, gateway, tunnel, peer, obs)
            if psk is not None:
                findings.append(psk)
    findings.extend(_extra(ctx, gateway, obs))
    return findings
