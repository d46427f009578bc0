"""Parse ``wg show … dump``, dropping the private key before anything leaves the parser.

``wg show all dump`` prints, tab-separated, an interface line
``ifname private-key public-key listen-port fwmark`` followed by peer lines
``ifname public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive``;
``wg show IF dump`` prints the same without the ifname column. ``(none)`` marks a missing
key, endpoint or allowed IP list and ``off`` a disabled fwmark or keepalive; a set fwmark is
printed in hex (``0xca6c``, as wg-quick sets it).
"""

from __future__ import annotations

from dataclasses import dataclass

from wgfleet.parsers import ParseError

_NONE = "(none)"


@dataclass(frozen=True)
class WgPeer:
    """A peer as WireGuard reports it (the preshared key reduced to "is one set")."""

    public_key: str
    has_preshared_key: bool
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int
    rx_bytes: int
    tx_bytes: int
    keepalive: int

    def handshake_age(self, now: float) -> float | None:
        """Seconds since the latest handshake, None when there never was one."""
        return None if self.latest_handshake == 0 else max(0.0, now - self.latest_handshake)


@dataclass(frozen=True)
class WgInterface:
    """A WireGuard interface: its public identity and peers, never its private key."""

    name: str
    public_key: str | None
    has_private_key: bool
    listen_port: int
    fwmark: int | None
    peers: tuple[WgPeer, ...]


def _int(value: str, tool: str, line: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise ParseError(tool, f"{value!r} is not a number", line) from None


def parse_wg_dump(text: str, *, interface: str | None = None) -> dict[str, WgInterface]:
    """Parse ``wg show all dump`` (or ``wg show IF dump`` with ``interface=IF``).

    Returns interfaces by name. The private key field is read past, never stored: nothing
    this returns can carry it.
    """
    tool = "wg show dump"
    heads: dict[str, tuple[str | None, bool, int, int | None]] = {}
    peers: dict[str, list[WgPeer]] = {}
    order: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if interface is not None:
            fields = [interface, *fields]
        name = fields[0]
        # Show only the shape of a bad line, never its content: it may hold the private key.
        shape = f"{len(fields)} fields"
        if len(fields) == 5:
            _, private, public, port, fwmark = fields
            heads[name] = (
                None if public == _NONE else public,
                private != _NONE,
                _int(port, tool, shape),
                None if fwmark == "off" else _int(fwmark, tool, shape, 16),  # printed as 0x%x
            )
            peers.setdefault(name, [])
            order.append(name)
        elif len(fields) == 9:
            _, public, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
            if name not in heads:
                raise ParseError(tool, f"peer line before interface line of {name}")
            peers[name].append(
                WgPeer(
                    public_key=public,
                    has_preshared_key=psk != _NONE,
                    endpoint=None if endpoint == _NONE else endpoint,
                    allowed_ips=() if allowed == _NONE else tuple(allowed.split(",")),
                    latest_handshake=_int(handshake, tool, shape),
                    rx_bytes=_int(rx, tool, shape),
                    tx_bytes=_int(tx, tool, shape),
                    keepalive=0 if keepalive == "off" else _int(keepalive, tool, shape),
                )
            )
        else:
            raise ParseError(tool, f"expected 5 or 9 tab-separated fields, got {shape}")
    return {name: WgInterface(name, *heads[name], peers=tuple(peers[name])) for name in order}
