"""The change record: journal on disk, redaction, resume point and the Markdown summary."""

from __future__ import annotations

import ast
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from wgfleet.errors import BadInputError
from wgfleet.runbook import record
from wgfleet.runbook.record import (
    Journal,
    ResumePoint,
    SecretInRecordError,
    read_journal,
    record_directory,
    redact,
    resume_point,
)
from wgfleet.runbook.summary import render_summary

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "wgfleet" / "runbook"
T0 = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
WAVES = [["V1-1", "V2-1", "V3-1"], ["V1-2", "V2-2", "V3-2"]]
DIFF = "--- a/etc/bird/bird.conf\n+++ b/etc/bird/bird.conf\n@@ -1 +1 @@\n-hold 6;\n+hold 9;\n"
WARNING = {"check": "tunnel.handshake", "severity": "warning", "gateway": "V1-2",
           "object": "wg3", "message": "latest handshake 200 s ago"}  # fmt: skip
CRITICAL = {"check": "gateway.reachable", "severity": "critical", "gateway": "V2-2",
            "object": "V2-2", "message": "unreachable"}  # fmt: skip


def clock(step: float = 5.0) -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: T0 + timedelta(seconds=step * next(ticks))


def ev(event: str, **fields: Any) -> dict[str, Any]:
    return {"ts": "2026-11-26T02:00:00.000Z", "event": event, **fields}


START = ev(
    "run-start",
    runbook="rollout",
    file="runbooks/rollout.yaml",
    change="CHG-1",
    owner="alice@ctl1",
    check=False,
    strategy="one-gateway-per-site",
    waves=WAVES,
)


def wave(number: int, status: str | None = "ok", **host: Any) -> list[dict[str, Any]]:
    gateways = WAVES[number - 1]
    events = [ev("wave-start", wave=number, gateways=gateways)]
    events += [
        ev("host", wave=number, step="wave[0] (apply)", gateway=g, status="changed",
           seconds=2.5, diff=DIFF, **host)
        for g in gateways
    ]  # fmt: skip
    if status is not None:
        events.append(ev("wave-end", wave=number, status=status))
    return events


# --- the journal on disk ---------------------------------------------------------------


def test_journal_appends_one_json_object_per_line_with_utc_time(tmp_path: Path) -> None:
    path = tmp_path / "changes" / "20261126T020000Z-rollout" / "journal.jsonl"
    journal = Journal(path, clock())
    written = journal.write("run-start", runbook="rollout", waves=WAVES, path=Path("/x"))
    journal.write("wave-start", wave=1, gateways=WAVES[0])
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == written
    assert written["ts"] == "2026-11-26T02:00:00.000Z"
    assert written["path"] == "/x"  # anything else becomes its str
    assert [e["event"] for e in read_journal(path)] == ["run-start", "wave-start"]
    assert read_journal(path)[1]["ts"] == "2026-11-26T02:00:05.000Z"


def test_journal_time_is_utc_whatever_the_clock_zone(tmp_path: Path) -> None:
    local = datetime(2026, 11, 26, 3, 0, tzinfo=timezone(timedelta(hours=1)))
    written = Journal(tmp_path / "j.jsonl", lambda: local).write("run-end", result="success")
    assert written["ts"] == "2026-11-26T02:00:00.000Z"


def test_journal_fsyncs_every_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = record.os.fsync
    monkeypatch.setattr(record.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    journal = Journal(tmp_path / "j.jsonl", clock())
    created = len(synced)  # the new file's directory entry
    journal.write("a")
    journal.write("b")
    assert created == 1 and len(synced) == 3


def test_journal_reopens_an_existing_journal_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    Journal(path, clock()).write("run-start")
    Journal(path, clock()).write("run-start", resumed_from=2)
    assert [e.get("resumed_from") for e in read_journal(path)] == [None, 2]


def test_read_journal_leaves_out_a_last_line_cut_off_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "run-start"}\n{"event": "wave-st')
    assert read_journal(path) == [{"event": "run-start"}]


def test_read_journal_refuses_a_broken_line_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "run-start"}\nnot json\n{"event": "run-end"}\n')
    with pytest.raises(BadInputError) as caught:
        read_journal(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.where) == (str(path), "line 2")


