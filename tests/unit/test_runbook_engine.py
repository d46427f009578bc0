"""What the runbook engine refuses before it starts (no lab needed)."""

from __future__ import annotations

from wgfleet.runbook.engine import unsupported
from wgfleet.runbook.schema import parse_runbook

BASE = "name: t\ndescription: d\nwave:\n  - {step}\n  - gate: {{sessions: established}}\n"


def test_a_plain_runbook_is_supported() -> None:
    assert unsupported(parse_runbook(BASE.format(step="apply: {}"), "t.yaml")) == []


def test_tolerated_failures_are_supported() -> None:
    book = parse_runbook(BASE.format(step="apply: {}") + "max_failures: 1\n", "t.yaml")
    assert unsupported(book) == []


def test_preshared_key_rotation_is_refused_not_ignored() -> None:
    book = parse_runbook(BASE.format(step="rotate-keys: {preshared: true}"), "t.yaml")
    (problem,) = unsupported(book)
    assert problem.where == "wave[0] (rotate-keys)"
    assert "preshared" in problem.field
