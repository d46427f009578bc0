"""Parse ``birdc show protocols`` (BIRD 2, ``timeformat protocol "%s"``).

Rows are ``Name Proto Table State Since Info``, whitespace-separated; for BGP the Info
column starts with the session state (``Idle Connect Active OpenSent OpenConfirm
Established Close``, or ``Down``/``Passive``) and may be followed by the last error
(``Socket: Connection refused``, ``BGP Error: Hold timer expired``…).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from wgfleet.parsers import ParseError

BGP_STATES = frozenset(
    {
        "Idle",
        "Connect",
        "Active",
        "OpenSent",
        "OpenConfirm",
        "Established",
        "Close",
        "Down",
        "Passive",
    }
)
_UNAVAILABLE = ("Unable to connect to server control socket", "Cannot connect to server")


@dataclass(frozen=True)
class BirdProtocol:
    """One protocol row; for BGP, ``bgp_state`` and ``last_error`` split out of Info."""

    name: str
    proto: str
    table: str
    state: str
    since: int | None
    info: str
    bgp_state: str | None
    last_error: str
    routes_imported: int | None = None
    routes_exported: int | None = None

    @property
    def established(self) -> bool:
        """True for a BGP session in state Established."""
        return self.bgp_state == "Established"


class BirdUnavailableError(ParseError):
    """birdc could not reach the daemon (not running, or the control socket is missing)."""


_ROUTES = re.compile(r"Routes:\s+(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")


def _detail(protocol: BirdProtocol, line: str) -> BirdProtocol:
    """Fold one indented line of ``show protocols all`` into its protocol (routes summed
    over channels, the last error when the Info column had none)."""
    text = line.strip()
    match = _ROUTES.match(text)
    if match:
        imported, exported = int(match.group(1)), int(match.group(3))
        return replace(
            protocol,
            routes_imported=(protocol.routes_imported or 0) + imported,
            routes_exported=(protocol.routes_exported or 0) + exported,
        )
    if text.startswith("Last error:") and not protocol.last_error:
        return replace(protocol, last_error=text.removeprefix("Last error:").strip())
    return protocol


def parse_birdc_protocols(text: str) -> dict[str, BirdProtocol]:
    """Parse ``birdc -r -s SOCKET show protocols [all]``; protocols by name.

    With ``all``, the indented detail lines add route counts and the last error.
    """
    protocols: dict[str, BirdProtocol] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if last is not None:
                protocols[last] = _detail(protocols[last], line)
            continue
        if line.startswith(_UNAVAILABLE):
            raise BirdUnavailableError("birdc", "BIRD is not running here", line)
        if line.startswith("BIRD ") and line.rstrip().endswith("ready."):
            continue
        if line.strip() == "Access restricted":  # birdc -r says so before the table
            continue
        fields = line.split()
        if fields[:2] == ["Name", "Proto"]:
            continue
        if len(fields) < 5:
            raise ParseError("birdc show protocols", "a row needs at least 5 columns", line)
        name, proto, table, state, since, *rest = fields
        info = " ".join(rest)
        bgp_state: str | None = None
        last_error = ""
        if proto == "BGP":
            if rest and rest[0] in BGP_STATES:
                bgp_state, last_error = rest[0], " ".join(rest[1:])
            else:
                bgp_state, last_error = ("Down" if state == "down" else None), info
        last = name
        protocols[name] = BirdProtocol(
            name=name,
            proto=proto,
            table=table,
            state=state,
            since=int(since) if since.isdigit() else None,
            info=info,
            bgp_state=bgp_state,
            last_error=last_error,
        )
    return protocols
