"""Parse ``fping -q -c N`` summaries: per target, loss and min/avg/max round-trip time."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wgfleet.parsers import ParseError

_LINE = re.compile(
    r"^(?P<target>\S+)\s+:\s+xmt/rcv/%(?P<kind>loss|return) = "
    r"(?P<xmt>\d+)/(?P<rcv>\d+)/(?P<loss>\d+(?:\.\d+)?)%"
    r"(?:, min/avg/max = (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+))?"
)


@dataclass(frozen=True)
class PingResult:
    """Loss and RTT (milliseconds) towards one address."""

    target: str
    sent: int
    received: int
    loss_percent: float
    rtt_min: float | None
    rtt_avg: float | None
    rtt_max: float | None


def parse_fping_summary(text: str) -> dict[str, PingResult]:
    """Parse fping's ``-q -c N`` summary lines (it prints them on stderr); by target."""
    results: dict[str, PingResult] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if match is None:
            if " : " in line and "xmt/rcv" in line:
                raise ParseError("fping", "unrecognised summary line", line)
            continue  # ICMP errors and warnings fping prints among the summaries
        g = match.groupdict()
        results[g["target"]] = PingResult(
            target=g["target"],
            sent=int(g["xmt"]),
            received=int(g["rcv"]),
            # With duplicate replies fping reports %return (received/sent) instead of %loss.
            loss_percent=(
                float(g["loss"]) if g["kind"] == "loss" else max(0.0, 100.0 - float(g["loss"]))
            ),
            rtt_min=float(g["min"]) if g["min"] else None,
            rtt_avg=float(g["avg"]) if g["avg"] else None,
            rtt_max=float(g["max"]) if g["max"] else None,
        )
    return results
