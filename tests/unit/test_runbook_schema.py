"""The runbook schema: shipped runbooks load, defaults and typed arguments, located problems.

Bad runbooks, one per case, are data in ``tests/specs/bad_runbooks``; this file covers what
a valid runbook becomes and the helpers around validation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wgfleet.errors import BadInputError, ExitStatus
from wgfleet.runbook import APPLY_PARTS
from wgfleet.runbook.schema import (
    ApplyArgs,
    DecommissionArgs,
    GateArgs,
    PauseArgs,
    RotateKeysArgs,
    Runbook,
    Timeouts,
    VerifyArgs,
    check_change,
    check_targets,
    load_runbook,
    parse_runbook,
)

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "runbooks"
SHIPPED = ("rollout", "verify", "add-site", "decommission-gateway", "rotate-keys")

MINIMAL = """\
name: minimal
description: The smallest runbook that changes something.
wave:
  - apply:
  - gate: {sessions: established}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(BadInputError) as caught:
        parse_runbook(text, "rb.yaml")
    assert caught.value.exit_status == ExitStatus.BAD_INPUT
    return [str(p) for p in caught.value.problems]


def test_every_shipped_runbook_is_there_and_loads() -> None:
    assert {p.stem for p in RUNBOOKS.glob("*.yaml")} == set(SHIPPED)
    for name in SHIPPED:
        runbook = load_runbook(RUNBOOKS / f"{name}.yaml")
        assert runbook.name == name
        assert runbook.file == str(RUNBOOKS / f"{name}.yaml")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_runbook_documents_how_to_run_it(name: str) -> None:
    text = (RUNBOOKS / f"{name}.yaml").read_text()
    header = text.split("\nname:", 1)[0]
    assert header.startswith(f"# {name}.yaml: ")
    assert f"wgfleet runbook run runbooks/{name}.yaml" in header
    assert "What it does" in header


def test_rollout_is_precheck_pause_apply_gate_postcheck() -> None:
    rb = load_runbook(RUNBOOKS / "rollout.yaml")
    assert (rb.strategy, rb.on_failure, rb.max_failures, rb.targets) == (
        "one-gateway-per-site", "rollback", 0, None
    )  # fmt: skip
    assert [s.kind for s in rb.before] == ["verify", "pause"]
    assert rb.before[0].args == VerifyArgs(require="no-critical", wait=0.0)
    assert [s.args for s in rb.wave] == [
        ApplyArgs(APPLY_PARTS),
        GateArgs(sessions="established", ecmp="restored"),
    ]
    assert rb.after[0].args == VerifyArgs(require="healthy", wait=60.0)
    assert rb.changes_gateways


def test_verify_runbook_has_no_waves_and_changes_nothing() -> None:
    rb = load_runbook(RUNBOOKS / "verify.yaml")
    assert rb.strategy == "all"
    assert rb.wave == () and rb.after == ()
    assert [s.args for s in rb.before] == [VerifyArgs(require="any")]
    assert not rb.changes_gateways


def test_decommission_runbook_needs_limit_and_gates_the_peers() -> None:
    rb = load_runbook(RUNBOOKS / "decommission-gateway.yaml")
    assert rb.targets is None and rb.limit_required
    assert [s.kind for s in rb.wave] == ["pause", "decommission", "gate"]
    assert rb.wave[1].args == DecommissionArgs()


def test_rotate_keys_runbook_rotates_one_gateway_per_site_with_preshared_keys() -> None:
    rb = load_runbook(RUNBOOKS / "rotate-keys.yaml")
    assert rb.strategy == "one-gateway-per-site"
    assert rb.wave[0].args == RotateKeysArgs(preshared=True)
    gate = rb.wave[1].args
    assert isinstance(gate, GateArgs) and gate.sessions and gate.ecmp


def test_add_site_runbook_applies_to_every_gateway_one_per_site() -> None:
    rb = load_runbook(RUNBOOKS / "add-site.yaml")
    assert rb.targets is None and not rb.limit_required
    assert rb.strategy == "one-gateway-per-site"
    assert [s.kind for s in rb.wave] == ["apply", "gate"]
    assert rb.before[0].args == VerifyArgs(require="any")


