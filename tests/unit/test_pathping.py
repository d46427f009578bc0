"""The lab's per-path loss measurement (tests/lab/pathping.py): parsing and overlap.

The lab tests assert "never both paths at once" with it, so it must be able to see an
overlap when there is one.
"""

from __future__ import annotations

from tests.lab.pathping import Outage, outages, overlap, parse_ping


def _ping(start: float, lost: set[int], count: int) -> str:
    """``ping -D -O -i 0.05`` output: replies, and "no answer yet" for lost requests."""
    lines = ["PING 2001:db8:a3::1 from 2001:db8:a1::f1:1 : 56 data bytes"]
    for seq in range(1, count + 1):
        sent = start + (seq - 1) * 0.05
        if seq in lost:
            lines.append(f"[{sent + 0.05:.6f}] no answer yet for icmp_seq={seq}")
        else:
            lines.append(
                f"[{sent + 0.0006:.6f}] 64 bytes from 2001:db8:a3::1: icmp_seq={seq} ttl=62 "
                "time=0.600 ms"
            )
    received = count - len(lost)
    lines.append(f"{count} packets transmitted, {received} received")
    return "\n".join(lines) + "\n"


def test_lost_requests_become_outages_in_time() -> None:
    text = _ping(1000.0, {11, 12, 13, 40}, 100)
    sent, times, lost = parse_ping(text, stopped=1000.0 + 100 * 0.05 + 2)
    assert sent == 100 and lost == {11, 12, 13, 40}
    found = outages(times, lost)
    assert [o.lost for o in found] == [3, 1]
    assert abs(found[0].start - 1000.5) < 1e-3 and abs(found[0].seconds - 0.15) < 1e-3


def test_requests_sent_just_before_the_stop_are_not_counted_as_lost() -> None:
    text = _ping(1000.0, {99, 100}, 100)
    sent, _, lost = parse_ping(text, stopped=1000.0 + 100 * 0.05)
    assert lost == set() and sent < 100


def test_overlap_is_the_time_every_flow_was_out_at_once() -> None:
    one = (Outage(10.0, 11.0, 20), Outage(20.0, 20.5, 10))
    two = (Outage(10.5, 12.0, 30),)
    assert overlap(one, two) == [(10.5, 11.0)]
    assert overlap(one, (Outage(11.0, 19.0, 160),)) == []  # touching is not overlapping
    assert overlap(one, two, (Outage(0.0, 10.6, 212),)) == [(10.5, 10.6)]
    assert overlap(one, ()) == []
