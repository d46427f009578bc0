"""Parse ``birdc show protocols`` (BIRD 2, ``timeformat protocol "%s"``).

Rows are ``Name Proto Table State Since Info``, whitespace-separated; for BGP the Info
column starts with the session state (``Idle Connect Active OpenSent OpenConfirm
Established Close``, or ``Down``/``Passive``) and may be followed by the last error
(``Socket: Connection refused``, ``BGP Error: Hold timer expired``…).
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def established(self) -> bool:
        """True for a BGP session in state Established."""
        return self.bgp_state == "Established"


class BirdUnavailableError(ParseError):
    """birdc could not reach the daemon (not running, or the control socket is missing)."""


def parse_birdc_protocols(text: str) -> dict[str, BirdProtocol]:
    """Parse the output of ``birdc -r -s SOCKET show protocols``; protocols by name."""
    protocols: dict[str, BirdProtocol] = {}
    for line in text.splitlines():
        if not line.strip():
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