def test_record_directory_is_utc_time_and_name() -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    assert record_directory(Path("changes"), "rollout", local) == Path(
        "changes/20261126T020000Z-rollout"
    )


# --- no secret ever --------------------------------------------------------------------


def test_redact_drops_private_and_preshared_key_fields_at_any_depth() -> None:
    value = {
        "gateway": "V1-1",
        "private_key": "x", "PrivateKey": "x", "wg_private-key_file": "x", "privkey": "kept",
        "preshared": "x", "PresharedKey": "x",
        "public_key": "kept",
        "hosts": [{"peer": {"preshared_key": "x", "ok": 1}}, ("a", "b")],
    }  # fmt: skip
    assert redact(value) == {
        "gateway": "V1-1",
        "privkey": "kept",
        "public_key": "kept",
        "hosts": [{"peer": {"ok": 1}}, ["a", "b"]],
    }


@pytest.mark.parametrize(
    "text",
    [
        "[Interface]\nPrivateKey = aGVsbG8=\n",
        "+PrivateKey = aGVsbG8=",
        "  presharedkey=abc",
        "@@ -1 +1 @@\n-PresharedKey = abc\n",
    ],
)
def test_redact_refuses_a_key_line_and_never_shows_it(text: str) -> None:
    with pytest.raises(SecretInRecordError) as caught:
        redact({"hosts": [{"diff": text}]})
    assert "hosts[0].diff" in str(caught.value)
    assert "aGVsbG8" not in str(caught.value) and "abc" not in str(caught.value)


def test_a_secret_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, clock())
    journal.write("host", gateway="V1-1", private_key="c2VjcmV0")
    with pytest.raises(SecretInRecordError):
        journal.write("host", gateway="V1-1", diff="+PrivateKey = c2VjcmV0\n")
    assert "c2VjcmV0" not in path.read_text()
    assert len(read_journal(path)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "printf '[Interface]\\nPrivateKey = '; cat /etc/wireguard/private.key",
        "wg set wg3 private-key /etc/wireguard/private.key",
        "# the PrivateKey = line is built on the gateway",
    ],
)
def test_redact_lets_commands_and_prose_about_keys_through(text: str) -> None:
    assert redact({"command": text}) == {"command": text}


# --- where to resume -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], ResumePoint(0, "not-started")),
        ([START], ResumePoint(0, "before")),
        ([START, ev("verify", phase="before", status="failed"),
          ev("run-end", result="failed")], ResumePoint(0, "before")),
        ([START, *wave(1, status=None)], ResumePoint(0, "in-wave")),
        ([START, *wave(1)], ResumePoint(1, "between-waves")),
        ([START, *wave(1), *wave(2, status=None)], ResumePoint(1, "in-wave")),
        ([START, *wave(1), *wave(2, status="rolled-back"),
          ev("run-end", result="rolled-back")], ResumePoint(1, "rolled-back")),
        ([START, *wave(1, status="failed"), ev("run-end", result="failed")],
         ResumePoint(0, "failed")),
        ([START, *wave(1), *wave(2)], ResumePoint(2, "after")),
        ([START, *wave(1), *wave(2), ev("run-end", result="success")], ResumePoint(2, "finished")),
        # A resumed run appends to the same journal and picks up from its own last event.
        ([START, *wave(1), *wave(2, status=None), ev("run-start", resumed_from=2, waves=WAVES),
          *wave(2)], ResumePoint(2, "after")),
        ([START, *wave(1), ev("run-end", result="interrupted")], ResumePoint(1, "between-waves")),
    ],
)  # fmt: skip
def test_resume_point(events: list[dict[str, Any]], expected: ResumePoint) -> None:
    assert resume_point(events) == expected
    index, state = resume_point(events)  # a plain tuple too
    assert (index, state) == tuple(expected)


