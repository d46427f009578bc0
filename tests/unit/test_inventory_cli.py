"""Tests of ``wgfleet inventory check``: summary, exit codes, every problem printed, help."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import yaml

from wgfleet.cli import build_parser, main
from wgfleet.errors import ExitStatus

SHIPPED = Path(__file__).parents[2] / "inventory"
REPO = SHIPPED.parent


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(SHIPPED, target)
    return target


def test_check_prints_a_one_line_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "check", "--inventory", str(SHIPPED)]) == ExitStatus.OK
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"inventory OK ({SHIPPED}): 3 sites, 6 gateways, full-mesh topology, 12 tunnels"
    ]
    assert err == ""


def test_check_defaults_to_the_inventory_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["inventory", "check"]) == 0
    assert "inventory OK (inventory): 3 sites" in capsys.readouterr().out


def test_check_summarises_hub_and_spoke(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = yaml.safe_load((inventory / "groups.yaml").read_text())
    groups["site1"]["data"]["site"]["role"] = "hub"
    (inventory / "groups.yaml").write_text(yaml.safe_dump(groups))
    defaults = yaml.safe_load((inventory / "defaults.yaml").read_text())
    defaults["data"]["fleet"]["topology"] = "hub-and-spoke"
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))

    assert main(["inventory", "check", "-i", str(inventory)]) == 0
    assert "hub-and-spoke (1 hub site) topology, 8 tunnels" in capsys.readouterr().out


def test_bad_inventory_prints_every_problem_and_exits_64(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    hosts["V1-2"]["data"]["gateway"]["endpiont"] = hosts["V1-2"]["data"]["gateway"].pop("endpoint")
    hosts["V3-1"]["port"] = True
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))

    assert main(["inventory", "check", "--inventory", str(inventory)]) == 64
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "wgfleet: error: 3 problems found, nothing was changed:",
        "  - hosts.yaml: V1-2: data.gateway.endpiont: unknown key 'endpiont'; "
        "did you mean 'endpoint'?",
        "  - hosts.yaml: V1-2: data.gateway.endpoint: missing required key 'endpoint'",
        "  - hosts.yaml: V3-1: port: must be an integer, got boolean true",
    ]


def test_yaml_syntax_error_names_file_and_line(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inventory / "groups.yaml").write_text("site1:\n  data: [\n")
    assert main(["inventory", "check", "--inventory", str(inventory)]) == ExitStatus.BAD_INPUT
    assert "groups.yaml: line 3: YAML syntax error" in capsys.readouterr().err


def test_missing_directory_exits_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent"
    assert main(["inventory", "check", "--inventory", str(missing)]) == 64
    assert f"{missing}: inventory directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["inventory", "--help"], ["inventory", "check", "--help"]])
def test_help_is_available(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "--inventory" in capsys.readouterr().out or argv == ["inventory", "--help"]


def _inventory_parsers() -> list[argparse.ArgumentParser]:
    parser = build_parser()
    found: list[argparse.ArgumentParser] = []
    pending = [
        action.choices["inventory"]
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    while pending:
        current = pending.pop()
        found.append(current)
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += action.choices.values()
    return found


def test_every_inventory_command_and_option_has_help() -> None:
    parsers = _inventory_parsers()
    assert {p.prog for p in parsers} == {"wgfleet inventory", "wgfleet inventory check"}
    for parser in parsers:
        assert parser.description, parser.prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), parser.prog
            else:
                assert action.help, (parser.prog, action.dest)
