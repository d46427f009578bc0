"""Rendering: golden files, every BIRD config accepted by the real `bird -p`, keys never leaked."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.fleets import (
    fake_public_key,
    hub_spoke_fleet,
    public_keys,
    reference_fleet,
    routing_fleet,
)
from tests.golden import check_tree
from wgfleet.allocations import Allocations
from wgfleet.cli.plan import write_tree
from wgfleet.errors import BadInputError
from wgfleet.model import Fleet
from wgfleet.plan import FleetPlan, plan_fleet
from wgfleet.render import (
    MissingPublicKeyError,
    RenderedGateway,
    render_fleet,
    render_gateway,
    template_environment,
)

FLEETS = {
    "reference": reference_fleet,
    "hub-and-spoke": lambda: hub_spoke_fleet(hubs=2, spokes=2),
    "routing": routing_fleet,
}


def _plan(f: Fleet) -> FleetPlan:
    return plan_fleet(f, Allocations())[0]


def _render(name: str) -> tuple[RenderedGateway, ...]:
    f = FLEETS[name]()
    return render_fleet(_plan(f), public_keys(f))


def _tree(rendered: tuple[RenderedGateway, ...], kinds: tuple[str, ...]) -> dict[str, str]:
    return {
        f"{g.name}/{f.relative_path}": f.content
        for g in rendered
        for f in g.files
        if f.kind in kinds
    }


def _bird() -> str:
    found = shutil.which("bird") or ("/usr/sbin/bird" if Path("/usr/sbin/bird").exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(
                "bird (BIRD 2) is not installed: CI must check every rendered config with "
                "`bird -p`; install the bird2 package (make deps)"
            )
        pytest.skip("bird (BIRD 2) is not installed; `make deps` installs it")
    return found


def test_reference_fleet_matches_the_golden_files() -> None:
    rendered = _render("reference")
    assert sum(len(g.files) for g in rendered) == 6 * 4 + 6
    check_tree("reference", _tree(rendered, ("wireguard", "bird")))


def test_hub_and_spoke_bird_configs_match_the_golden_files() -> None:
    check_tree("hub-and-spoke", _tree(_render("hub-and-spoke"), ("bird",)))


def test_routing_modes_match_the_golden_files() -> None:
    check_tree("routing", _tree(_render("routing"), ("bird", "wireguard")))


@pytest.mark.parametrize("name", sorted(FLEETS))
def test_every_bird_config_passes_bird_p(name: str, tmp_path: Path) -> None:
    bird = _bird()
    version = subprocess.run([bird, "--version"], capture_output=True, text=True, check=False)
    assert "BIRD version 2." in version.stderr + version.stdout
    for gateway in _render(name):
        config = tmp_path / f"{gateway.name}.conf"
        config.write_text(gateway.bird.content)
        result = subprocess.run([bird, "-p", "-c", str(config)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}/{gateway.name}: {result.stderr}"


def test_wireguard_file_has_the_article_fields_and_no_private_key() -> None:
    f = reference_fleet()
    rendered = render_gateway(_plan(f), "V1-1", public_keys(f))
    wg3 = rendered.wireguard["wg3"]
    assert wg3.remote_path == "/etc/wireguard/wgfleet/wg3.conf"
    assert wg3.mode == 0o600
    body = [line for line in wg3.content.splitlines() if line and not line.startswith("#")]
    assert body == [
        "[Interface]",
        "ListenPort = 5803",
        "[Peer]",
        f"PublicKey = {fake_public_key('V2-1')}",
        "Endpoint = [2001:db8:2::1]:5801",
        "AllowedIPs = 0.0.0.0/0, ::/0",
        "PersistentKeepalive = 0",
    ]
    for file in rendered.files:
        assert "PrivateKey" not in file.content.replace("private key", "")


def test_bird_config_follows_the_article() -> None:
    f = reference_fleet()
    bird = render_gateway(_plan(f), "V1-1", public_keys(f)).bird
    assert bird.remote_path == "/etc/bird/wgfleet-private.conf"
    text = bird.content
    assert 'timeformat protocol "%s";' in text
    assert "router id 10.0.1.11;" in text
    assert text.count("hold time 6;") == 2 and text.count("preference 160;") == 2
    assert "merge paths on;" in text
    for name in ("IBGP_V2_1", "IBGP_V2_2", "IBGP_V3_1", "IBGP_V3_2"):
        assert f"protocol bgp {name} from tunnel_v6" in text
        assert f"protocol bgp {name}_4 from tunnel_v4" in text
    assert "neighbor 2001:db8:ff::1 as 65002;" in text
    assert "neighbor 169.254.1.1 as 65002;" in text
    # no transit: towards tunnels only the own site's prefixes learnt on the site side
    export = text.split("filter export_site_v6")[1].split("}")[0]
    assert "site_side() && (net ~ SITE1_NETS6)" in export and "RTS_BGP" not in export
    assert "vpn" not in text.lower().replace("wgfleet", "")


def test_missing_public_key_is_an_error_unless_placeholders_are_allowed() -> None:
    f = reference_fleet()
    plan = _plan(f)
    keys = public_keys(f)
    del keys["V2-1"]
    with pytest.raises(MissingPublicKeyError, match="V2-1"):
        render_gateway(plan, "V1-1", keys)
    review = render_gateway(plan, "V1-1", keys, allow_placeholders=True)
    assert review.missing_keys == ("V2-1",)
    wg3 = review.wireguard["wg3"].content
    assert "# PLACEHOLDER: the public key of V2-1 is not collected yet" in wg3
    assert "PublicKey = PLACEHOLDER-public-key-of-V2-1-not-collected-yet" in wg3
    assert "PLACEHOLDER" not in review.wireguard["wg4"].content


def test_malformed_public_keys_are_refused() -> None:
    f = reference_fleet()
    keys = public_keys(f) | {"V2-1": "not-a-key\n[Peer]"}
    with pytest.raises(BadInputError, match="V2-1: public_key: not a WireGuard key"):
        render_gateway(_plan(f), "V1-1", keys)


def test_user_templates_override_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "wireguard").mkdir()
    (tmp_path / "wireguard" / "tunnel.conf.j2").write_text(
        "[Interface]\nListenPort = {{ tunnel.listen_port }}\n# custom\n"
    )
    f = reference_fleet()
    rendered = render_fleet(_plan(f), public_keys(f), templates_dir=tmp_path)
    assert rendered[0].wireguard["wg3"].content == "[Interface]\nListenPort = 5803\n# custom\n"
    assert "protocol bgp IBGP_V2_1" in rendered[0].bird.content  # shipped BIRD template


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ tunnel.nosuch }}", "cannot render"),
        ("{% if %}", "line 1"),
        ("[Interface]\nPrivateKey = {{ tunnel.peer }}\n", "keys stay on the gateway"),
    ],
    ids=["undefined", "syntax", "private-key"],
)
def test_broken_user_templates_are_bad_input(tmp_path: Path, template: str, message: str) -> None:
    (tmp_path / "wireguard").mkdir()
    (tmp_path / "wireguard" / "tunnel.conf.j2").write_text(template)
    f = reference_fleet()
    with pytest.raises(BadInputError, match=message):
        render_fleet(_plan(f), public_keys(f), templates_dir=tmp_path)


def test_a_missing_templates_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="templates directory not found"):
        template_environment(tmp_path / "nosuch")


def test_each_call_gets_its_own_environment() -> None:
    assert template_environment() is not template_environment()


def test_concurrent_renders_do_not_mix_gateways() -> None:
    f = reference_fleet()
    plan, keys = _plan(f), public_keys(f)
    expected = {g.name: render_gateway(plan, g.name, keys) for g in plan.gateways}
    results: dict[str, RenderedGateway] = {}

    def work(name: str) -> None:
        for _ in range(5):
            results[name] = render_gateway(plan, name, keys)

    threads = [threading.Thread(target=work, args=(g.name,)) for g in plan.gateways]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_write_tree_writes_the_review_layout_and_drops_stale_files(tmp_path: Path) -> None:
    rendered = _render("reference")
    stale = tmp_path / "V1-1" / "wireguard" / "wg9.conf"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    keep = tmp_path / "V1-1" / "notes.txt"
    keep.write_text("mine")
    written = write_tree(tmp_path, rendered)
    assert len(written) == 30
    assert not stale.exists() and keep.exists()
    assert (tmp_path / "V1-1" / "wireguard" / "wg3.conf").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "V3-2" / "bird" / "wgfleet-private.conf").exists()


def test_an_edited_template_is_compiled_again(tmp_path: Path) -> None:
    (tmp_path / "wireguard").mkdir()
    template = tmp_path / "wireguard" / "tunnel.conf.j2"
    f = reference_fleet()
    plan, keys = _plan(f), public_keys(f)
    template.write_text("# one {{ tunnel.interface }}\n")
    first = render_gateway(plan, "V1-1", keys, templates_dir=tmp_path)
    template.write_text("# two {{ tunnel.interface }}\n")
    second = render_gateway(plan, "V1-1", keys, templates_dir=tmp_path)
    assert first.wireguard["wg3"].content == "# one wg3\n"
    assert second.wireguard["wg3"].content == "# two wg3\n"
