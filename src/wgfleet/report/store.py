"""The reports directory: one directory per run, the ``latest`` link, retention (filesystem).

The only report module that touches the filesystem, with ``os`` and ``pathlib`` alone::

    reports/
      20261125T224501Z/      report.json report.md report.html junit.xml metrics.prom diff.txt
      20261125T224501Z-2/    a second run in the same second
      latest -> 20261125T224501Z-2

A run directory is created exclusively (``mkdir``), so concurrent or same-second runs
never share one; ``latest`` is replaced atomically (a new symlink renamed over it) after
the run's files are complete, so a reader following it never sees a half-written run.
Retention removes the oldest run directories beyond ``keep``: only directories whose
name is a run timestamp, only the files wgfleet writes in them, and a directory holding
anything else is left alone.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any

from wgfleet.errors import WgfleetError
from wgfleet.findings import VerifyRun
from wgfleet.report.bundle import (
    DIFF_FILE,
    JSON_FILE,
    METRICS_FILE,
    REPORT_FILES,
    render_reports,
)
from wgfleet.report.json_report import ReportFormatError, from_json

LATEST = "latest"
DEFAULT_KEEP = 100
RUN_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-([1-9]\d{0,5}))?$")
_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")
_MAX_SAME_SECOND = 10_000


class ReportStoreError(WgfleetError):
    """The reports directory or the textfile path cannot be written as needed."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


def run_name(started: float) -> str:
    """Return the directory name of a run started at ``started``: ``20261125T224501Z``."""
    moment = datetime.datetime.fromtimestamp(started, tz=datetime.UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _order(path: Path) -> tuple[str, int]:
    match = RUN_NAME.match(path.name)
    return (match.group(1), int(match.group(2) or 1)) if match else ("", 0)


def list_runs(reports_dir: Path) -> list[Path]:
    """Return the run directories of ``reports_dir``, oldest first (symlinks excluded)."""
    if not reports_dir.is_dir():
        return []
    runs = [
        entry
        for entry in reports_dir.iterdir()
        if RUN_NAME.match(entry.name) and entry.is_dir() and not entry.is_symlink()
    ]
    return sorted(runs, key=_order)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def write_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory + rename.

    Readers (node_exporter's textfile collector, a web server) see the old file or the
    new one, never a partial one. The temporary name starts with a dot and ends in
    ``.tmp``, so the collector (which reads ``*.prom``) ignores it.

    Raises:
        ReportStoreError: The directory is missing or not writable.
    """
    temp = _temp_name(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            temp.chmod(mode)  # O_CREAT's mode went through the umask
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ReportStoreError(path, f"cannot write ({exc.strerror or exc})") from None


def _make_run_dir(reports_dir: Path, started: float) -> Path:
    base = run_name(started)
    for counter in range(1, _MAX_SAME_SECOND):
        path = reports_dir / (base if counter == 1 else f"{base}-{counter}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ReportStoreError(path, f"cannot create ({exc.strerror or exc})") from None
        return path
    raise ReportStoreError(reports_dir, f"too many runs named {base}")


def previous_run(reports_dir: Path) -> Path | None:
    """Return the run ``latest`` points to, else the newest run directory, else None."""
    latest = reports_dir / LATEST
    if latest.is_symlink() and (latest / JSON_FILE).is_file():
        return latest.resolve()
    runs = [run for run in list_runs(reports_dir) if (run / JSON_FILE).is_file()]
    return runs[-1] if runs else None


def load_previous(reports_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """Return the previous run's JSON report and, when it cannot be used, why not."""
    path = previous_run(reports_dir)
    if path is None:
        return None, ""
    source = path / JSON_FILE
    try:
        return from_json(source.read_text(encoding="utf-8"), str(source)), ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{source}: cannot read ({exc})"
    except ReportFormatError as exc:
        return None, str(exc)


def _point_latest(reports_dir: Path, run_dir: Path) -> None:
    latest = reports_dir / LATEST
    temp = _temp_name(latest)
    try:
        temp.symlink_to(run_dir.name)  # relative: the reports directory may move
        temp.replace(latest)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ReportStoreError(
            latest, f"cannot point it at {run_dir.name} ({exc.strerror or exc}); "
            "it must be a symlink wgfleet manages, or absent"
        ) from None  # fmt: skip


def prune_runs(reports_dir: Path, keep: int, *, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Remove the oldest run directories beyond the ``keep`` newest.

    The protected directories count towards ``keep``: with ``keep=1`` only the run just
    written stays, even if a clock that went backwards gave an older run a later name.
    Only files wgfleet writes (the report files and its temporary files) are removed; a
    run directory holding anything else is left in place. Directories in ``protect`` and
    the one ``latest`` points to are never removed.

    Args:
        reports_dir: The reports directory.
        keep: How many run directories to keep (at least 1).
        protect: Run directories to keep whatever their age (the run just written).

    Returns:
        The run directories removed.

    Raises:
        ValueError: ``keep`` is below 1.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    runs = list_runs(reports_dir)
    latest = reports_dir / LATEST
    kept = {p.resolve() for p in protect}
    if latest.is_symlink():
        kept.add(latest.resolve())
    others = [run_dir for run_dir in runs if run_dir.resolve() not in kept]
    room = max(0, keep - (len(runs) - len(others)))  # the protected ones count as kept
    removed = []
    for run_dir in others[: max(0, len(others) - room)]:
        for entry in run_dir.iterdir():
            if (entry.name in REPORT_FILES or _TEMP.match(entry.name)) and (
                entry.is_symlink() or entry.is_file()
            ):
                entry.unlink(missing_ok=True)
        try:
            run_dir.rmdir()
        except OSError:
            continue  # something that is not ours is in it: leave it
        removed.append(run_dir)
    return removed


def write_run(
    run: VerifyRun,
    reports_dir: Path,
    *,
    keep: int | None = DEFAULT_KEEP,
    textfile: Path | None = None,
) -> Path:
    """Write every report of ``run`` into a new run directory and update ``latest``.

    Args:
        run: The verification run.
        reports_dir: The reports directory (created if missing).
        keep: Keep this many run directories (the new one included); None keeps all.
        textfile: Also write the metrics here, atomically (node_exporter's textfile
            collector directory + a ``*.prom`` name); the directory must exist.

    Returns:
        The new run directory.

    Raises:
        ReportStoreError: A directory or file cannot be written.
        ValueError: ``keep`` is below 1.
    """
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportStoreError(reports_dir, f"cannot create ({exc.strerror or exc})") from None
    previous, problem = load_previous(reports_dir)
    reports = render_reports(run, previous)
    if problem:
        reports[DIFF_FILE] = f"no diff: the previous report is unusable: {problem}\n"
    run_dir = _make_run_dir(reports_dir, run.started)
    for name, text in reports.items():
        write_atomic(run_dir / name, text)
    _point_latest(reports_dir, run_dir)
    if textfile is not None:
        write_atomic(textfile, reports[METRICS_FILE])
    if keep is not None:
        prune_runs(reports_dir, keep, protect=(run_dir,))
    return run_dir
