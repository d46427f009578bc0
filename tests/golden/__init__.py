"""Golden files and their checker; ``WGFLEET_UPDATE_GOLDEN=1`` rewrites them from the code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

GOLDEN = Path(__file__).parent
UPDATE = os.environ.get("WGFLEET_UPDATE_GOLDEN") == "1"


def check_tree(name: str, files: Mapping[str, str]) -> None:
    """Compare ``files`` (relative path → text) with the golden tree ``GOLDEN/name``.

    Every file must match and no golden file may be left over. With
    ``WGFLEET_UPDATE_GOLDEN=1`` the tree is rewritten instead (stale files removed): review
    the diff with ``git diff tests/golden`` before committing it.
    """
    root = GOLDEN / name
    existing = (
        {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else set()
    )
    if UPDATE:
        for stale in existing - set(files):
            (root / stale).unlink()
        for relative, text in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return
    hint = "run with WGFLEET_UPDATE_GOLDEN=1 to accept, then review `git diff tests/golden`"
    missing = sorted(set(files) - existing)
    stale = sorted(existing - set(files))
    assert not missing, f"{name}: no golden file for {missing}; {hint}"
    assert not stale, f"{name}: golden files no longer produced: {stale}; {hint}"
    for relative, text in sorted(files.items()):
        expected = (root / relative).read_text(encoding="utf-8")
        assert text == expected, f"{name}/{relative} differs from the golden file; {hint}"


def check_file(relative: str, text: str) -> None:
    """Compare one text with the golden file ``GOLDEN/relative`` (same update switch)."""
    target = GOLDEN / relative
    if UPDATE:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return
    assert target.exists(), f"no golden file {relative}; run with WGFLEET_UPDATE_GOLDEN=1"
    expected = target.read_text(encoding="utf-8")
    assert text == expected, (
        f"{relative} differs from the golden file (WGFLEET_UPDATE_GOLDEN=1 to accept)"
    )