# --- the summary -----------------------------------------------------------------------


def journal_of(*events: dict[str, Any]) -> list[dict[str, Any]]:
    stamps = clock(7.0)
    return [{**e, "ts": stamps().isoformat().replace("+00:00", "Z")} for e in events]


def test_summary_of_a_successful_run() -> None:
    events = journal_of(
        START,
        ev("verify", phase="before", step="before[0] (verify)", name="pre-check",
           require="no-critical", status="passed", seconds=4.2, findings=[WARNING]),
        ev("pause", phase="before", step="before[1] (pause)", message="Go?", answer="--yes"),
        *wave(1),
        ev("gate", wave=1, step="wave[1] (gate)", name="gate sessions, ecmp", status="passed",
           seconds=12.3),
        *wave(2),
        ev("gate", wave=2, step="wave[1] (gate)", name="gate sessions, ecmp", status="passed",
           seconds=75),
        ev("verify", phase="after", step="after[0] (verify)", name="post-check",
           require="healthy", status="passed", seconds=3, findings=[]),
        ev("run-end", result="success"),
    )  # fmt: skip
    md = render_summary(events)
    assert md.startswith("# Change record: rollout (CHG-1)\n")
    for line in [
        "| Runbook | rollout (`runbooks/rollout.yaml`) |",
        "| Owner | alice@ctl1 |",
        "| Started | 2026-11-26 02:00:00 UTC |",
        "| Ended | 2026-11-26 02:01:52 UTC (after 1 min 52 s) |",
        "| Result | **success** |",
        "| Waves | 2 (6 gateways, strategy one-gateway-per-site) |",
        "- before[0] (verify) pre-check: **passed** (4.2 s) — 1 finding, require no-critical",
        "- before[1] (pause) pause: **--yes** — Go?",
        "## Wave 1: V1-1, V2-1, V3-1 (done)",
        "| Gateway | wave[0] (apply) |",
        "| V2-1 | changed (2.5 s) |",
        "| wave[1] (gate) gate sessions, ecmp | **passed** | 12.3 s |  |",
        "| wave[1] (gate) gate sessions, ecmp | **passed** | 1 min 15 s |  |",
        "### Diff: V1-1, V2-1, V3-1, wave[0] (apply)",
        "## Verification: first and last",
        "| warning | V1-2 | wg3 | latest handshake 200 s ago |",
    ]:
        assert line in md.splitlines(), f"{line!r} not in\n{md}"
    assert "```diff\n" + DIFF + "```" in md
    assert "### Disappeared" in md and "### Appeared" not in md
    assert "Stopped" not in md


def test_summary_of_a_rolled_back_run_says_where_it_stopped_and_what_was_undone() -> None:
    events = journal_of(
        START,
        *wave(1),
        ev("wave-start", wave=2, gateways=WAVES[1]),
        ev("host", wave=2, step="wave[0] (apply)", gateway="V1-2", status="changed", diff="+a\n"),
        ev("host", wave=2, step="wave[0] (apply)", gateway="V3-2", status="ok"),
        ev("gate", wave=2, step="wave[1] (gate)", name="gate sessions", status="failed",
           seconds=120, message="IBGP_V2_2 on V1-1 is Active | not Established"),
        ev("rollback", wave=2, gateway="V1-2", status="ok",
           undone=["restored /etc/bird/bird.conf", "bird: configure undo"]),
        ev("rollback", wave=2, gateway="V3-2", status="failed", undone=[], message="timed out"),
        ev("wave-end", wave=2, status="rolled-back"),
        ev("run-end", result="rolled-back"),
    )  # fmt: skip
    md = render_summary(events)
    assert "| Result | **rolled back** |" in md
    assert (
        "**Stopped at wave 2, step wave[1] (gate)**: IBGP_V2_2 on V1-1 is Active | not "
        "Established.\n\nUndone: V1-2: restored /etc/bird/bird.conf, bird: configure undo; "
        "V3-2: nothing to undo (ROLLBACK FAILED: timed out)."
    ) in md
    assert "## Wave 2: V1-2, V2-2, V3-2 (rolled back)" in md
    assert "| V2-2 | not run |" in md  # planned in the wave, never reached
    assert "IBGP_V2_2 on V1-1 is Active \\| not Established" in md  # a pipe inside a cell
    assert "- V3-2: **failed**, undone: nothing (timed out)" in md


