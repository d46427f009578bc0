"""Continuous pings between two site hosts over each path separately, outages compared in time.

Site 1's host reaches site 3's host through either gateway of its site, and inside the
gateways through either remote gateway (BGP ECMP). Path k is pinned, end to end, to the
tunnel between V1-k and V3-k:

- site 1's host gets an extra source address per path, with a policy rule sending what
  leaves from it to V1-k (``from ADDR lookup TABLE``, default via V1-k's LAN address);
- site 3's host gets a policy rule sending the replies to that address to V3-k;
- inside the gateways the kernel hashes each flow onto one ECMP next hop (addresses and
  flow label): of a few candidate source addresses, the first whose echo requests leave
  V1-k on its tunnel to V3-k and whose replies leave V3-k on its tunnel to V1-k is kept.
  That is measured (tunnel packet counters read inside the gateways while a burst of
  pings is sent), not assumed, and measured again after the run: a gateway that lost a
  tunnel or got its routes back in another order may hash the flow elsewhere.

``pairs`` chooses other paths, e.g. ``((1, 2), (2, 1))`` for the crossed ones (V1-1 <-> V3-2
and V1-2 <-> V3-1), or all four: the overlap is then the time all of them were out at once.

Each flow is pinged every 50 ms by its own ``ping -D -O`` (a timestamp on every reply and on
every echo request still unanswered when the next one is sent), written to a file rather
than a pipe that could fill up and stall ping. Per flow: packets sent and lost, and the
outages (runs of lost packets) as time intervals; then the time during which both paths
were losing packets at once. Everything added (addresses, rules, routes, processes) is
removed on exit, even on failure; processes are ended by their own PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from wgfleet.lab import manager
from wgfleet.lab.topology import LabGateway, LabTopology

INTERVAL = 0.05
PROBE_COUNT = 30  # echo requests of one pinning probe
CANDIDATES = 24  # source addresses tried per path before giving up
IN_FLIGHT = 1.0  # seconds before the stop during which a packet may still be on its way
_TABLE_BASE = 7000  # policy routing tables/rule preferences: 7000 + 100 * path + candidate

_LINE = re.compile(r"^\[(?P<ts>\d+\.\d+)\] (?P<text>.*)$")
_SEQ = re.compile(r"icmp_seq=(\d+)")
_RTT = re.compile(r"time=([\d.]+) ms")
_SENT = re.compile(r"(\d+) packets transmitted")
_OURS = re.compile(r"lookup 7[1-9]\d\d|table 7[1-9]\d\d|2001:db8:a\d+::f[1-9]:[0-9a-f]+/")
_ERROR = re.compile(r"From (\S+) icmp_seq=\d+ (.*)$", re.MULTILINE)


def _run(argv: Sequence[str], *, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# --- analysis (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """Consecutive lost packets: [start, end) from the first one's send time to one
    interval after the last one's."""

    start: float
    end: float
    lost: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Phase:
    """A labelled stretch of time (a runbook wave, from the run's journal)."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Flow:
    """One measured ping flow."""

    name: str
    source: str
    route: str  # the tunnels the flow was seen on before the run
    sent: int
    lost: int
    outages: tuple[Outage, ...]
    route_after: str = ""  # the same, measured after the run ("" when not measured)
    errors: tuple[tuple[str, int], ...] = ()  # ICMP errors received: (sender and reason, count)

    @property
    def longest(self) -> float:
        return max((o.seconds for o in self.outages), default=0.0)

    @property
    def lost_seconds(self) -> float:
        return self.lost * INTERVAL


def send_times(
    replies: Mapping[int, float],
    unanswered: Mapping[int, float],
    sent: int,
    interval: float = INTERVAL,
) -> dict[int, float]:
    """Estimated send time of echo requests 1..sent: a reply's timestamp minus its round
    trip, an "unanswered" report's timestamp minus one interval (ping prints it just before
    sending the next request), else interpolated between the nearest known neighbours."""
    known = {
        **{s: t for s, t in unanswered.items() if s <= sent},
        **{s: t for s, t in replies.items() if s <= sent},
    }
    if not known:
        return {}
    seqs = sorted(known)
    times: dict[int, float] = {}
    i = 0
    for seq in range(1, sent + 1):
        while i < len(seqs) and seqs[i] < seq:
            i += 1
        if seq in known:
            times[seq] = known[seq]
            continue
        before = seqs[i - 1] if i > 0 else None
        after = seqs[i] if i < len(seqs) else None
        if before is not None and after is not None:
            step = (known[after] - known[before]) / (after - before)
            times[seq] = known[before] + (seq - before) * step
        elif before is not None:
            times[seq] = known[before] + (seq - before) * interval
        elif after is not None:
            times[seq] = known[after] - (after - seq) * interval
    return times


def parse_ping(
    text: str, stopped: float, interval: float = INTERVAL
) -> tuple[int, dict[int, float], set[int]]:
    """Parse ``ping -D -O`` output: (sent, send time per request, lost requests).

    Requests sent less than ``IN_FLIGHT`` before ``stopped`` (epoch seconds) are left out:
    their replies may still have been on their way."""
    replies: dict[int, float] = {}
    unanswered: dict[int, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        seq = _SEQ.search(line) if m else None
        if not m or not seq:
            continue
        ts, number = float(m.group("ts")), int(seq.group(1))
        if " bytes from " in m.group("text"):
            rtt = _RTT.search(line)
            replies.setdefault(number, ts - (float(rtt.group(1)) / 1000 if rtt else 0.0))
        elif "no answer yet" in m.group("text"):
            unanswered.setdefault(number, ts - interval)
    total = _SENT.search(text)
    sent = int(total.group(1)) if total else max([*replies, *unanswered], default=0)
    times = send_times(replies, unanswered, sent, interval)
    counted = {s: t for s, t in times.items() if t <= stopped - IN_FLIGHT}
    lost = {s for s in counted if s not in replies}
    return len(counted), counted, lost


def icmp_errors(text: str) -> dict[str, int]:
    """ICMP errors in ``ping`` output, counted per sender and reason."""
    found: dict[str, int] = {}
    for m in _ERROR.finditer(text):
        key = f"{m.group(1)} {m.group(2).strip()}"
        found[key] = found.get(key, 0) + 1
    return found


def outages(
    times: Mapping[int, float], lost: Iterable[int], interval: float = INTERVAL
) -> tuple[Outage, ...]:
    """Runs of consecutive lost requests as time intervals."""
    runs: list[list[int]] = []
    for seq in sorted(lost):
        if runs and runs[-1][-1] == seq - 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    return tuple(Outage(times[r[0]], times[r[-1]] + interval, len(r)) for r in runs)


def overlap(*flows: Iterable[Outage]) -> list[tuple[float, float]]:
    """The intervals during which every flow was in an outage at once."""
    common: list[tuple[float, float]] | None = None
    for outages_of_flow in flows:
        spans = [(o.start, o.end) for o in outages_of_flow]
        if common is None:
            common = spans
            continue
        common = [(max(a, c), min(b, d)) for a, b in common for c, d in spans
                  if max(a, c) < min(b, d)]  # fmt: skip
    return sorted(common or [])


def phases_from_journal(events: Iterable[Mapping[str, Any]]) -> list[Phase]:
    """The waves of a runbook run (journal events), as labelled time intervals."""
    started: dict[int, tuple[float, list[str]]] = {}
    found: list[Phase] = []
    for event in events:
        kind, wave = event.get("event"), event.get("wave")
        stamp = datetime.fromisoformat(str(event.get("ts", "")).replace("Z", "+00:00"))
        if kind == "wave-start" and wave is not None:
            started[int(wave)] = (stamp.timestamp(), list(event.get("gateways", [])))
        elif kind == "wave-end" and wave is not None and int(wave) in started:
            begin, gateways = started.pop(int(wave))
            found.append(Phase(f"wave {wave} ({' '.join(gateways)})", begin, stamp.timestamp()))
    return found


def phase_of(t: float, phases: Sequence[Phase]) -> str:
    for phase in phases:
        if phase.start <= t <= phase.end:
            return phase.label
    if phases and t < phases[0].start:
        return "before wave 1"
    if phases and t > phases[-1].end:
        return "after the last wave"
    return "between waves" if phases else ""


@dataclass
class Measurement:
    """Every flow's figures and the overlap of the paths' outages (when all were out)."""

    flows: list[Flow]
    started: float
    both: list[tuple[float, float]] = field(default_factory=list)

    def flow(self, name: str) -> Flow:
        return next(f for f in self.flows if f.name == name)

    @property
    def paths(self) -> list[Flow]:
        return [f for f in self.flows if f.name.startswith("path")]

    @property
    def overlap_seconds(self) -> float:
        return sum(end - start for start, end in self.both)

    def report(self, phases: Sequence[Phase] = ()) -> str:
        """Per-flow lines (sent, lost, longest outage, each outage with its wave), then the
        overlap of the paths' outages."""

        def at(t: float) -> str:
            where = phase_of(t, phases)
            return f"+{t - self.started:.2f} s" + (f" ({where})" if where else "")

        lines = []
        for f in self.flows:
            moved = ""
            if f.route_after:
                same = f.route_after == f.route
                moved = f"; after the run: {'the same' if same else f.route_after}"
            lines.append(
                f"  {f.name} [{f.source}; {f.route}{moved}]: sent {f.sent}, lost "
                f"{f.lost} ({f.lost_seconds:.2f} s), longest outage "
                f"{f.longest:.2f} s, {len(f.outages)} outage(s)"
            )
            if f.errors:
                errors = ", ".join(f"{n}x {what}" for what, n in f.errors)
                lines.append(f"      ICMP errors: {errors}")
            for o in f.outages:
                lines.append(f"      {o.lost} lost from {at(o.start)}, {o.seconds:.2f} s")
        detail = "; ".join(f"{at(s)} for {e - s:.2f} s" for s, e in self.both)
        who = "both paths" if len(self.paths) == 2 else f"all {len(self.paths)} paths"
        lines.append(
            f"  {who} losing at once: {self.overlap_seconds:.2f} s"
            + (f" ({detail})" if detail else "")
        )
        return "\n".join(lines)


