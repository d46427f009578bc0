"""Verification reports: pure writers from a VerifyRun to text, and the reports directory.

Every writer is a pure function of a :class:`~wgfleet.findings.VerifyRun` (the optional
``view`` argument only saves recomputing the shared :class:`RunView`); only
:mod:`wgfleet.report.store` touches the filesystem.
"""

from __future__ import annotations

from wgfleet.report.bundle import REPORT_FILES, render_reports
from wgfleet.report.diff import Change, diff_runs, render_diff
from wgfleet.report.html import render_html
from wgfleet.report.json_report import ReportFormatError, dumps, from_json, to_json
from wgfleet.report.junit import render_junit
from wgfleet.report.markdown import render_markdown
from wgfleet.report.prometheus import render_metrics
from wgfleet.report.store import (
    DEFAULT_KEEP,
    LATEST,
    ReportStoreError,
    list_runs,
    prune_runs,
    write_atomic,
    write_run,
)
from wgfleet.report.svg import render_topology
from wgfleet.report.terminal import render_quiet, render_terminal, summary_line
from wgfleet.report.view import SCHEMA, RunView

__all__ = [
    "DEFAULT_KEEP",
    "LATEST",
    "REPORT_FILES",
    "SCHEMA",
    "Change",
    "ReportFormatError",
    "ReportStoreError",
    "RunView",
    "diff_runs",
    "dumps",
    "from_json",
    "list_runs",
    "prune_runs",
    "render_diff",
    "render_html",
    "render_junit",
    "render_markdown",
    "render_metrics",
    "render_quiet",
    "render_reports",
    "render_terminal",
    "render_topology",
    "summary_line",
    "to_json",
    "write_atomic",
    "write_run",
]
