"""What changed since the previous run: keys and severities, never values (pure).

Runs are compared as JSON reports (schema ``wgfleet.verify/1``), so the previous run is
simply the previous ``report.json``. Compared:

* gateways: added to or removed from the run, and reachable <-> unreachable;
* site pairs: added, removed, or a change of severity or of paths up/expected;
* findings, keyed by (check, gateway, object): a change of severity, and findings that
  appear or disappear with a severity other than ok. An ok finding appearing or
  disappearing only means an object joined or left the plan; the gateway and pair changes
  already say so.

Messages, values, handshake times, byte counters, RTTs and timestamps are ignored, so a
healthy fleet verified twice shows no change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wgfleet.findings import SEVERITY_ORDER
from wgfleet.report.view import LABELS, printable

ChangeKind = Literal["gateway", "pair", "finding"]
_KIND_ORDER: dict[ChangeKind, int] = {"gateway": 0, "pair": 1, "finding": 2}
_LABEL_OF: dict[str, str] = {str(severity): label for severity, label in LABELS.items()}


@dataclass(frozen=True)
class Change:
    """One difference between two runs.

    Attributes:
        kind: ``gateway``, ``pair`` or ``finding``.
        subject: What changed: ``V1-1``, ``site1 -> site3``, ``V1-1 tunnel.exists wg5``.
        before: The previous state (a severity, ``reachable``/``unreachable``, or a pair
            state like ``ok 4/4``); None when the subject is new.
        after: The current state; None when the subject is gone.
        message: Context from the run that has the subject (the finding's message, the
            gateway's error); informative only, never compared.
        gateway: The gateway a gateway or finding change is about ("" for pairs and
            site-pair findings).
    """

    kind: ChangeKind
    subject: str
    before: str | None
    after: str | None
    message: str = ""
    gateway: str = ""

    @property
    def worse(self) -> bool:
        """True when the subject got worse (a problem appeared, a gateway became unreachable)."""
        return _rank(self.after) > _rank(self.before)


def _rank(state: str | None) -> int:
    if state is None or state == "reachable":
        return 0
    if state == "unreachable":
        return 3
    word = state.split()[0]
    for severity, label in LABELS.items():
        if word in (severity, label):
            return SEVERITY_ORDER[severity]
    return 0


def _list(document: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = document.get(key) or []
    return [item for item in value if isinstance(item, dict)]


def _gateways(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    found = {}
    for g in _list(document, "gateways"):
        state = "reachable" if g.get("reachable") else "unreachable"
        found[str(g.get("name"))] = (state, str(g.get("error") or ""))
    return found


def _pairs(document: Mapping[str, Any]) -> dict[str, str]:
    found = {}
    for p in _list(document, "pairs"):
        local = p.get("local_name") or f"site{p.get('local')}"
        remote = p.get("remote_name") or f"site{p.get('remote')}"
        severity = str(p.get("severity"))
        label = _LABEL_OF.get(severity, severity)
        found[f"{local} -> {remote}"] = f"{label} {p.get('paths_up')}/{p.get('paths_expected')}"
    return found


def _findings(document: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Findings by ``gateway check object``: (severity, message, gateway)."""
    found: dict[str, tuple[str, str, str]] = {}
    for f in _list(document, "findings"):
        key = " ".join(str(f.get(k) or "-") for k in ("gateway", "check", "object"))
        severity = str(f.get("severity"))
        if key not in found or _rank(severity) > _rank(found[key][0]):
            found[key] = (severity, str(f.get("message") or ""), str(f.get("gateway") or ""))
    return found


def diff_runs(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[Change]:
    """Return what changed between two JSON reports, gateways first, then pairs, findings.

    Args:
        previous: The earlier run's report (``from_json`` of its ``report.json``).
        current: The later run's report (``to_json`` of the run).

    Returns:
        The changes, sorted by kind and subject; empty when only values moved.
    """
    changes: list[Change] = []
    before_gw, after_gw = _gateways(previous), _gateways(current)
    for name in before_gw.keys() | after_gw.keys():
        old, new = before_gw.get(name), after_gw.get(name)
        if old is None or new is None or old[0] != new[0]:
            message = (new or old or ("", ""))[1]
            before, after = (old[0] if old else None), (new[0] if new else None)
            changes.append(Change("gateway", name, before, after, message, name))
    before_pairs, after_pairs = _pairs(previous), _pairs(current)
    for subject in before_pairs.keys() | after_pairs.keys():
        old_pair, new_pair = before_pairs.get(subject), after_pairs.get(subject)
        if old_pair != new_pair:
            changes.append(Change("pair", subject, old_pair, new_pair))
    before_f, after_f = _findings(previous), _findings(current)
    for subject in before_f.keys() | after_f.keys():
        old_f, new_f = before_f.get(subject), after_f.get(subject)
        old_sev, new_sev = (old_f[0] if old_f else None), (new_f[0] if new_f else None)
        if old_sev == new_sev or (old_sev or "ok") == (new_sev or "ok") == "ok":
            continue
        _, message, gateway = new_f or old_f or ("", "", "")
        changes.append(Change("finding", subject, old_sev, new_sev, message, gateway))
    return sorted(changes, key=lambda c: (_KIND_ORDER[c.kind], c.subject))


def _line(change: Change) -> str:
    if change.before is None:
        what = f"new, {change.after}"
    elif change.after is None:
        what = f"gone (was {change.before})"
    else:
        what = f"{change.before} -> {change.after}"
    context = f" ({printable(change.message)})" if change.message else ""
    marker = "!" if change.worse else " "
    return f"{marker} {change.kind} {printable(change.subject)}: {what}{context}"


def _collapse(changes: Sequence[Change]) -> list[Change]:
    """Fold the unknown findings of a gateway that became (un)reachable into one line."""
    flipped = {c.gateway for c in changes if c.kind == "gateway" and c.before and c.after}
    groups: dict[tuple[str, str | None, str | None], list[Change]] = {}
    kept: list[Change] = []
    for change in changes:
        if (
            change.kind == "finding"
            and change.gateway in flipped
            and "unknown" in (change.before, change.after)
        ):
            groups.setdefault((change.gateway, change.before, change.after), []).append(change)
        else:
            kept.append(change)
    for (gateway, before, after), group in groups.items():
        subject = f"{gateway} ({len(group)} check{'s' if len(group) != 1 else ''})"
        kept.append(Change("finding", subject, before, after, "", gateway))
    return sorted(kept, key=lambda c: (_KIND_ORDER[c.kind], c.subject))


def render_diff(changes: Sequence[Change], *, since: str | None = None) -> str:
    """Return the changes as text, one line each; ``!`` marks what got worse.

    The unknown findings of a gateway that became unreachable (or reachable again) are
    counted on one line rather than listed.

    Args:
        changes: What :func:`diff_runs` returned.
        since: When the previous run started (ISO 8601); None when there was none.

    Returns:
        Text ending with a newline.
    """
    if since is None:
        return "no previous run to compare with\n"
    if not changes:
        return f"no changes since the run of {since}\n"
    head = f"{len(changes)} change{'s' if len(changes) != 1 else ''} since the run of {since}"
    return "\n".join([head, *(_line(c) for c in _collapse(changes))]) + "\n"