# --- the lab side ---------------------------------------------------------------------------


@dataclass
class _Running:
    name: str
    source: str
    route: str
    proc: subprocess.Popen[str]
    log: Path
    handle: TextIO


class PathPing:
    """Ping site ``dst``'s host from site ``src``'s host over each path, and over the site
    host's own ECMP default route, every ``interval`` seconds. Use as a context manager:
    the measurement runs inside the ``with`` block, :meth:`stop` returns it, and whatever
    was added is removed on leaving the block."""

    def __init__(
        self,
        topo: LabTopology,
        src: int = 1,
        dst: int = 3,
        interval: float = INTERVAL,
        ecmp: bool = True,
        pairs: Sequence[tuple[int, int]] = ((1, 1), (2, 2)),
    ) -> None:
        self.topo, self.interval, self.ecmp = topo, interval, ecmp
        self.pairs = list(pairs)  # path k: (gateway index at src, gateway index at dst)
        self.src, self.dst = topo.sites[src - 1], topo.sites[dst - 1]
        self.target = str(self.dst.host6.ip)
        self.src_gws, self.dst_gws = topo.gateways_of(src), topo.gateways_of(dst)
        self._undo: list[list[str]] = []
        self._running: list[_Running] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="wgfleet-pathping-"))
        self._started = 0.0
        self.sources: dict[int, str] = {}

    # addresses, rules and routes (each undone on close)

    def _ip(self, netns: str, *args: str, undo: Sequence[str] | None = None) -> None:
        _run(["ip", "-n", netns, *args])
        if undo is not None:
            self._undo.append(["ip", "-n", netns, *undo])

    def _add_source(self, path: int, candidate: int) -> str:
        net = self.src.host6.network
        address = str(net[(0xF0 + path) << 16 | candidate])
        table = str(_TABLE_BASE + 100 * path + candidate)
        via_src, via_dst = (str(gw.lan6.ip) for gw in self._ends(path))
        s, d = self.src.netns, self.dst.netns
        cidr = f"{address}/{net.prefixlen}"
        flush, unrule = f"-6 route flush table {table}", f"-6 rule del pref {table}"
        for netns, args, undo in (
            (s, f"addr add {cidr} dev br0 nodad", f"addr del {cidr} dev br0"),
            (s, f"-6 route add default via {via_src} dev br0 table {table}", flush),
            (s, f"-6 rule add from {address} lookup {table} pref {table}", unrule),
            (d, f"-6 route add default via {via_dst} dev br0 table {table}", flush),
            (d, f"-6 rule add to {address} lookup {table} pref {table}", unrule),
        ):
            self._ip(netns, *args.split(), undo=undo.split())
        return address

    def _drop_last_source(self) -> None:
        """Undo the five additions of the last :meth:`_add_source` now."""
        for argv in reversed(self._undo[-5:]):
            _run(argv, check=False)
        del self._undo[-5:]

    # which tunnel a flow takes inside the gateways

    def _tunnels(self, gw: LabGateway) -> dict[str, tuple[int, str]]:
        """Per WireGuard interface of a gateway: (packets sent, the peer gateway's name)."""
        pid = manager.pid_of(self.topo.name, gw.name, self.topo.state_dir.parent)
        if pid is None:
            raise RuntimeError(f"{gw.name} is not running")
        enter = ["nsenter", "-t", str(pid), "-m"]
        links = json.loads(_run([*enter, "ip", "-n", "private", "-s", "-j", "link"]))
        peers = {}
        for line in _run(
            [*enter, "ip", "netns", "exec", "private", "wg", "show", "all", "endpoints"]
        ).splitlines():
            iface, _, endpoint = line.split("\t")
            host = endpoint.rsplit(":", 1)[0].strip("[]")
            peers[iface] = next(
                (g.name for g in self.topo.gateways if str(g.endpoint.ip) == host), endpoint
            )
        return {
            link["ifname"]: (int(link["stats64"]["tx"]["packets"]), peers[link["ifname"]])
            for link in links
            if link["ifname"] in peers
        }

    def route_of(self, path: int, source: str) -> str:
        """Send a burst of pings from ``source``; return the tunnels it was seen on, e.g.
        ``V1-1->V3-1, V3-1->V1-1`` (``?`` where no single tunnel carried the burst)."""
        ends = self._ends(path)
        before = [self._tunnels(gw) for gw in ends]
        _run(
            [
                "ip",
                "netns",
                "exec",
                self.src.netns,
                "ping",
                "-q",
                "-c",
                str(PROBE_COUNT),
                "-i",
                "0.01",
                "-W",
                "1",
                "-I",
                source,
                self.target,
            ],
            check=False,
        )
        after = [self._tunnels(gw) for gw in ends]
        hops = []
        for gw, old, new in zip(ends, before, after, strict=True):
            carried = [new[i][1] for i in new if new[i][0] - old.get(i, (0, ""))[0] >= PROBE_COUNT]
            hops.append(f"{gw.name}->{carried[0] if len(carried) == 1 else '?'}")
        return ", ".join(hops)

    def _ends(self, path: int) -> tuple[LabGateway, LabGateway]:
        """Path k's gateway at the source site and at the destination site."""
        here, there = self.pairs[path - 1]
        return self.src_gws[here - 1], self.dst_gws[there - 1]

    def _pin(self, path: int) -> tuple[str, str]:
        here, there = self._ends(path)
        want = f"{here.name}->{there.name}, {there.name}->{here.name}"
        seen = []
        for candidate in range(1, CANDIDATES + 1):
            source = self._add_source(path, candidate)
            route = self.route_of(path, source)
            if route == want:
                return source, route
            seen.append(route)
            self._drop_last_source()
        raise RuntimeError(
            f"path {path}: no source address of {CANDIDATES} hashed onto "
            f"{want} in the gateways; seen {seen}"
        )

    # the measurement

    def _ping(self, name: str, source: str, route: str) -> None:
        log = self._tmp / f"{name.replace(' ', '-')}.log"
        handle = log.open("w")
        argv = [
            "ip",
            "netns",
            "exec",
            self.src.netns,
            "ping",
            "-D",
            "-O",
            "-i",
            str(self.interval),
            *(["-I", source] if source else []),
            self.target,
        ]
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, text=True)
        self._running.append(
            _Running(name, source or str(self.src.host6.ip), route, proc, log, handle)
        )

    def start(self) -> None:
        routes = {}
        numbers = range(1, len(self.pairs) + 1)
        for path in numbers:  # all pinned first: every ping then covers the same time
            self.sources[path], routes[path] = self._pin(path)
        for path in numbers:
            self._ping(f"path {path}", self.sources[path], routes[path])
        if self.ecmp:
            self._ping("site host (ECMP)", "", "default route via both gateways")
        self._started = time.time()

    def _end(self, running: _Running) -> str:
        """Stop one ping by its PID; its output."""
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGINT)
            try:
                running.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                running.proc.kill()
                running.proc.wait(timeout=10)
        running.handle.close()
        return running.log.read_text()

    def _named(self, errors: Mapping[str, int]) -> dict[str, int]:
        """ICMP error senders named after the gateway whose LAN address sent them."""
        names = {str(gw.lan6.ip): gw.name for gw in self.topo.gateways}
        named: dict[str, int] = {}
        for what, count in errors.items():
            sender, _, reason = what.partition(" ")
            key = f"{names.get(sender, sender)} {reason}"
            named[key] = named.get(key, 0) + count
        return named

    def stop(self) -> Measurement:
        """Stop every ping (by PID) and return the figures; routes re-measured after."""
        stopped = time.time()
        flows = []
        for running in list(self._running):
            text = self._end(running)
            self._running.remove(running)
            sent, times, lost = parse_ping(text, stopped, self.interval)
            if sent == 0:
                raise RuntimeError(f"{running.name}: no ping measured:\n{text[-2000:]}")
            flows.append(
                Flow(
                    running.name,
                    running.source,
                    running.route,
                    sent,
                    len(lost),
                    outages(times, lost, self.interval),
                    errors=tuple(sorted(self._named(icmp_errors(text)).items())),
                )
            )
        for i, f in enumerate(flows):
            if f.name.startswith("path "):
                try:
                    after = self.route_of(int(f.name.split()[1]), f.source)
                except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                    after = f"not measured: {exc}"
                flows[i] = dataclasses.replace(f, route_after=after)
        paths = [f for f in flows if f.name.startswith("path ")]
        return Measurement(flows, self._started, overlap(*(f.outages for f in paths)))

    def close(self) -> None:
        """End our pings (by PID) and remove every address, rule and route we added."""
        for running in self._running:
            with contextlib.suppress(Exception):  # cleanup goes on whatever one ping did
                self._end(running)
        self._running.clear()
        for argv in reversed(self._undo):
            _run(argv, check=False)
        self._undo.clear()
        for log in self._tmp.iterdir():
            log.unlink()
        self._tmp.rmdir()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def leftovers(topo: LabTopology) -> list[str]:
    """What is left of any PathPing's additions in the lab's site hosts (teardown check)."""
    left = []
    for site in topo.sites:
        for what in (["-6", "rule"], ["-6", "addr"], ["-6", "route", "show", "table", "all"]):
            for line in _run(["ip", "-n", site.netns, *what], check=False).splitlines():
                if _OURS.search(line):
                    left.append(f"{site.netns}: {line.strip()}")
    return left