def test_summary_of_an_interrupted_run() -> None:
    events = journal_of(START, *wave(1), *wave(2, status=None))
    md = render_summary(events)
    assert "| Result | **interrupted** |" in md
    assert "| Ended | never (the journal stops at 2026-11-26 02:01:03 UTC) |" in md
    assert "**Stopped at wave 2, step wave[0] (apply)**." in md
    assert "Undone: nothing yet; resume the run or roll it back." in md
    assert "## Wave 2: V1-2, V2-2, V3-2 (did not finish)" in md


def test_summary_uses_the_engines_stopped_at_and_a_longer_fence_for_backticks() -> None:
    diff = "+# ```` four backticks\n"
    events = journal_of(
        START,
        *wave(1),
        ev("host", wave=1, step="wave[0] (apply)", gateway="V1-1", status="failed",
           message="bird -p: syntax error", diff=diff),
        ev("run-end", result="failed", message="bird -p refused the config",
           stopped_at={"wave": 1, "step": "wave[0] (apply)"}),
    )  # fmt: skip
    md = render_summary(events)
    assert "**Stopped at wave 1, step wave[0] (apply)**: bird -p refused the config." in md
    assert "Undone: nothing." in md
    assert "`````diff\n" + diff + "`````" in md
    # Both of V1-1's results in that step: the worst status, the time, every message.
    assert "| V1-1 | FAILED (2.5 s): bird -p: syntax error |" in md


def test_summary_of_a_check_run_and_of_a_run_stopped_before_the_waves() -> None:
    events = journal_of(
        {**START, "check": True, "change": None},
        ev("pause", phase="before", step="before[1] (pause)", message="Go?", answer="refused"),
        ev("run-end", result="failed", message="no terminal to ask and no --yes"),
    )
    md = render_summary(events)
    assert md.startswith("# Change record: rollout\n")
    assert "| Change | none given |" in md
    assert "| Result | **failed** (check: nothing was changed) |" in md
    assert "**Stopped at before the first wave, step before[1] (pause)**" in md


def test_verification_difference_shows_appeared_disappeared_and_changed() -> None:
    events = journal_of(
        START,
        ev("verify", phase="before", step="before[0] (verify)", findings=[WARNING, CRITICAL]),
        ev("verify", phase="after", step="after[0] (verify)",
           findings=[{**WARNING, "severity": "critical"},
                     {**CRITICAL, "gateway": "V3-1", "object": "V3-1"},
                     {**CRITICAL, "severity": "ok", "object": "ignored"}]),
        ev("run-end", result="failed"),
    )  # fmt: skip
    md = render_summary(events)
    section = md.split("## Verification: first and last", 1)[1]
    assert "From before[0] (verify) (2 findings) to after[0] (verify) (2 findings)." in section
    appeared = section.split("### Appeared", 1)[1].split("###", 1)[0]
    assert "| critical | V3-1 | V3-1 | unreachable |" in appeared
    disappeared = section.split("### Disappeared", 1)[1].split("###", 1)[0]
    assert "| critical | V2-2 | V2-2 | unreachable |" in disappeared
    assert "| warning → critical | V1-2 | wg3 | latest handshake 200 s ago |" in section
    assert "ignored" not in md


def test_same_findings_before_and_after_is_no_difference() -> None:
    events = journal_of(START, ev("verify", findings=[WARNING]), ev("verify", findings=[WARNING]))
    assert "No difference." in render_summary(events)


