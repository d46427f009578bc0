"""The report view of a run: what every writer shows, derived once from a VerifyRun (pure).

Writers never interpret observations or findings on their own: the site x site matrix,
each tunnel's and session's state, counts and labels are computed here so the terminal,
Markdown, HTML, JSON, JUnit and metrics outputs always agree.

States: a tunnel end's state is the worst of the ``tunnel.*`` findings about its interface
and the ``bgp.*`` findings about its sessions on that gateway; a link's state (the line in
the topology picture) is the worst of both ends. Without any finding, a state is
``unknown``.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from wgfleet.findings import SEVERITY_ORDER, Finding, PairStatus, Severity, VerifyRun
from wgfleet.observation import Observation
from wgfleet.plan import GatewayPlan

SCHEMA = "wgfleet.verify/1"
# Worst first: the order of report sections and of the severity columns.
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "unknown", "ok")
LABELS: dict[Severity, str] = {"ok": "ok", "warning": "WARN", "critical": "CRIT", "unknown": "?"}
GATEWAY_CHECKS = frozenset({"gateway.reachable", "namespace.exists", "bird.running"})


def worst(severities: Iterable[Severity], default: Severity = "ok") -> Severity:
    """Return the worst of ``severities`` (``default`` when there is none)."""
    found = list(severities)
    if not found:
        return default
    return max(found, key=lambda s: SEVERITY_ORDER[s])


def iso_time(epoch: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with a ``Z``: ``2026-11-25T22:45:01Z``."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def printable(text: str) -> str:
    """Replace control characters (ANSI escapes from remote output, newlines) with ``?``.

    Messages may quote what a gateway printed; a terminal, a table cell or an XML file
    must not receive escape sequences or line breaks from it.
    """
    return "".join("?" if unicodedata.category(ch)[0] == "C" else ch for ch in text)


def plural(count: int, word: str) -> str:
    """Return ``"1 warning"`` / ``"2 warnings"``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def not_run(count: int) -> str:
    """Return ``"26 checks not run (gateway unreachable)"``."""
    return f"{plural(count, 'check')} not run (gateway unreachable)"


@dataclass(frozen=True)
class TunnelView:
    """One tunnel end as observed on one gateway (planned, or extra when ``peer`` is None).

    Attributes:
        present: Whether the interface was seen; None when the gateway was unreachable.
        handshake_age: Seconds since the latest handshake; None when never or not seen.
    """

    gateway: str
    interface: str
    peer: str | None
    planned: bool
    present: bool | None
    endpoint: str | None
    handshake_age: float | None
    rx_bytes: int | None
    tx_bytes: int | None
    state: Severity


@dataclass(frozen=True)
class SessionView:
    """One BGP session as observed on one gateway (planned, or extra when ``peer`` is None)."""

    gateway: str
    name: str
    peer: str | None
    interface: str | None
    planned: bool
    bgp_state: str | None
    since: int | None
    last_error: str
    routes_imported: int | None
    routes_exported: int | None
    state: Severity

    @property
    def established(self) -> bool:
        """True when BIRD reported the session Established."""
        return self.bgp_state == "Established"


@dataclass(frozen=True)
class GatewayView:
    """One gateway's observed summary and state."""

    name: str
    site: int | None
    reachable: bool
    error: str
    collected_at: float | None
    namespace: bool | None
    bird_error: str
    tunnels: tuple[TunnelView, ...]
    sessions: tuple[SessionView, ...]
    state: Severity
    worst: Severity


@dataclass(frozen=True)
class LinkView:
    """A tunnel between two gateways as one line of the topology picture."""

    a: str
    a_interface: str
    b: str
    b_interface: str | None
    state: Severity


@dataclass(frozen=True)
class SiteView:
    """A site of the matrix: number, name, AS number and gateways in plan order."""

    number: int
    name: str
    asn: int | None
    gateways: tuple[str, ...]


