"""The reports directory: run directories, the latest link, retention, textfile metrics."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.unit.test_report_runs import NOW, degraded_run, healthy_run
from wgfleet.report import (
    LATEST,
    REPORT_FILES,
    ReportStoreError,
    list_runs,
    prune_runs,
    render_metrics,
    write_atomic,
    write_run,
)
from wgfleet.report.store import run_name


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_run_directory_layout(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run_dir = write_run(healthy_run(), reports)
    assert run_dir == reports / "20261125T224500Z"
    assert _names(run_dir) == sorted(REPORT_FILES)
    assert sorted(REPORT_FILES) == sorted(
        ["report.json", "report.md", "report.html", "junit.xml", "metrics.prom", "diff.txt"]
    )
    latest = reports / LATEST
    assert latest.is_symlink() and os.readlink(latest) == "20261125T224500Z", "relative link"
    assert json.loads((latest / "report.json").read_text())["severity"] == "ok"
    assert (run_dir / "diff.txt").read_text() == "no previous run to compare with\n"
    assert _names(reports) == ["20261125T224500Z", "latest"], "no temporary file left"


def test_run_name_is_utc() -> None:
    assert run_name(NOW) == "20261125T224500Z"
    assert run_name(NOW + 59.9) == "20261125T224559Z"


def test_same_second_runs_do_not_collide(tmp_path: Path) -> None:
    dirs = [write_run(healthy_run(NOW + 0.1 * i), tmp_path) for i in range(3)]
    assert [d.name for d in dirs] == [
        "20261125T224500Z", "20261125T224500Z-2", "20261125T224500Z-3",
    ]  # fmt: skip
    assert os.readlink(tmp_path / LATEST) == "20261125T224500Z-3"
    assert [p.name for p in list_runs(tmp_path)] == [d.name for d in dirs]


def test_diff_against_the_previous_run(tmp_path: Path) -> None:
    write_run(healthy_run(), tmp_path)
    second = write_run(healthy_run(NOW + 60, jitter=5), tmp_path)
    assert (second / "diff.txt").read_text() == (
        "no changes since the run of 2026-11-25T22:45:00Z\n"
    )
    third = write_run(degraded_run(NOW + 120), tmp_path)
    diff = (third / "diff.txt").read_text()
    assert diff.startswith("16 changes since the run of 2026-11-25T22:46:00Z\n")
    assert "! finding V1-1 tunnel.exists wg5: ok -> critical" in diff


def test_unusable_previous_report_does_not_stop_the_run(tmp_path: Path) -> None:
    first = write_run(healthy_run(), tmp_path)
    (first / "report.json").write_text('{"schema": "wgfleet.verify/9"}')
    second = write_run(healthy_run(NOW + 60), tmp_path)
    diff = (second / "diff.txt").read_text()
    assert diff.startswith("no diff: the previous report is unusable: ")
    assert "wgfleet.verify/9" in diff


def test_previous_run_without_latest_link(tmp_path: Path) -> None:
    write_run(healthy_run(), tmp_path)
    (tmp_path / LATEST).unlink()
    second = write_run(degraded_run(NOW + 60), tmp_path)
    assert "since the run of 2026-11-25T22:45:00Z" in (second / "diff.txt").read_text()


def test_retention_keeps_the_newest_and_nothing_else_is_touched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "20201125T224500Z").mkdir()  # nested: not a run of this directory
    lookalike = tmp_path / "2026-11-25"
    lookalike.mkdir()
    old_link = tmp_path / "20191125T224500Z"
    old_link.symlink_to(archive)  # a run name, but a symlink: never followed or removed
    dirs = [write_run(healthy_run(NOW + 60 * i), tmp_path, keep=3) for i in range(5)]
    assert [p.name for p in list_runs(tmp_path)] == [d.name for d in dirs[2:]]
    assert _names(tmp_path) == sorted(
        ["notes.txt", "archive", "2026-11-25", "20191125T224500Z", LATEST]
        + [d.name for d in dirs[2:]]
    )
    assert notes.read_text() == "mine"
    assert (archive / "20201125T224500Z").is_dir()
    assert os.readlink(tmp_path / LATEST) == dirs[-1].name


def test_retention_leaves_a_run_directory_holding_foreign_files(tmp_path: Path) -> None:
    first = write_run(healthy_run(), tmp_path)
    (first / "my-analysis.txt").write_text("keep me")
    for i in range(1, 4):
        write_run(healthy_run(NOW + 60 * i), tmp_path, keep=1)
    assert first.is_dir()
    assert _names(first) == ["my-analysis.txt"], "wgfleet's own files went, the user's stayed"
    assert len(list_runs(tmp_path)) == 2


def test_the_new_run_is_kept_even_when_the_clock_went_back(tmp_path: Path) -> None:
    write_run(healthy_run(NOW + 600), tmp_path)
    older = write_run(healthy_run(NOW), tmp_path, keep=1)
    assert list_runs(tmp_path) == [older]
    assert os.readlink(tmp_path / LATEST) == older.name


def test_prune_never_removes_what_latest_points_to(tmp_path: Path) -> None:
    runs = [write_run(healthy_run(NOW + 60 * i), tmp_path, keep=None) for i in range(3)]
    (tmp_path / LATEST).unlink()
    (tmp_path / LATEST).symlink_to(runs[0].name)
    assert prune_runs(tmp_path, 2) == [runs[1]]
    assert list_runs(tmp_path) == [runs[0], runs[2]]


def test_keep_none_keeps_everything_and_keep_zero_is_refused(tmp_path: Path) -> None:
    for i in range(4):
        write_run(healthy_run(NOW + i), tmp_path, keep=None)
    assert len(list_runs(tmp_path)) == 4
    with pytest.raises(ValueError, match="keep must be at least 1"):
        write_run(healthy_run(), tmp_path, keep=0)


def test_textfile_metrics_written_atomically(tmp_path: Path) -> None:
    collector = tmp_path / "textfile_collector"
    collector.mkdir()
    target = collector / "wgfleet.prom"
    target.write_text("old\n")
    run_dir = write_run(degraded_run(), tmp_path / "reports", textfile=target)
    assert target.read_text() == (run_dir / "metrics.prom").read_text()
    assert target.read_text() == render_metrics(degraded_run())
    assert stat.S_IMODE(target.stat().st_mode) == 0o644, "node_exporter runs as another user"
    assert _names(collector) == ["wgfleet.prom"], "no temporary file left"


def test_write_atomic_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ReportStoreError, match="cannot write") as caught:
        write_atomic(tmp_path / "missing" / "wgfleet.prom", "x\n")
    assert caught.value.path == tmp_path / "missing" / "wgfleet.prom"
    assert _names(tmp_path) == []


def test_latest_that_is_not_a_symlink_is_an_error(tmp_path: Path) -> None:
    (tmp_path / LATEST).mkdir()
    (tmp_path / LATEST / "precious").write_text("x")
    with pytest.raises(ReportStoreError, match="symlink wgfleet manages"):
        write_run(healthy_run(), tmp_path)
    assert (tmp_path / LATEST / "precious").read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_reports_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReportStoreError, match="cannot create"):
        write_run(healthy_run(), blocker / "reports")
