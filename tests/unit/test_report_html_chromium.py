"""The HTML report in a real browser: Debian's headless Chromium renders the matrix.

The page is written for a degraded run, rendered by ``chromium --headless`` into a
screenshot and a DOM dump. The screenshot must be a PNG of the window size that shows
ok and warning cells side by side (decoded here with zlib, no imaging library); the DOM
must hold the matrix table with a ``data-severity`` on every cell. Where Chromium is
missing the test skips on a developer machine and FAILS under CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.unit.test_report_runs import degraded_run
from wgfleet.report import render_html
from wgfleet.report.svg import COLORS

WIDTH, HEIGHT = 1280, 1024
TIMEOUT = 120


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        message = "chromium is not installed (apt-get install chromium; `make deps` does it)"
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run under CI: {message}", pytrace=False)
        pytest.skip(message)
    return found


def _run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; kill its whole process group on timeout."""
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--force-device-scale-factor=1", f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}", *args,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {TIMEOUT} s: {' '.join(command)}")
    assert process.returncode == 0, f"chromium failed ({process.returncode}): {err[-2000:]}"
    return out


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Decode an 8-bit RGB/RGBA PNG: width, height, rows of raw pixels, bytes per pixel."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        position += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
            else:
                assert kind == 0, f"unknown PNG filter {kind}"
        rows.append(bytes(line))
        previous = line
    return width, height, rows, bpp


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _histograms(rows: list[bytes], bpp: int) -> list[Counter[bytes]]:
    """Per row, how many pixels of each RGB value."""
    return [Counter(row[x : x + 3] for x in range(0, len(row), bpp)) for row in rows]


def _rows_with(histograms: list[Counter[bytes]], color: str) -> dict[int, int]:
    """Rows (y) holding pixels of ``color`` (+-2 per channel), with how many."""
    target = _rgb(color)
    found: dict[int, int] = {}
    for y, histogram in enumerate(histograms):
        count = sum(
            n for rgb, n in histogram.items() if all(abs(rgb[c] - target[c]) <= 2 for c in range(3))
        )
        if count:
            found[y] = count
    return found


class _Matrix(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.inside = attributes.get("id") == "site-matrix"
        elif tag == "td" and self.inside:
            self.cells.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False


def test_chromium_renders_the_matrix(tmp_path: Path) -> None:
    binary = _chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(degraded_run()), encoding="utf-8")
    screenshot = tmp_path / "report.png"

    _run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={screenshot}", page.as_uri())
    print(f"screenshot of the HTML report: {screenshot}")
    data = screenshot.read_bytes()
    width, height, rows, bpp = _png_pixels(data)
    assert (width, height) == (WIDTH, HEIGHT)

    histograms = _histograms(rows, bpp)
    ok_rows = _rows_with(histograms, COLORS["ok"])
    warning_rows = _rows_with(histograms, COLORS["warning"])
    critical_rows = _rows_with(histograms, COLORS["critical"])
    assert sum(ok_rows.values()) > 5000, "the ok cells are painted"
    assert sum(warning_rows.values()) > 5000, "the warning cells are painted"
    assert critical_rows and min(critical_rows) == 0, "the status banner is at the top, red"
    # Only the matrix puts ok and warning cells side by side: site1's row (ok, WARN).
    side_by_side = [y for y in ok_rows if y in warning_rows and ok_rows[y] > 100]
    assert side_by_side, "no row shows an ok cell next to a warning cell"
    assert min(side_by_side) < HEIGHT // 2, "the matrix is near the top of the page"

    dom = _run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    matrix = _Matrix()
    matrix.feed(dom)
    assert len(matrix.cells) == 9
    assert [c["data-severity"] for c in matrix.cells] == [
        "none", "ok", "warning", "ok", "none", "ok", "warning", "ok", "none",
    ]  # fmt: skip
    assert "<script" not in dom.lower(), "the hostile message stayed text"
