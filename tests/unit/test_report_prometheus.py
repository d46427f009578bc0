"""Prometheus textfile metrics: exposition format, one HELP/TYPE per metric, escaping."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from tests.unit.test_report_runs import degraded_run, healthy_run, unreachable_run
from wgfleet.findings import VerifyRun
from wgfleet.report import render_metrics
from wgfleet.report.prometheus import escape_label, format_value

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')

Labels = tuple[tuple[str, str], ...]


def _labels(text: str) -> Labels:
    found, position = [], 0
    while position < len(text):
        match = _LABEL.match(text, position)
        assert match, f"bad labels at {text[position:]!r}"
        value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), match[2])
        found.append((match[1], value))
        position = match.end()
    return tuple(found)


def parse(text: str) -> dict[str, dict[Labels, float]]:
    """A strict little parser of the text exposition format (what node_exporter reads)."""
    assert text.endswith("\n")
    metrics: dict[str, dict[Labels, float]] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in typed, f"TYPE twice for {name}"
            assert name in helped
            typed[name] = kind
            current = name
            metrics[name] = {}
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample: {line!r}"
            name, labels, value = match[1], _labels(match[2] or ""), match[3]
            assert name == current, f"{name} outside its block"
            assert labels not in metrics[name], f"duplicate series {name}{labels}"
            metrics[name][labels] = float(value)
    assert set(typed.values()) == {"gauge"}
    return metrics


def _one(metrics: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    return metrics[name][tuple(labels.items())]


def test_every_metric_family_is_present() -> None:
    metrics = parse(render_metrics(degraded_run()))
    assert sorted(metrics) == [
        "wgfleet_bgp_session_established",
        "wgfleet_gateway_reachable",
        "wgfleet_site_pair_loss_ratio",
        "wgfleet_site_pair_paths_expected",
        "wgfleet_site_pair_paths_up",
        "wgfleet_site_pair_rtt_seconds",
        "wgfleet_tunnel_handshake_age_seconds",
        "wgfleet_tunnel_up",
        "wgfleet_verify_duration_seconds",
        "wgfleet_verify_findings",
        "wgfleet_verify_last_run_timestamp_seconds",
    ]


def test_tunnels_sessions_and_pairs() -> None:
    m = parse(render_metrics(degraded_run()))
    assert len(m["wgfleet_tunnel_up"]) == 24
    assert _one(m, "wgfleet_tunnel_up", gateway="V1-1", interface="wg3", peer="V2-1") == 1
    assert _one(m, "wgfleet_tunnel_up", gateway="V1-1", interface="wg5", peer="V3-1") == 0
    age = m["wgfleet_tunnel_handshake_age_seconds"]
    assert age[(("gateway", "V1-1"), ("interface", "wg3"), ("peer", "V2-1"))] == 20
    assert (("gateway", "V1-1"), ("interface", "wg5"), ("peer", "V3-1")) not in age
    assert age[(("gateway", "V3-1"), ("interface", "wg1"), ("peer", "V1-1"))] == 150
    assert len(m["wgfleet_bgp_session_established"]) == 48
    bgp = "wgfleet_bgp_session_established"
    assert _one(m, bgp, gateway="V1-1", session="IBGP_V2_1", peer="V2-1") == 1
    assert _one(m, bgp, gateway="V1-1", session="IBGP_V3_1_4", peer="V3-1") == 0
    assert _one(m, "wgfleet_site_pair_paths_up", local="site1", remote="site3") == 3
    assert _one(m, "wgfleet_site_pair_paths_expected", local="site1", remote="site3") == 4
    assert _one(m, "wgfleet_site_pair_loss_ratio", local="site1", remote="site2") == 0
    assert _one(m, "wgfleet_site_pair_rtt_seconds", local="site1", remote="site3") == 0.0005
    assert _one(m, "wgfleet_verify_findings", severity="critical") == 7
    assert _one(m, "wgfleet_verify_findings", severity="unknown") == 0
    assert _one(m, "wgfleet_verify_last_run_timestamp_seconds") == 1_795_646_702.5
    assert _one(m, "wgfleet_verify_duration_seconds") == 2.5


def _without_handshake(run: VerifyRun, gateway: str, interface: str) -> VerifyRun:
    obs = run.observations[gateway]
    wg = obs.wireguard[interface]
    never = replace(wg, peers=(replace(wg.peers[0], latest_handshake=0),))
    observed = {**obs.wireguard, interface: never}
    return replace(
        run, observations={**run.observations, gateway: replace(obs, wireguard=observed)}
    )


def test_never_handshaked_tunnel_has_no_age_and_is_down() -> None:
    m = parse(render_metrics(_without_handshake(healthy_run(), "V2-1", "wg5")))
    labels = (("gateway", "V2-1"), ("interface", "wg5"), ("peer", "V3-1"))
    assert labels not in m["wgfleet_tunnel_handshake_age_seconds"]
    assert m["wgfleet_tunnel_up"][labels] == 0


def test_stale_handshake_is_down() -> None:
    run = healthy_run()
    obs = run.observations["V1-2"]
    wg = obs.wireguard["wg3"]
    stale = replace(wg, peers=(replace(wg.peers[0], latest_handshake=int(obs.collected_at) - 181),))
    observed = replace(obs, wireguard={**obs.wireguard, "wg3": stale})
    m = parse(render_metrics(replace(run, observations={**run.observations, "V1-2": observed})))
    assert _one(m, "wgfleet_tunnel_up", gateway="V1-2", interface="wg3", peer="V2-1") == 0
    age = m["wgfleet_tunnel_handshake_age_seconds"]
    assert age[(("gateway", "V1-2"), ("interface", "wg3"), ("peer", "V2-1"))] == 181


def test_unreachable_gateway_has_reachable_zero_and_no_guessed_samples() -> None:
    m = parse(render_metrics(unreachable_run()))
    assert _one(m, "wgfleet_gateway_reachable", gateway="V2-2") == 0
    assert _one(m, "wgfleet_gateway_reachable", gateway="V2-1") == 1
    for name in ("wgfleet_tunnel_up", "wgfleet_bgp_session_established"):
        assert not [k for k in m[name] if ("gateway", "V2-2") in k]
    assert len(m["wgfleet_tunnel_up"]) == 20


def test_bird_down_means_sessions_not_established() -> None:
    run = healthy_run()
    obs = replace(run.observations["V3-2"], bird=None, bird_error="BIRD is not running here")
    m = parse(render_metrics(replace(run, observations={**run.observations, "V3-2": obs})))
    values = [v for k, v in m["wgfleet_bgp_session_established"].items() if k[0][1] == "V3-2"]
    assert values == [0] * 8


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("plain", "plain"), ('a"b', 'a\\"b'), ("a\\b", "a\\\\b"), ("a\nb", "a\\nb")],
)
def test_label_values_are_escaped(raw: str, escaped: str) -> None:
    assert escape_label(raw) == escaped
    assert _labels(f'x="{escaped}"') == (("x", raw),)


def test_hostile_site_and_gateway_names_stay_one_sample_each() -> None:
    run = degraded_run()
    plan = run.plan
    sites = tuple(replace(s, name=f'site"{s.number}\\\n') for s in plan.sites)
    odd = replace(run, plan=replace(plan, sites=sites))
    m = parse(render_metrics(odd))
    assert _one(m, "wgfleet_site_pair_paths_up", local='site"1\\\n', remote='site"3\\\n') == 3


def test_value_format() -> None:
    assert format_value(3) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(math.nan) == "NaN"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
