"""Parsers against real tool output: ``wg show … dump``, ``ip -j``, ``birdc``, ``fping``.

Captures in ``tests/unit/data``: ``gather_v1-1_converged.txt``, ``birdc_protocol*_established``,
``*_one_tunnel_down``, ``*_all_down``, ``ip_route*_private*.json``, ``fping_mixed.txt`` and
``wg_show_all_dump_raw.txt`` come from the lab. ``wg_show_*fwmark_psk*``, ``*no_key*``,
``ip_route*_default*.json``, ``birdc_protocols_not_established``, ``*_one_disabled``,
``birdc_protocol_all_passive``, ``birdc_socket_refused`` and ``fping_verbose_icmp_errors``
were captured with the same tool versions (wireguard-go, iproute2 6.1.0, BIRD 2.0.12,
fping 5.1) in scratch network namespaces; keys in them are throwaway keys replaced by the
dummy ones below. ``edge_*`` files are hand-made.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from wgfleet.facts import split_sections
from wgfleet.parsers import ParseError
from wgfleet.parsers.bird import BirdUnavailableError, parse_birdc_protocols
from wgfleet.parsers.fping import parse_fping_summary
from wgfleet.parsers.iproute import NextHop, Route, parse_ip_links, parse_ip_routes
from wgfleet.parsers.wg import WgInterface, parse_wg_dump

DATA = Path(__file__).parent / "data"
DUMMY_KEY = "EGy4p/TxLAGHu3EZzkVNdZlU2gyu/1LBrq1JkQgVkG4="
DUMMY_PSK = "ZHVtbXktcHJlc2hhcmVkLWtleS1mb3ItdGVzdHMhISE="
V3_2 = "df9Gdtl5wACUxfHAJcoMHkiU08+ncGyMeYHTm1Rz7AI="
V2_1 = "MuVi7Ul+EClRx/6UVlq77lI9vbobH5ZltsVg6t3yz3c="
V2_2 = "Fjerxdv7RtI9xA+aQr/YKucQSHkOulpvFMG9uOzbHFU="
BOTH_FAMILIES = ("0.0.0.0/0", "::/0")


def _read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def _gather_section(name: str) -> str:
    return split_sections(_read("gather_v1-1_converged.txt"))[name]


def _secret_free(interfaces: dict[str, WgInterface]) -> None:
    """Neither repr nor asdict of anything returned carries a private or preshared key."""
    texts = [repr(interfaces)]
    for interface in interfaces.values():
        texts += [repr(interface), str(dataclasses.asdict(interface))]
        texts += [repr(peer) for peer in interface.peers]
    for text in texts:
        assert DUMMY_KEY not in text
        assert DUMMY_PSK not in text


# --- wg show … dump ---------------------------------------------------------------------


def test_wg_all_dump_interfaces_in_order_with_their_fields() -> None:
    wg = parse_wg_dump(_read("wg_show_all_dump_raw.txt"))
    assert list(wg) == ["wg99", "wg4", "wg3", "wg2"]
    wg4 = wg["wg4"]
    assert wg4.name == "wg4"
    assert wg4.public_key == V3_2
    assert wg4.has_private_key is True
    assert wg4.listen_port == 5804
    assert wg4.fwmark is None  # "off"
    assert wg["wg99"].public_key == "Qb6svv/NQmoTABOTUdlULZwkwJSlxQAjcHjJICHn2U8="
    assert wg["wg99"].listen_port == 5999


def test_wg_all_dump_peer_fields() -> None:
    wg = parse_wg_dump(_read("wg_show_all_dump_raw.txt"))
    (peer,) = wg["wg4"].peers
    assert peer.public_key == V2_2
    assert peer.has_preshared_key is False  # "(none)"
    assert peer.endpoint == "[2001:db8:2::2]:5806"  # IPv6 endpoint kept as [addr]:port
    assert peer.allowed_ips == BOTH_FAMILIES
    assert peer.latest_handshake == 1795646600
    assert peer.rx_bytes == 13276
    assert peer.tx_bytes == 13556
    assert peer.keepalive == 0  # "off"
    assert peer.handshake_age(1795646630.5) == pytest.approx(30.5)
    assert peer.handshake_age(1795646500) == 0.0  # clock skew never gives a negative age
    (wg3_peer,) = wg["wg3"].peers
    assert wg3_peer.public_key == V2_1
    assert wg3_peer.endpoint == "[2001:db8:2::1]:5806"


def test_wg_never_handshaked_peer_has_no_handshake_age() -> None:
    (peer,) = parse_wg_dump(_read("wg_show_all_dump_raw.txt"))["wg99"].peers
    assert peer.latest_handshake == 0
    assert peer.handshake_age(1795646630.0) is None
    assert peer.rx_bytes == 0
    assert peer.tx_bytes == 148
    assert peer.keepalive == 25
    assert peer.endpoint == "[2001:db8:9::9]:5999"


def test_wg_dump_never_returns_the_private_key() -> None:
    raw = _read("wg_show_all_dump_raw.txt")
    assert raw.count(DUMMY_KEY) == 4  # the capture does carry it, on every interface line
    wg = parse_wg_dump(raw)
    _secret_free(wg)
    assert all(i.has_private_key for i in wg.values())


def test_wg_dump_fwmark_psk_ipv4_endpoint_and_no_allowed_ips() -> None:
    raw = _read("wg_show_all_dump_fwmark_psk_raw.txt")
    assert DUMMY_PSK in raw
    wg = parse_wg_dump(raw)
    assert list(wg) == ["wgx3", "wgx2", "wgx1"]
    wgx1 = wg["wgx1"]
    assert wgx1.fwmark == 51820  # printed as 0xca6c (wg-quick's mark)
    assert wgx1.listen_port == 51820
    first, second = wgx1.peers
    assert first.has_preshared_key is True
    assert first.endpoint == "192.0.2.7:51820"
    assert first.allowed_ips == ("10.1.0.0/16", "192.168.7.0/24")
    assert first.keepalive == 25
    assert second.has_preshared_key is False
    assert second.endpoint == "[2001:db8::7]:51821"
    assert second.allowed_ips == ()  # "(none)"
    assert second.keepalive == 0
    assert wg["wgx2"].peers == ()
    _secret_free(wg)


def test_wg_dump_interface_without_key() -> None:
    wg = parse_wg_dump(_read("wg_show_all_dump_fwmark_psk_raw.txt"))
    wgx3 = wg["wgx3"]
    assert wgx3.public_key is None
    assert wgx3.has_private_key is False
    assert wgx3.listen_port == 45907
    assert wgx3.fwmark is None
    assert wgx3.peers == ()


def test_wg_single_interface_dump_without_ifname_column() -> None:
    text = _read("wg_show_if_dump_fwmark_psk_raw.txt")
    assert parse_wg_dump(text, interface="wgx1") == {
        "wgx1": parse_wg_dump(_read("wg_show_all_dump_fwmark_psk_raw.txt"))["wgx1"]
    }
    no_key = parse_wg_dump(_read("wg_show_if_dump_no_key_raw.txt"), interface="wgx3")
    assert no_key["wgx3"].public_key is None
    assert no_key["wgx3"].has_private_key is False
    _secret_free(parse_wg_dump(text, interface="wgx1"))


def test_wg_scrubbed_dump_still_says_a_key_is_set() -> None:
    wg = parse_wg_dump(_gather_section("private_wg"))
    assert sorted(wg) == ["wg3", "wg4", "wg5", "wg6"]
    assert all(i.has_private_key and i.public_key for i in wg.values())


def test_wg_empty_dump_is_no_interface() -> None:
    assert parse_wg_dump("") == {}
    assert parse_wg_dump("\n\n") == {}


@pytest.mark.parametrize(
    ("text", "interface"),
    [
        pytest.param(f"wg0\t{DUMMY_KEY}\tpub\tnotaport\toff", None, id="bad-port"),
        pytest.param(f"wg0\t{DUMMY_KEY}\tpub\t51820\tnohex", None, id="bad-fwmark"),
        pytest.param(f"wg0\t{DUMMY_KEY}\tpub\t51820\toff\textra", None, id="six-fields"),
        pytest.param(f"{DUMMY_KEY}\tpub\t51820\toff", None, id="if-dump-without-interface="),
        pytest.param(f"wg0\t{DUMMY_KEY}\tpub\t51820\toff", "wg0", id="all-dump-with-interface="),
        pytest.param(f"{DUMMY_KEY} pub 51820 off", None, id="spaces-not-tabs"),
        pytest.param(
            f"wg0\t{DUMMY_KEY}\tpub\t51820\toff\nwg0\tpeer\t{DUMMY_PSK}\t(none)\t(none)\tsoon\t0\t0\toff",
            None,
            id="bad-handshake",
        ),
    ],
)
def test_wg_malformed_line_error_names_the_tool_and_hides_the_key(
    text: str, interface: str | None
) -> None:
    with pytest.raises(ParseError) as caught:
        parse_wg_dump(text, interface=interface)
    error = caught.value
    assert error.tool == "wg show dump"
    assert str(error).startswith("unexpected output from wg show dump: ")
    for shown in (str(error), repr(error), error.line, repr(error.args)):
        assert DUMMY_KEY not in shown
        assert DUMMY_PSK not in shown


def test_wg_peer_line_before_its_interface_line_is_an_error() -> None:
    line = f"wg7\t{V2_1}\t(none)\t(none)\t(none)\t0\t0\t0\toff"
    with pytest.raises(ParseError, match="peer line before interface line of wg7"):
        parse_wg_dump(line)


# --- ip -j link / addr ------------------------------------------------------------------


def test_ip_links_with_addresses_and_no_link_local() -> None:
    links = parse_ip_links(_gather_section("private_links"))
    assert list(links) == ["lo", "lan0", "wg3", "wg4", "wg5", "wg6"]
    lan0 = links["lan0"]
    assert lan0.ifindex == 3
    assert lan0.kind == "veth"
    assert lan0.mtu == 1500
    assert lan0.up is True
    assert lan0.operstate == "UP"
    assert lan0.addresses == (
        ipaddress.ip_interface("10.0.1.11/24"),
        ipaddress.ip_interface("2001:db8:a1::11/64"),
    )
    addresses = [a for link in links.values() for a in link.addresses]
    assert not [
        a for a in addresses if a.version == 6 and a.ip.is_link_local
    ]  # fe80:: (scope link)
    # Excluded by scope, not by range: 169.254.1.0/31 is link-local by RFC but scope global.
    assert ipaddress.ip_interface("169.254.1.0/31") in addresses


@pytest.mark.parametrize(
    ("name", "v4", "v6"),
    [
        ("wg3", "169.254.1.0/31", "2001:db8:ff::/127"),
        ("wg4", "169.254.1.2/31", "2001:db8:ff::2/127"),
        ("wg5", "169.254.1.4/31", "2001:db8:ff::4/127"),
        ("wg6", "169.254.1.6/31", "2001:db8:ff::6/127"),
    ],
)
def test_ip_links_wireguard_go_tunnels(name: str, v4: str, v6: str) -> None:
    link = parse_ip_links(_gather_section("private_links"))[name]
    assert link.kind == "tun"  # wireguard-go; a kernel interface says "wireguard"
    assert link.mtu == 1420
    assert link.up is True
    assert link.operstate == "UNKNOWN"
    assert set(link.addresses) == {ipaddress.ip_interface(v4), ipaddress.ip_interface(v6)}


def test_ip_links_loopback_keeps_host_scope_and_has_no_kind() -> None:
    links = parse_ip_links(_gather_section("links"))
    assert list(links) == ["lo", "eth0"]
    assert links["lo"].kind == ""
    assert links["lo"].addresses == (
        ipaddress.ip_interface("127.0.0.1/8"),
        ipaddress.ip_interface("::1/128"),
    )
    assert links["eth0"].addresses == (ipaddress.ip_interface("2001:db8:1::1/64"),)


def test_ip_links_admin_down_and_kernel_wireguard() -> None:
    text = (
        '[{"ifindex":9,"ifname":"wg9","flags":["POINTOPOINT","NOARP"],"mtu":1420,'
        '"operstate":"DOWN","linkinfo":{"info_kind":"wireguard"},"addr_info":[]}]'
    )
    (link,) = parse_ip_links(text).values()
    assert (link.name, link.kind, link.up, link.operstate) == ("wg9", "wireguard", False, "DOWN")
    assert link.addresses == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{oops", "invalid JSON"),
        ('{"ifname": "lo"}', "expected a JSON list"),
        ('[{"ifindex": 1}]', "missing or bad field"),
        ('[{"ifname": "x", "ifindex": "one"}]', "missing or bad field"),
    ],
)
def test_ip_links_bad_output_is_a_parse_error(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as caught:
        parse_ip_links(text)
    assert caught.value.tool == "ip -j link"


def test_ip_empty_output_is_empty() -> None:
    assert parse_ip_links("") == {}
    assert parse_ip_routes("  \n") == []


# --- ip -j route ------------------------------------------------------------------------


def _by_dst(name: str) -> dict[str, list[Route]]:
    routes: dict[str, list[Route]] = {}
    for route in parse_ip_routes(_read(name)):
        routes.setdefault(str(route.destination), []).append(route)
    return routes


def test_ip_routes_ecmp_to_both_remote_sites_in_the_converged_capture() -> None:
    routes = _by_dst("ip_route6_private.json")
    (a2,) = routes["2001:db8:a2::/64"]
    (a3,) = routes["2001:db8:a3::/64"]
    assert a2.protocol == a3.protocol == "bird"
    assert a2.width == a3.width == 2
    assert a2.nexthops == (NextHop("2001:db8:ff::1", "wg3"), NextHop("2001:db8:ff::3", "wg4"))
    assert a3.nexthops == (NextHop("2001:db8:ff::5", "wg5"), NextHop("2001:db8:ff::7", "wg6"))


def test_ip_routes_single_hop_routes() -> None:
    routes = _by_dst("ip_route6_private.json")
    (a1,) = routes["2001:db8:a1::/64"]
    assert (a1.protocol, a1.width, a1.nexthops) == ("kernel", 1, (NextHop(None, "lan0"),))
    assert len(routes["fe80::/64"]) == 5  # one per interface, none dropped
    assert all(
        isinstance(r.destination, ipaddress.IPv6Network) for rs in routes.values() for r in rs
    )


def test_ip_routes_degraded_capture_has_width_one_towards_site3() -> None:
    routes = _by_dst("ip_route6_private_degraded.json")
    (a3,) = routes["2001:db8:a3::/64"]
    assert a3.width == 1
    assert a3.nexthops == (NextHop("2001:db8:ff::5", "wg5"),)
    assert routes["2001:db8:a2::/64"][0].width == 2


def test_ip_routes_ipv4_ecmp() -> None:
    routes = _by_dst("ip_route4_private.json")
    assert routes["10.0.2.0/24"][0].nexthops == (
        NextHop("169.254.1.1", "wg3"),
        NextHop("169.254.1.3", "wg4"),
    )
    assert routes["10.0.3.0/24"][0].width == 2
    assert routes["169.254.1.0/31"][0].nexthops == (NextHop(None, "wg3"),)


def test_ip_routes_ipv6_defaults_with_gateway_without_gateway_and_multipath() -> None:
    defaults = _by_dst("ip_route6_defaults.json")["::/0"]
    assert [d.width for d in defaults] == [1, 2, 1]
    assert defaults[0].nexthops == (NextHop("2001:db8:5::9", "d0"),)
    assert defaults[1].nexthops == (NextHop("2001:db8:5::2", "d0"), NextHop("2001:db8:5::3", "d0"))
    assert defaults[2].nexthops == (NextHop(None, "d0"),)  # `default dev d0`
    assert "0.0.0.0/0" not in _by_dst("ip_route6_defaults.json")


def test_ip_routes_ipv4_default() -> None:
    routes = _by_dst("ip_route4_default.json")
    (default,) = routes["0.0.0.0/0"]
    assert default.nexthops == (NextHop("10.9.9.254", "d0"),)
    assert routes["10.77.0.0/16"][0].width == 2
    assert routes["10.77.0.0/16"][0].protocol == ""  # `proto boot` is not printed


def test_ip_routes_invalid_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="invalid JSON") as caught:
        parse_ip_routes('[{"dst": "2001:db8:a2::/64",')
    assert caught.value.tool == "ip -j route"


# --- birdc show protocols ---------------------------------------------------------------


def test_bird_established_rows_with_long_names() -> None:
    protocols = parse_birdc_protocols(_read("birdc_protocols_established.txt"))
    assert list(protocols) == [
        "devices",
        "site_direct",
        "kernel4",
        "kernel6",
        *(f"IBGP_V{s}_{n}{v4}" for s in (2, 3) for n in (1, 2) for v4 in ("", "_4")),
    ]
    direct = protocols["site_direct"]  # 11 characters: shifts every later column
    assert (direct.proto, direct.table, direct.state) == ("Direct", "---", "up")
    assert direct.bgp_state is None
    assert direct.info == ""
    long4 = protocols["IBGP_V2_1_4"]
    assert (long4.proto, long4.table, long4.state, long4.since) == ("BGP", "---", "up", 1795646601)
    assert long4.established
    assert protocols["kernel6"].table == "master6"
    bgp = [p for p in protocols.values() if p.proto == "BGP"]
    assert len(bgp) == 8
    assert all(p.established and p.bgp_state == "Established" and not p.last_error for p in bgp)
    assert all(isinstance(p.since, int) for p in protocols.values())


def test_bird_session_in_connect_after_hold_timer_expired() -> None:
    protocols = parse_birdc_protocols(_read("birdc_protocols_one_tunnel_down.txt"))
    down = protocols["IBGP_V3_2"]
    assert down.state == "start"
    assert down.since == 1795646638
    assert down.bgp_state == "Connect"
    assert down.last_error == "BGP Error: Hold timer expired"
    assert not down.established
    assert protocols["IBGP_V3_2_4"].since == 1795646637
    assert protocols["IBGP_V3_1"].established


@pytest.mark.parametrize("name", ["birdc_socket_missing.txt", "birdc_socket_refused.txt"])
def test_bird_unreachable_daemon(name: str) -> None:
    with pytest.raises(BirdUnavailableError) as caught:
        parse_birdc_protocols(_read(name))
    assert isinstance(caught.value, ParseError)
    assert caught.value.tool == "birdc"
    assert "Unable to connect to server control socket" in caught.value.line


def test_bird_active_passive_and_disabled_sessions() -> None:
    protocols = parse_birdc_protocols(_read("birdc_protocols_not_established.txt"))
    assert protocols["refused"].bgp_state == "Active"
    assert protocols["refused"].last_error == "Socket: Connection refused"
    assert protocols["waiting_passive"].bgp_state == "Passive"
    assert protocols["waiting_passive"].last_error == ""
    off = protocols["switched_off"]
    assert (off.state, off.bgp_state, off.last_error) == ("down", "Down", "")
    assert not any(p.established for p in protocols.values())


def test_bird_session_disabled_while_running() -> None:
    protocols = parse_birdc_protocols(_read("birdc_protocols_one_disabled.txt"))
    refused = protocols["refused"]
    assert (refused.state, refused.bgp_state, refused.since) == ("down", "Down", 1795647132)


def test_bird_edge_rows_idle_errors_and_default_time_format() -> None:
    protocols = parse_birdc_protocols(_read("edge_birdc_protocols_idle_errors.txt"))
    assert protocols["IBGP_V2_1"].bgp_state == "Idle"
    assert protocols["IBGP_V2_1"].last_error == "Socket: Connection refused"
    assert protocols["IBGP_V2_2"].bgp_state == "Active"
    assert protocols["IBGP_V2_2"].last_error == "Socket: Connection refused"
    assert protocols["IBGP_V3_1"].bgp_state == "OpenSent"
    assert protocols["IBGP_V3_1"].last_error == ""
    shut = protocols["IBGP_V3_2"]  # BIRD prints only the error for a protocol that is down
    assert (shut.bgp_state, shut.last_error) == ("Down", "Received: Administrative shutdown")
    assert protocols["static1"].since is None  # not `timeformat protocol "%s"`
    assert protocols["static1"].bgp_state is None


def test_bird_protocols_all_details_do_not_become_rows() -> None:
    down = parse_birdc_protocols(_read("birdc_protocol_all_down.txt"))
    assert list(down) == ["IBGP_V3_2"]
    assert down["IBGP_V3_2"].bgp_state == "Connect"
    assert down["IBGP_V3_2"].last_error == "BGP Error: Hold timer expired"
    up = parse_birdc_protocols(_read("birdc_protocol_all_established.txt"))
    assert list(up) == ["IBGP_V2_1"]
    assert up["IBGP_V2_1"].established
    assert (up["IBGP_V2_1"].routes_imported, up["IBGP_V2_1"].routes_exported) == (1, 1)
    passive = parse_birdc_protocols(_read("birdc_protocol_all_passive.txt"))
    assert passive["waiting_passive"].bgp_state == "Passive"
    assert passive["waiting_passive"].routes_imported is None


def test_bird_short_row_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="at least 5 columns") as caught:
        parse_birdc_protocols("BIRD 2.0.12 ready.\nsomething odd\n")
    assert caught.value.tool == "birdc show protocols"
    assert caught.value.line == "something odd"


def test_bird_empty_output_has_no_protocol() -> None:
    assert parse_birdc_protocols("BIRD 2.0.12 ready.\nAccess restricted\n") == {}


# --- fping ------------------------------------------------------------------------------


def test_fping_alive_and_lost_targets_with_padded_columns() -> None:
    pings = parse_fping_summary(_read("fping_mixed.txt"))
    assert list(pings) == ["2001:db8:ff::1", "2001:db8:ff::3", "2001:db8:ff::99", "10.0.3.1"]
    alive = pings["2001:db8:ff::1"]
    assert (alive.sent, alive.received, alive.loss_percent) == (3, 3, 0.0)
    assert (alive.rtt_min, alive.rtt_avg, alive.rtt_max) == (0.533, 0.586, 0.623)
    lost = pings["2001:db8:ff::99"]
    assert (lost.sent, lost.received, lost.loss_percent) == (3, 0, 100.0)
    assert (lost.rtt_min, lost.rtt_avg, lost.rtt_max) == (None, None, None)
    assert pings["10.0.3.1"].rtt_max == 0.764  # target padded with 8 spaces


def test_fping_icmp_errors_and_per_probe_lines_are_ignored() -> None:
    text = _read("fping_verbose_icmp_errors.txt")
    assert "ICMP Host Unreachable" in text
    pings = parse_fping_summary(text)
    assert list(pings) == [
        "2001:db8:5::2",
        "2001:db8:5::77",
        "10.9.9.2",
        "10.8.1.1",
        "2001:db8:6::1",
    ]
    assert pings["10.8.1.1"].loss_percent == 100.0
    assert pings["10.9.9.2"].rtt_avg == 0.106


def test_fping_malformed_summary_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="unrecognised summary line") as caught:
        parse_fping_summary("10.0.0.1 : xmt/rcv/%loss = 3/three/0%\n")
    assert caught.value.tool == "fping"


def test_fping_nothing_printed_is_no_result() -> None:
    assert parse_fping_summary("") == {}
