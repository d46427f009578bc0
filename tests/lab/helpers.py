"""What end-to-end tests read from lab gateways, parsed with wgfleet's own parsers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TypeVar

from tests.lab.conftest import Lab
from wgfleet.parsers.bird import BirdProtocol, parse_birdc_protocols
from wgfleet.parsers.iproute import Link, Route, parse_ip_links, parse_ip_routes
from wgfleet.parsers.wg import WgInterface, parse_wg_dump
from wgfleet.paths import GatewayPaths

PATHS = GatewayPaths()
T = TypeVar("T")
SCRUB = r"""awk -F'\t' 'BEGIN{OFS="\t"} NF==5{$2="(hidden)"} {print}'"""


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last!r}")
        time.sleep(interval)
        last = check()
    return last


def bgp(lab: Lab, gw: str) -> dict[str, BirdProtocol]:
    """BGP sessions of wgfleet's BIRD on a gateway (empty when BIRD is not running)."""
    status, out, _ = lab.sh(gw, f"birdc -r -s {PATHS.bird_socket} show protocols", check=False)
    if status != 0:
        return {}
    return {n: p for n, p in parse_birdc_protocols(out).items() if p.proto == "BGP"}


def wireguard(lab: Lab, gw: str) -> dict[str, WgInterface]:
    """WireGuard interfaces of a gateway (private key scrubbed on the gateway)."""
    _, out, _ = lab.sh(gw, f"wg show all dump | {SCRUB}")
    return parse_wg_dump(out)


def private_links(lab: Lab, gw: str) -> dict[str, Link]:
    """Links of the private namespace."""
    _, out, _ = lab.sh(gw, "ip -n private -j -d addr show 2>/dev/null || echo '[]'")
    return parse_ip_links(out)


def routes(lab: Lab, gw: str, family: str = "-6") -> list[Route]:
    """Routes BIRD installed in the private namespace."""
    _, out, _ = lab.sh(gw, f"ip -n private {family} -j route show proto bird")
    return parse_ip_routes(out)


def all_established(lab: Lab, gateways: list[str], expected: dict[str, set[str]]) -> bool:
    """True when every expected session of every gateway is Established."""
    for gw in gateways:
        sessions = bgp(lab, gw)
        if set(sessions) != expected[gw] or not all(s.established for s in sessions.values()):
            return False
    return True


def fingerprint(lab: Lab, gw: str) -> str:
    """Everything apply may change on a gateway, minus what moves by itself (handshakes,
    counters, BIRD's own timestamps): equal fingerprints mean nothing was changed."""
    script = (
        "ip netns list; ip -d -j link show; ip -j addr show; "
        "ip -n private -d -j link show 2>/dev/null; ip -n private -j addr show 2>/dev/null; "
        f"wg show all dump | {SCRUB} | cut -f1-5,9; "
        "find /etc/wireguard /etc/bird /run/bird -type f -o -type s 2>/dev/null | sort | "
        "xargs -r ls -l --time-style=+%s; "
        "find /etc/wireguard /etc/bird -type f 2>/dev/null | sort | xargs -r sha256sum; "
        "pgrep -a 'bird|wireguard-go' || true"
    )
    _, out, _ = lab.sh(gw, script)
    return hashlib.sha256(out.encode()).hexdigest() + "\n" + out
