"""`wgfleet plan` and `wgfleet render`: output, allocations written only on request, help."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from tests.fleets import public_keys, reference_fleet
from tests.golden import check_file
from wgfleet.cli import build_parser, main
from wgfleet.errors import ExitStatus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A copy of the article's inventory, without its allocations file."""
    target = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory", target)
    (target / "allocations.yaml").unlink()
    return target


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_plan_table_matches_the_golden_file(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "plan", "--inventory", str(REPO / "inventory"))
    assert status == ExitStatus.OK and err == ""
    check_file("cli/plan.txt", out)
    assert "wg3     5803  V2-1  [2001:db8:2::1]:5801  2001:db8:ff::/127" in out


def test_plan_json_is_stable_and_matches_the_golden_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = _run(capsys, "plan", "-i", str(REPO / "inventory"), "--format", "json")
    assert status == ExitStatus.OK
    check_file("cli/plan.json", out)
    document = json.loads(out)
    assert (document["format"], document["version"]) == ("wgfleet-plan", 1)
    assert document["allocations_pending"] is False
    v11 = document["gateways"][0]
    assert [t["interface"] for t in v11["tunnels"]] == ["wg3", "wg4", "wg5", "wg6"]
    assert v11["expected"]["routes"][0] == {
        "sites": [2],
        "prefixes": ["2001:db8:a2::/64", "10.0.2.0/24"],
        "ecmp_width": 2,
        "interfaces": ["wg3", "wg4"],
    }


def test_limit_selects_gateways_and_unknown_names_are_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = str(REPO / "inventory")
    status, out, _ = _run(capsys, "plan", "-i", inv, "--format", "json", "--limit", "V2-1,V3-2")
    assert [g["name"] for g in json.loads(out)["gateways"]] == ["V2-1", "V3-2"]
    status, _, err = _run(capsys, "plan", "-i", inv, "--limit", "V9-9")
    assert status == ExitStatus.BAD_INPUT
    assert "--limit: V9-9: no such gateway" in err


def test_plan_writes_allocations_only_when_asked(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "plan", "-i", str(inventory), "--format", "json")
    assert status == ExitStatus.OK
    assert json.loads(out)["allocations_pending"] is True
    assert "--save-allocations" in err
    assert not (inventory / "allocations.yaml").exists()
    status, _, err = _run(capsys, "plan", "-i", str(inventory), "--save-allocations")
    assert "allocations saved" in err
    saved = (inventory / "allocations.yaml").read_text()
    assert saved == (REPO / "inventory" / "allocations.yaml").read_text()
    status, _, err = _run(capsys, "plan", "-i", str(inventory))
    assert err == ""


def test_a_broken_allocations_file_is_bad_input(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inventory / "allocations.yaml").write_text("marks: {V1-1: 1, V1-2: 1}\n")
    status, _, err = _run(capsys, "plan", "-i", str(inventory))
    assert status == ExitStatus.BAD_INPUT
    assert "allocations.yaml: marks.V1-2: duplicate mark 1" in err


def test_render_writes_every_file_with_placeholders_for_unknown_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    status, out, err = _run(capsys, "render", "-i", str(REPO / "inventory"), "--out", str(out_dir))
    assert status == ExitStatus.OK
    assert "rendered 30 files for 6 gateways" in out
    assert "PLACEHOLDER" in err
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.conf"))
    assert "V1-1/wireguard/wg3.conf" in files and "V1-1/bird/wgfleet-private.conf" in files
    assert len(files) == 30
    for path in out_dir.rglob("*.conf"):
        assert "PrivateKey" not in path.read_text().replace("private key", "")


def test_render_with_public_keys_matches_the_golden_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("".join(f"{k}: {v}\n" for k, v in public_keys(reference_fleet()).items()))
    out_dir = tmp_path / "out"
    status, _, err = _run(
        capsys,
        "render",
        "-i",
        str(REPO / "inventory"),
        "-o",
        str(out_dir),
        "--public-keys",
        str(keys),
    )
    assert status == ExitStatus.OK and "PLACEHOLDER" not in err
    golden = REPO / "tests" / "golden" / "reference"
    for path in golden.rglob("*.conf"):
        assert (out_dir / path.relative_to(golden)).read_text() == path.read_text()


def test_render_user_templates_and_bad_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    templates = tmp_path / "templates" / "bird"
    templates.mkdir(parents=True)
    (templates / "bird.conf.j2").write_text("# {{ gateway.name }}\n")
    out_dir = tmp_path / "out"
    inv = str(REPO / "inventory")
    args = ["render", "-i", inv, "-o", str(out_dir), "--templates", str(templates.parent)]
    status, _, _ = _run(capsys, *args, "--limit", "V1-1")
    assert status == ExitStatus.OK
    assert (out_dir / "V1-1" / "bird" / "wgfleet-private.conf").read_text() == "# V1-1\n"
    assert not (out_dir / "V1-2").exists()
    bad = tmp_path / "keys.yaml"
    bad.write_text("- not a mapping\n")
    status, _, err = _run(
        capsys, "render", "-i", inv, "-o", str(out_dir), "--public-keys", str(bad)
    )
    assert status == ExitStatus.BAD_INPUT and "must map gateway names to public keys" in err


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("command", ["plan", "render"])
def test_every_option_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    sub = _subparser(command)
    assert sub.description
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    assert "--inventory" in capsys.readouterr().out
