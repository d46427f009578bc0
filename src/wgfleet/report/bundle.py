"""Every report of one run, rendered together from one view (pure): file name -> text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wgfleet.findings import VerifyRun
from wgfleet.report.diff import diff_runs, render_diff
from wgfleet.report.html import render_html
from wgfleet.report.json_report import dump_document, to_json
from wgfleet.report.junit import render_junit
from wgfleet.report.markdown import render_markdown
from wgfleet.report.prometheus import render_metrics
from wgfleet.report.view import RunView

JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
JUNIT_FILE = "junit.xml"
METRICS_FILE = "metrics.prom"
DIFF_FILE = "diff.txt"
REPORT_FILES = (JSON_FILE, MARKDOWN_FILE, HTML_FILE, JUNIT_FILE, METRICS_FILE, DIFF_FILE)


def render_reports(run: VerifyRun, previous: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Render every report of a run.

    Args:
        run: The verification run.
        previous: The previous run's JSON report, for the diff; None when there is none.

    Returns:
        File name (one of :data:`REPORT_FILES`) -> content, in that order.
    """
    view = RunView(run)
    document = to_json(run, view)
    if previous is None:
        diff = render_diff([], since=None)
    else:
        since = str((previous.get("run") or {}).get("started", "?"))
        diff = render_diff(diff_runs(previous, document), since=since)
    return {
        JSON_FILE: dump_document(document),
        MARKDOWN_FILE: render_markdown(run, view=view),
        HTML_FILE: render_html(run, view=view),
        JUNIT_FILE: render_junit(run, view=view),
        METRICS_FILE: render_metrics(run, view=view),
        DIFF_FILE: diff,
    }
