"""What a gateway looks like right now, parsed from one run of the gather script (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from wgfleet.commands import MARK
from wgfleet.observation import Observation, PskState
from wgfleet.parsers import ParseError
from wgfleet.parsers.bird import BirdUnavailableError, parse_birdc_protocols
from wgfleet.parsers.fping import parse_fping_summary
from wgfleet.parsers.iproute import Link, parse_ip_links, parse_ip_routes, parse_ss_udp_ports
from wgfleet.parsers.wg import WgInterface, parse_wg_dump


@dataclass(frozen=True)
class GatewayFacts:
    """Observed state of one gateway (never holds a private key)."""

    hostname: str
    public_key: str | None
    kernel_wireguard: bool
    namespaces: frozenset[str]
    links: dict[str, Link]
    private_links: dict[str, Link]
    wireguard: dict[str, WgInterface]
    sysctls: dict[str, str]
    peer_files: frozenset[str]
    files: dict[str, str | None]
    bird_running: bool
    bird_status: str
    mgmt_interface: str | None = None
    swept: tuple[str, ...] = ()
    psk: dict[str, PskState] = field(default_factory=dict)
    raw_sections: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def has_namespace(self, name: str) -> bool:
        """True when the named network namespace exists."""
        return name in self.namespaces


def split_sections(text: str) -> dict[str, str]:
    """Split the gather output into its marked sections."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK) :].strip(), [])
            continue
        if current is not None:
            current.append(line)
    if "end" not in sections:
        raise ParseError("gather script", "output is truncated (no end marker)")
    return {name: "\n".join(lines) for name, lines in sections.items()}


def _namespaces(text: str) -> frozenset[str]:
    """Names from ``ip -j netns list`` (which prints nothing when there is none)."""
    if not text.strip():
        return frozenset()
    try:
        return frozenset(str(entry["name"]) for entry in json.loads(text))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        line = text.strip().splitlines()[0]
        raise ParseError(
            "ip -j netns list", f"not a JSON list of namespaces ({exc})", line
        ) from None


def _sysctls(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _mgmt_interface(text: str) -> str | None:
    try:
        routes = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        return None
    return str(routes[0].get("dev")) if routes and isinstance(routes[0], dict) else None


_FINGERPRINT = re.compile(r"[0-9a-f]{16}|-")


def parse_psk_fingerprints(text: str) -> dict[str, PskState]:
    """Read ``live IF FP`` / ``file IF FP`` lines (``commands.psk_fingerprints``).

    Raises:
        ParseError: A line is not of that form (a fingerprint is 16 hex digits or ``-``).
    """
    found: dict[str, dict[str, str | None]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if (
            len(parts) != 3
            or parts[0] not in ("live", "file")
            or not _FINGERPRINT.fullmatch(parts[2])
        ):
            raise ParseError("preshared-key fingerprints", "expected 'live|file IF FP'", line)
        kind, name, value = parts
        found.setdefault(name, {})[kind] = None if value == "-" else value
    return {
        name: PskState(file=seen.get("file"), live=seen.get("live")) for name, seen in found.items()
    }


def parse_gather(text: str) -> GatewayFacts:
    """Turn the gather script's output into GatewayFacts."""
    s = split_sections(text)
    namespaces = _namespaces(s.get("netns", ""))
    wireguard = parse_wg_dump(s.get("wg", ""))
    wireguard.update(parse_wg_dump(s.get("private_wg", "")))
    files = {
        name.removeprefix("file ").strip(): (body + "\n" if body else None)
        for name, body in s.items()
        if name.startswith("file ")
    }
    bird_status = s.get("bird", "")
    public_key = s.get("pubkey", "").strip() or None
    return GatewayFacts(
        hostname=s.get("hostname", "").strip(),
        public_key=public_key,
        kernel_wireguard=s.get("kernel_wg", "").strip() == "yes",
        namespaces=namespaces,
        links=parse_ip_links(s.get("links", "")),
        private_links=parse_ip_links(s.get("private_links", "")),
        wireguard=wireguard,
        sysctls=_sysctls(s.get("sysctl", "")),
        peer_files=frozenset(
            line.strip() for line in s.get("peer_files", "").splitlines() if line.strip()
        ),
        files=files,
        bird_running="Daemon is up and running" in bird_status,
        bird_status=bird_status.strip(),
        mgmt_interface=_mgmt_interface(s.get("mgmt", "")),
        swept=tuple(line for line in s.get("swept", "").splitlines() if line.strip()),
        psk=parse_psk_fingerprints(s.get("psk", "")),
        raw_sections=s,
    )


def parse_verify(gateway: str, text: str, namespace: str = "private") -> Observation:
    """Turn the verify script's output (see ``commands.verify_script``) into an Observation."""
    s = split_sections(text)
    namespaces = _namespaces(s.get("netns", ""))
    bird_text = s.get("bird", "")
    try:
        bird = parse_birdc_protocols(bird_text)
        bird_error = ""
    except BirdUnavailableError:
        bird, bird_error = None, bird_text.strip().splitlines()[-1] if bird_text.strip() else ""
    if bird is not None and not bird and not bird_text.strip():
        bird, bird_error = None, "birdc printed nothing"
    now = s.get("now", "").strip()
    return Observation(
        gateway=gateway,
        reachable=True,
        collected_at=float(now) if now.isdigit() else 0.0,
        namespace=namespace in namespaces,
        links=parse_ip_links(s.get("links", "")),
        wireguard=parse_wg_dump(s.get("wg", "")),
        udp_ports=parse_ss_udp_ports(s.get("udp", "")),
        bird=bird,
        bird_error=bird_error,
        routes=(*parse_ip_routes(s.get("routes6", "")), *parse_ip_routes(s.get("routes4", ""))),
        pings=parse_fping_summary(s.get("ping", "")),
        psk=parse_psk_fingerprints(s.get("psk", "")),
    )