def test_summary_of_the_journal_written_to_disk(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", clock())
    for event in [START, *wave(1), ev("run-end", result="success")]:
        fields = {k: v for k, v in event.items() if k not in ("ts", "event")}
        journal.write(event["event"], **fields)
    md = render_summary(read_journal(journal.path))
    assert "| Result | **success** |" in md and "## Wave 1" in md


# --- purity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    ["__init__", "schema", "schema_values", "waves", "record", "summary", "gates", "describe"],
)
def test_the_runbook_core_is_pure(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = ("subprocess", "socket", "paramiko", "nornir", "wgfleet.connection",
                 "wgfleet.tasks", "wgfleet.cli", "wgfleet.lab", "wgfleet.fleet",
                 "wgfleet.runbook.engine", "shutil", "tempfile")  # fmt: skip
    assert not {name for name in imported if name.startswith(forbidden)}


def test_a_step_event_after_its_verify_or_pause_event_is_one_line() -> None:
    events = journal_of(
        START,
        ev("verify", phase="before", step="before[0] (verify)", require="any", status="passed",
           findings=[], wave=None),
        ev("step", phase="before", step="before[0] (verify)", name="pre-check", status="ok",
           seconds=3.5, wave=None),
        ev("wave-start", wave=1, gateways=WAVES[0]),
        ev("pause", phase="wave", step="wave[0] (pause)", message="Decommission V1-1?",
           answer="yes", wave=1),
        ev("step", phase="wave", step="wave[0] (pause)", name="pause", status="ok", wave=1),
        ev("wave-end", wave=1, status="ok"),
        ev("step", phase="after", step="after[0] (verify)", name="post", status="failed",
           seconds=1, wave=None, message="verification failed"),
        ev("run-end", result="failed"),
    )  # fmt: skip
    lines = render_summary(events).splitlines()
    assert "- before[0] (verify) pre-check: **passed** (3.5 s) — 0 findings, require any" in lines
    assert sum("before[0]" in line for line in lines) == 1
    assert "- wave[0] (pause) pause: **yes** — Decommission V1-1?" in lines
    assert "- after[0] (verify) post: **failed** (1.0 s) — verification failed" in lines


def test_a_step_reporting_several_results_shows_them_all_worst_status_first() -> None:
    events = journal_of(
        START,
        ev("wave-start", wave=1, gateways=["V1-1"]),
        ev("host", wave=1, step="wave[0] (rotate-keys)", gateway="V1-1", status="changed",
           message="new key"),
        ev("host", wave=1, step="wave[0] (rotate-keys)", gateway="V1-1", status="changed",
           message="new preshared keys: wg3, wg4"),
        ev("host", wave=1, step="wave[0] (rotate-keys)", gateway="V1-1", status="changed",
           seconds=0.9, message="4 tunnels, 8 BGP sessions"),
        ev("wave-end", wave=1, status="ok"),
        ev("run-end", result="success", message=""),
    )  # fmt: skip
    md = render_summary(events)
    assert (
        "| V1-1 | changed (0.9 s): new key; new preshared keys: wg3, wg4; 4 tunnels, "
        "8 BGP sessions |"
    ) in md


def test_the_keys_a_wave_replaced_come_from_its_latest_attempt() -> None:
    from wgfleet.runbook.engine import journaled_rotation

    events = [
        {"event": "wave-start", "wave": 1},
        {"event": "rotated", "wave": 1, "keys": ["V1-1", "V2-1"]},
        {"event": "rotated", "wave": 1, "psk": {"V1-1": ["wg3"], "V2-1": ["wg1"]}},
        {"event": "wave-start", "wave": 2},
        {"event": "rotated", "wave": 2, "keys": ["V1-2"]},
    ]
    assert journaled_rotation(events, 1) == (
        ["V1-1", "V2-1"],
        {"V1-1": ["wg3"], "V2-1": ["wg1"]},
    )
    assert journaled_rotation(events, 2) == (["V1-2"], {})
    assert journaled_rotation(events, 3) == ([], {})
    # Resumed: the wave starts over, and what its first attempt replaced was put back.
    resumed = [*events, {"event": "wave-start", "wave": 1}]
    assert journaled_rotation(resumed, 1) == ([], {})