class RunView:
    """Everything writers show about a run, computed once.

    Args:
        run: The verification run.
    """

    def __init__(self, run: VerifyRun) -> None:
        self.run = run
        verdict = run.verdict
        self.severity: Severity = verdict.severity
        self.findings: tuple[Finding, ...] = tuple(
            sorted(
                verdict.findings,
                key=lambda f: (-SEVERITY_ORDER[f.severity], f.gateway, f.check, f.object),
            )
        )
        self.problems: tuple[Finding, ...] = tuple(f for f in self.findings if f.severity != "ok")
        self.counts: dict[Severity, int] = {s: 0 for s in SEVERITIES}
        for finding in verdict.findings:
            self.counts[finding.severity] += 1
        self._by_object: dict[tuple[str, str], list[Finding]] = {}
        self._by_gateway: dict[str, list[Finding]] = {}
        for finding in verdict.findings:
            self._by_object.setdefault((finding.gateway, finding.object), []).append(finding)
            self._by_gateway.setdefault(finding.gateway, []).append(finding)
        # Severities of the findings about each tunnel end, for links().
        self._ends: dict[tuple[str, str], list[Severity]] = {}
        self.sites = self._sites()
        self._site_names = {site.number: site.name for site in self.sites}
        self.pairs: dict[tuple[int, int], PairStatus] = {
            (p.local, p.remote): p for p in verdict.pairs
        }
        names = [g.name for g in run.plan.gateways]
        names += sorted(set(run.observations) - set(names))
        self.gateways = tuple(self._gateway(name) for name in names)
        self._gateway_by_name = {g.name: g for g in self.gateways}
        self.unreachable: tuple[str, ...] = tuple(
            dict.fromkeys(
                [*verdict.unreachable, *(g.name for g in self.gateways if not g.reachable)]
            )
        )

    # -- sites and the matrix ------------------------------------------------------------

    def _sites(self) -> tuple[SiteView, ...]:
        plan = self.run.plan
        members: dict[int, list[str]] = {}
        for gateway in plan.gateways:
            members.setdefault(gateway.site.number, []).append(gateway.name)
        numbers = {s.number for s in plan.sites} | set(self.run.verdict.sites)
        numbers |= {n for p in self.run.verdict.pairs for n in (p.local, p.remote)}
        known = {s.number: s for s in plan.sites}
        return tuple(
            SiteView(
                n,
                known[n].name if n in known else f"site{n}",
                known[n].asn if n in known else None,
                tuple(members.get(n, ())),
            )
            for n in sorted(numbers)
        )

    def site_name(self, number: int) -> str:
        """Return the name of site ``number`` (``site<N>`` when the plan does not know it)."""
        return self._site_names.get(number, f"site{number}")

    def cell(self, local: int, remote: int) -> PairStatus | None:
        """Return the matrix cell (local row, remote column); None when not a planned pair."""
        return self.pairs.get((local, remote))

    def summary_line(self) -> str:
        """Return ``verify: 6 gateways, 0 unreachable, 0 critical, 2 warnings`` (+ unknown)."""
        parts = [
            plural(len(self.gateways), "gateway"),
            f"{len(self.unreachable)} unreachable",
            f"{self.counts['critical']} critical",
            plural(self.counts["warning"], "warning"),
        ]
        if self.counts["unknown"]:
            parts.append(f"{self.counts['unknown']} unknown")
        return "verify: " + ", ".join(parts)

    def split_problems(self) -> tuple[list[Finding], dict[str, int]]:
        """Return the problems to list, and per unreachable gateway how many unknown
        findings it has (one line "N checks not run" says it better than N lines)."""
        unreachable = set(self.unreachable)
        listed: list[Finding] = []
        collapsed: dict[str, int] = {}
        for finding in self.problems:
            if finding.severity == "unknown" and finding.gateway in unreachable:
                collapsed[finding.gateway] = collapsed.get(finding.gateway, 0) + 1
            else:
                listed.append(finding)
        return listed, collapsed

    def unreported_unreachable(self) -> list[GatewayView]:
        """Unreachable gateways that no non-ok ``gateway.reachable`` finding names."""
        named = {f.gateway for f in self.problems if f.check == "gateway.reachable"}
        views = (self.gateway(name) for name in self.unreachable if name not in named)
        return [v for v in views if v is not None]

    def gateway(self, name: str) -> GatewayView | None:
        """Return the view of the named gateway, None if the run does not know it."""
        return self._gateway_by_name.get(name)

    @property
    def healthy(self) -> bool:
        """True when nothing is flagged and every gateway answered."""
        return self.severity == "ok" and not self.unreachable

    # -- gateways, tunnels, sessions -----------------------------------------------------

    def about(self, gateway: str, obj: str, prefixes: tuple[str, ...]) -> list[Finding]:
        """Return the findings on ``gateway`` about ``obj`` whose check starts with a prefix."""
        found = self._by_object.get((gateway, obj), [])
        return [f for f in found if f.check.startswith(prefixes)]

    def _severities(
        self, gateway: str, objects: Iterable[str], prefixes: tuple[str, ...]
    ) -> list[Severity]:
        return [f.severity for obj in objects for f in self.about(gateway, obj, prefixes)]

    def _gateway(self, name: str) -> GatewayView:
        observation = self.run.observations.get(name)
        try:
            plan: GatewayPlan | None = self.run.plan.gateway(name)
        except KeyError:
            plan = None
        obs = observation or Observation(gateway=name, reachable=False, error="not collected")
        tunnels = self._tunnels(plan, obs)
        sessions = self._sessions(plan, obs)
        own = self._by_gateway.get(name, [])
        level = [f.severity for f in own if f.check in GATEWAY_CHECKS]
        state = worst(level, default="ok" if obs.reachable else "critical")
        return GatewayView(
            name=name,
            site=plan.site.number if plan else None,
            reachable=obs.reachable,
            error=obs.error,
            collected_at=obs.collected_at or None,
            namespace=obs.namespace if obs.reachable else None,
            bird_error=obs.bird_error,
            tunnels=tunnels,
            sessions=sessions,
            state=state,
            worst=worst([f.severity for f in own], default=state),
        )

    def _tunnels(self, plan: GatewayPlan | None, obs: Observation) -> tuple[TunnelView, ...]:
        now = obs.collected_at or self.run.started
        planned = {t.interface: t.peer for t in plan.tunnels} if plan else {}
        sessions: dict[str, list[str]] = {}
        for session in plan.sessions if plan else ():
            sessions.setdefault(session.interface, []).append(session.name)
        names = list(planned) + sorted(set(obs.wireguard) - set(planned))
        views = []
        for interface in names:
            seen = obs.wireguard.get(interface)
            ages = [p.handshake_age(now) for p in seen.peers] if seen else []
            known = [a for a in ages if a is not None]
            found = self._severities(obs.gateway, [interface], ("tunnel.",))
            found += self._severities(obs.gateway, sessions.get(interface, []), ("bgp.",))
            self._ends[(obs.gateway, interface)] = found
            views.append(
                TunnelView(
                    gateway=obs.gateway,
                    interface=interface,
                    peer=planned.get(interface),
                    planned=interface in planned,
                    present=(seen is not None) if obs.reachable else None,
                    endpoint=next((p.endpoint for p in seen.peers if p.endpoint), None)
                    if seen
                    else None,
                    handshake_age=round(min(known), 3) if known else None,
                    rx_bytes=sum(p.rx_bytes for p in seen.peers) if seen else None,
                    tx_bytes=sum(p.tx_bytes for p in seen.peers) if seen else None,
                    state=worst(found, default="unknown"),
                )
            )
        return tuple(views)

    def _sessions(self, plan: GatewayPlan | None, obs: Observation) -> tuple[SessionView, ...]:
        planned = {s.name: s for s in plan.sessions} if plan else {}
        bird = obs.bird or {}
        extra = sorted(name for name, p in bird.items() if p.proto == "BGP" and name not in planned)
        views = []
        for name in [*planned, *extra]:
            seen = bird.get(name)
            session = planned.get(name)
            views.append(
                SessionView(
                    gateway=obs.gateway,
                    name=name,
                    peer=session.peer if session else None,
                    interface=session.interface if session else None,
                    planned=session is not None,
                    bgp_state=seen.bgp_state if seen else None,
                    since=seen.since if seen else None,
                    last_error=seen.last_error if seen else "",
                    routes_imported=seen.routes_imported if seen else None,
                    routes_exported=seen.routes_exported if seen else None,
                    state=worst(self._severities(obs.gateway, [name], ("bgp.",)), "unknown"),
                )
            )
        return tuple(views)

    def links(self) -> list[LinkView]:
        """Return every planned tunnel once (per gateway pair), with the state of both ends."""
        ends = {(t.gateway, t.peer): t for g in self.gateways for t in g.tunnels if t.peer}
        links = []
        for (a, b), tunnel in ends.items():
            other = ends.get((b, a))
            if other is not None and (b, a) < (a, b):
                continue  # drawn once, from the lower-named end
            found = list(self._ends.get((a, tunnel.interface), []))
            if other is not None:
                found += self._ends.get((b, other.interface), [])
            links.append(
                LinkView(
                    a=a,
                    a_interface=tunnel.interface,
                    b=b,
                    b_interface=other.interface if other else None,
                    state=worst(found, default="unknown"),
                )
            )
        return links
