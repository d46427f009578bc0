"""The allocations file: round trip, atomic saves, and hand edits refused with a clear error."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest

from tests.fleets import reference_fleet
from wgfleet.allocations import (
    Allocations,
    dump_allocations,
    load_allocations,
    parse_allocations,
    save_allocations,
)
from wgfleet.errors import BadInputError
from wgfleet.model import FleetSettings
from wgfleet.plan import plan_fleet

REPO = Path(__file__).resolve().parents[2]
SETTINGS = FleetSettings()

GOOD = """\
version: 1
marks:
  V1-1: 1
  V1-2: 2
  V2-1: 3
links:
  V1-1/V2-1: [2001:db8:ff::/127, 169.254.1.0/31]
  V1-2/V2-1: [2001:db8:ff::8/127, 169.254.1.8/31]
"""


def _reference() -> Allocations:
    return plan_fleet(reference_fleet(), Allocations())[1]


def test_the_committed_file_is_the_article_numbering() -> None:
    committed = load_allocations(REPO / "inventory" / "allocations.yaml", SETTINGS)
    assert committed == _reference()
    text = (REPO / "inventory" / "allocations.yaml").read_text()
    assert text == dump_allocations(_reference())
    assert "  V1-1/V2-1: [2001:db8:ff::/127, 169.254.1.0/31]\n" in text


def test_round_trip() -> None:
    allocations = _reference()
    assert parse_allocations(dump_allocations(allocations), SETTINGS, "a.yaml") == allocations


def test_the_first_gateway_owns_the_even_addresses() -> None:
    link = parse_allocations(GOOD, SETTINGS, "a.yaml").link("V2-1", "V1-2")
    assert link.gateways == ("V1-2", "V2-1")
    assert str(link.address6("V1-2")) == "2001:db8:ff::8/127"
    assert str(link.address6("V2-1")) == "2001:db8:ff::9/127"
    assert str(link.address4("V2-1")) == "169.254.1.9/31"


def test_a_missing_or_empty_file_means_nothing_allocated(tmp_path: Path) -> None:
    assert load_allocations(tmp_path / "none.yaml", SETTINGS) == Allocations()
    (tmp_path / "empty.yaml").write_text("")
    assert load_allocations(tmp_path / "empty.yaml", SETTINGS) == Allocations()


def test_unusual_names_are_quoted_and_read_back() -> None:
    allocations = Allocations(marks={"on": 1, "gw 2": 2, "3": 3})
    text = dump_allocations(allocations)
    assert '"on": 1' in text and '"gw 2": 2' in text and '"3": 3' in text
    assert parse_allocations(text, SETTINGS, "a.yaml") == allocations


BAD = [
    pytest.param(
        "version: 1\nmarks: {V1-1: 1}\nlinkz: {}\n", "linkz: unknown key", id="unknown-key"
    ),
    pytest.param("version: 2\n", "version: unsupported version 2", id="version"),
    pytest.param("- 1\n", "must be a mapping with keys", id="not-a-mapping"),
    pytest.param(
        "marks: {V1-1: 1, V1-2: 1}\n",
        "marks.V1-2: duplicate mark 1: already the mark of V1-1",
        id="dup-mark",
    ),
    pytest.param("marks:\n  V1-1: 1\n  V1-1: 2\n", "line 3", id="dup-gateway-key"),
    pytest.param("marks: {V1-1: 0}\n", "marks.V1-1: mark 0 is outside 1..59735", id="mark-zero"),
    pytest.param("marks: {V1-1: 70000}\n", "mark 70000 is outside", id="mark-too-big"),
    pytest.param("marks: {V1-1: one}\n", "must be an integer mark, not 'one'", id="mark-type"),
    pytest.param("marks: {V1-1: true}\n", "must be an integer mark", id="mark-bool"),
    pytest.param("marks: [V1-1]\n", "marks: must be a mapping", id="marks-list"),
    pytest.param("links: [V1-1/V2-1]\n", "links: must be a mapping of A/B", id="links-list"),
    pytest.param(
        GOOD + "  V1-1/V2-1x: [2001:db8:ff::2/127, 169.254.1.2/31]\n",
        "V2-1x has no entry under marks",
        id="unknown-gateway",
    ),
    pytest.param(
        GOOD.replace("V1-2/V2-1", "V1-2-V2-1"),
        "links.V1-2-V2-1: the key must name two gateways",
        id="bad-key",
    ),
    pytest.param(
        GOOD.replace("V1-2/V2-1", "V2-1/V2-1"), "cannot have a tunnel to itself", id="self-link"
    ),
    pytest.param(
        GOOD + "  V2-1/V1-1: [2001:db8:ff::2/127, 169.254.1.2/31]\n",
        "links.V2-1/V1-1: duplicate link: this pair is already listed",
        id="dup-pair",
    ),
    pytest.param(
        GOOD.replace("2001:db8:ff::8/127", "2001:db8:ff::/127"),
        "links.V1-2/V2-1: ipv6: duplicate subnet 2001:db8:ff::/127: also links.V1-1/V2-1",
        id="dup-subnet6",
    ),
    pytest.param(
        GOOD.replace("169.254.1.8/31", "169.254.1.0/31"),
        "ipv4: duplicate subnet 169.254.1.0/31",
        id="dup-subnet4",
    ),
    pytest.param(
        GOOD.replace("2001:db8:ff::8/127", "2001:db8:fe::8/127"),
        "2001:db8:fe::8/127 is outside the pool 2001:db8:ff::/64",
        id="outside-pool6",
    ),
    pytest.param(
        GOOD.replace("169.254.1.8/31", "10.0.0.8/31"),
        "10.0.0.8/31 is outside the pool 169.254.1.0/24",
        id="outside-pool4",
    ),
    pytest.param(
        GOOD.replace("2001:db8:ff::8/127", "2001:db8:ff::8/64"),
        "wrong prefix length: 2001:db8:ff::8/64 should be a /127",
        id="prefix6",
    ),
    pytest.param(
        GOOD.replace("169.254.1.8/31", "169.254.1.8/30"),
        "wrong prefix length: 169.254.1.8/30 should be a /31",
        id="prefix4",
    ),
    pytest.param(
        GOOD.replace("2001:db8:ff::8/127", "2001:db8:ff::9/127"),
        "ownership mismatch: 2001:db8:ff::9/127 is the odd address but V1-2, named first, "
        "owns the even one: write 2001:db8:ff::8/127",
        id="odd-owner6",
    ),
    pytest.param(
        GOOD.replace("169.254.1.8/31", "169.254.1.9/31"),
        "ipv4: ownership mismatch: 169.254.1.9/31 is the odd address",
        id="odd-owner4",
    ),
    pytest.param(
        GOOD.replace(
            "[2001:db8:ff::8/127, 169.254.1.8/31]", "[169.254.1.8/31, 2001:db8:ff::8/127]"
        ),
        "the order is [ipv6, ipv4]",
        id="swapped-families",
    ),
    pytest.param(
        GOOD.replace("[2001:db8:ff::8/127, 169.254.1.8/31]", "[2001:db8:ff::8/127]"),
        "must be [ipv6 /127, ipv4 /31]",
        id="one-subnet",
    ),
    pytest.param(
        GOOD.replace("2001:db8:ff::8/127", "2001:db8:ff::zz/127"),
        "is not an IPv6 subnet",
        id="garbage",
    ),
    pytest.param("marks: {V1-1: 1\n", "not valid YAML", id="syntax"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_inconsistent_files_are_refused_naming_file_and_entry(text: str, message: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_allocations(text, SETTINGS, "inventory/allocations.yaml")
    report = str(caught.value)
    assert "inventory/allocations.yaml" in report
    assert message in report, report


def test_every_problem_is_reported_in_one_pass() -> None:
    text = "marks: {V1-1: 1, V1-2: 1, V2-1: 0}\nextra: 1\n"
    with pytest.raises(BadInputError) as caught:
        parse_allocations(text, SETTINGS, "a.yaml")
    assert len(caught.value.problems) == 3


def test_pool_changes_are_caught_on_load() -> None:
    moved = FleetSettings(pool4=ipaddress.IPv4Network("169.254.2.0/24"))
    with pytest.raises(BadInputError, match=r"outside the pool 169\.254\.2\.0/24"):
        parse_allocations(dump_allocations(_reference()), moved, "a.yaml")


def test_save_is_atomic_and_skips_identical_content(tmp_path: Path) -> None:
    target = tmp_path / "allocations.yaml"
    assert save_allocations(target, _reference()) is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    inode = target.stat().st_ino
    assert save_allocations(target, _reference()) is False
    assert target.stat().st_ino == inode  # untouched
    assert save_allocations(target, Allocations(marks={"V1-1": 1})) is True
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["allocations.yaml"]  # no temp file left
    assert load_allocations(target, SETTINGS) == Allocations(marks={"V1-1": 1})


def test_a_failed_save_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "allocations.yaml"
    save_allocations(target, _reference())
    before = target.read_text()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        save_allocations(target, Allocations(marks={"V1-1": 1}))
    assert target.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["allocations.yaml"]


def test_unreadable_file_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(BadInputError, match="cannot read"):
        load_allocations(tmp_path / "dir.yaml", SETTINGS)