def test_the_documented_example_is_valid() -> None:
    doc = (REPO / "docs" / "runbooks.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    rb = parse_runbook(example.group(1), "docs/runbooks.md")
    assert rb.name == "rollout" and rb.change == "CHG-1234"


def test_defaults() -> None:
    rb = parse_runbook(MINIMAL, "rb.yaml")
    assert rb == Runbook(
        name="minimal",
        description="The smallest runbook that changes something.",
        change=None,
        targets=None,
        strategy="one-gateway-per-site",
        batch_size=None,
        on_failure="rollback",
        max_failures=0,
        timeouts=Timeouts(step=300.0, gate=120.0),
        before=(),
        wave=rb.wave,
        after=(),
        file="rb.yaml",
    )
    apply, gate = rb.wave
    assert (apply.kind, apply.name, apply.where, apply.timeout) == (
        "apply",
        "apply",
        "wave[0]",
        None,
    )
    assert gate.title == "wave[1] (gate)" and gate.phase == "wave"
    assert gate.name == "gate sessions"


def test_every_field_is_read() -> None:
    rb = parse_runbook(
        """\
name: all-fields
description: |
  Two lines
  of description.
change: 4711
targets: [site1, V2-1, site1]
strategy: batch
batch_size: 3
on_failure: stop
max_failures: 2
timeouts: {step: 60, gate: 30.5}
before:
  - pause: {message: "Go {waves}/{gateways}?", name: confirm, timeout: 600}
wave:
  - pause: "Wave {wave}: {hosts}"
  - apply: {parts: [bird, keys], timeout: 90}
  - rotate-keys: {preshared: true}
  - gate: {handshakes: fresh, timeout: 45}
after:
  - verify: {require: no-critical, wait: 10, timeout: 20}
""",
        "rb.yaml",
    )
    assert rb.change == "4711"
    assert rb.targets == ("site1", "V2-1")
    assert (rb.strategy, rb.batch_size, rb.on_failure, rb.max_failures) == ("batch", 3, "stop", 2)
    assert rb.timeouts == Timeouts(60.0, 30.5)
    confirm = rb.before[0]
    assert confirm.name == "confirm" and confirm.args == PauseArgs("Go {waves}/{gateways}?")
    assert rb.wave[1].args == ApplyArgs(("keys", "bird"))
    assert rb.wave[1].name == "apply keys, bird"
    assert rb.wave[2].args == RotateKeysArgs(preshared=True)
    assert rb.wave[3].args == GateArgs(handshakes="fresh", timeout=45.0)
    assert rb.after[0].args == VerifyArgs("no-critical", 10.0)
    assert [s.where for s in rb.steps] == [
        "before[0]", "wave[0]", "wave[1]", "wave[2]", "wave[3]", "after[0]"
    ]  # fmt: skip


def test_timeout_for_resolves_defaults() -> None:
    rb = parse_runbook(
        MINIMAL.replace("wave:", "timeouts: {step: 50, gate: 20}\nbefore:\n  - pause: ok?\n"
                        "  - verify: {timeout: 7}\nwave:"),
        "rb.yaml",
    )  # fmt: skip
    pause, verify = rb.before
    apply, gate = rb.wave
    assert rb.timeout_for(pause) is None  # a person is waited for
    assert rb.timeout_for(verify) == 7.0
    assert rb.timeout_for(apply) == 50.0
    assert rb.timeout_for(gate) == 20.0


def test_pause_message_is_rendered() -> None:
    pause = PauseArgs("Wave {wave} of {waves} ({gateways} gateways): {hosts}? {{literal}}")
    text = pause.render(waves=2, gateways=6, wave=1, hosts=["V1-1", "V2-1"])
    assert text == "Wave 1 of 2 (6 gateways): V1-1, V2-1? {literal}"


def test_problems_name_file_step_field_and_line() -> None:
    text = MINIMAL.replace(
        "gate: {sessions: established}", "gate: {sessions: established, timeout: -1}"
    )
    assert _problems(text) == [
        "rb.yaml: wave[1] (gate): wave[1].gate.timeout: must be greater than 0, got -1 (line 5)"
    ]


def test_every_problem_is_reported_in_one_pass() -> None:
    problems = _problems(
        "name: X\nstrategy: none\nbefore:\n  - apply: {}\nwave:\n  - gate: {}\nafter: 3\n"
    )
    assert len(problems) == 6, problems
    assert all(p.startswith("rb.yaml: ") for p in problems)


@pytest.mark.parametrize("value", ["true", "1.0e400", ".nan", ".inf"])
def test_timeouts_must_be_finite_numbers(value: str) -> None:
    (problem,) = _problems(MINIMAL + f"timeouts: {{step: {value}}}\n")
    assert problem.startswith("rb.yaml: timeouts.step: must be")


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as caught:
        load_runbook(tmp_path / "nope.yaml")
    (problem,) = caught.value.problems
    assert problem.file == str(tmp_path / "nope.yaml")
    assert "cannot read the runbook" in problem.message


def test_empty_file() -> None:
    assert _problems("# only a comment\n") == ["rb.yaml: the runbook is empty"]


def test_check_targets_names_unknown_names_with_a_suggestion() -> None:
    rb = parse_runbook(MINIMAL + "targets: [V1-1, site2, V1-3]\n", "rb.yaml")
    known = {"V1-1", "V1-2", "site1", "site2"}
    problems = check_targets(rb, known)
    assert [(p.file, p.where, p.field) for p in problems] == [("rb.yaml", "", "targets[2]")]
    assert "no host or group named 'V1-3'" in problems[0].message
    assert "did you mean 'V1-1'?" in problems[0].message or "V1-2" in problems[0].message
    assert check_targets(parse_runbook(MINIMAL, "rb.yaml"), known) == []


@pytest.mark.parametrize("change", ["CHG-1", "INC0012345", "JIRA-42", "RFC#7/2", "a.b_c:d+e"])
def test_change_references_accepted(change: str) -> None:
    assert check_change(change) is None
    assert parse_runbook(MINIMAL + f"change: '{change}'\n", "rb.yaml").change == change


@pytest.mark.parametrize("change", ["", "CHG 1", "-x", "a;b", "x" * 65, "é"])
def test_change_references_refused(change: str) -> None:
    assert check_change(change)


def test_limit_targets() -> None:
    rb = parse_runbook(MINIMAL + "targets: limit\n", "rb.yaml")
    assert rb.targets is None and rb.limit_required
