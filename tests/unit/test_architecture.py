"""The architecture holds: the pure core never imports the shell, and the wheel is whole."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "wgfleet"
# The pure core: no SSH, no Nornir connections, no lab, no CLI.
CORE = (
    "model",
    "errors",
    "plan",
    "allocations",
    "render",
    "paths",
    "commands",
    "facts",
    "converge",
    "observation",
    "findings",
    "psk",
    "fallback",
)
CORE_PREFIXES = ("inventory", "parsers", "checks", "report")
FORBIDDEN = ("paramiko", "wgfleet.connection", "wgfleet.tasks", "wgfleet.cli", "wgfleet.lab",
             "wgfleet.runbook", "subprocess", "socket")  # fmt: skip


def _core_modules() -> list[Path]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        if top in CORE or top.startswith(CORE_PREFIXES):
            found.append(path)
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.name)
def test_core_module_imports_no_shell(path: Path) -> None:
    bad = {name for name in _imports(path) if name.startswith(FORBIDDEN)}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_core_is_not_empty() -> None:
    assert len(_core_modules()) >= 2


def test_wheel_ships_tasks_templates_and_lab(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("wgfleet-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "wgfleet/py.typed" in names
    assert "wgfleet/lab/manager.py" in names
    assert "wgfleet/tasks/__init__.py" in names
    templates = [n for n in names if n.startswith("wgfleet/templates/") and n.endswith(".j2")]
    assert templates, sorted(names)
