"""parse_gather on the gather script's real output from the lab's converged V1-1, and variants."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from wgfleet.commands import MARK
from wgfleet.facts import GatewayFacts, parse_gather, parse_verify, split_sections
from wgfleet.parsers import ParseError
from wgfleet.paths import GatewayPaths

DATA = Path(__file__).parent / "data"
CONVERGED = (DATA / "gather_v1-1_converged.txt").read_text(encoding="utf-8")
V1_1 = "S0ONR02RauunuYoOolQsLrHnTheIFJL6/gzmpIvnjWs="
PEERS = {
    "wg3": ("MuVi7Ul+EClRx/6UVlq77lI9vbobH5ZltsVg6t3yz3c=", "[2001:db8:2::1]:5801"),
    "wg4": ("Fjerxdv7RtI9xA+aQr/YKucQSHkOulpvFMG9uOzbHFU=", "[2001:db8:2::2]:5801"),
    "wg5": ("0RyDCVG2YvALkFpk+Z9k4M0js62TL8yGK7AazyZR6V4=", "[2001:db8:3::1]:5801"),
    "wg6": ("df9Gdtl5wACUxfHAJcoMHkiU08+ncGyMeYHTm1Rz7AI=", "[2001:db8:3::2]:5801"),
}
PATHS = GatewayPaths()


@pytest.fixture(scope="module")
def facts() -> GatewayFacts:
    return parse_gather(CONVERGED)


def _with_section(name: str, body: str, text: str = CONVERGED) -> str:
    """The converged capture with one section's body replaced."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.startswith(MARK):
            skipping = line == f"{MARK}{name}"
            out.append(line)
            if skipping and body:
                out.append(body)
            continue
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def test_identity(facts: GatewayFacts) -> None:
    assert facts.hostname == "V1-1"
    assert facts.public_key == V1_1
    assert facts.kernel_wireguard is False


def test_namespaces(facts: GatewayFacts) -> None:
    assert facts.namespaces == frozenset({"private"})
    assert facts.has_namespace("private")
    assert not facts.has_namespace("other")


def test_links_of_both_namespaces(facts: GatewayFacts) -> None:
    assert set(facts.links) == {"lo", "eth0"}
    assert set(facts.private_links) == {"lo", "lan0", "wg3", "wg4", "wg5", "wg6"}
    assert set(facts.private_links["lan0"].addresses) == {
        ipaddress.ip_interface("2001:db8:a1::11/64"),
        ipaddress.ip_interface("10.0.1.11/24"),
    }
    for n, name in enumerate(("wg3", "wg4", "wg5", "wg6")):
        assert set(facts.private_links[name].addresses) == {
            ipaddress.ip_interface(f"2001:db8:ff::{2 * n:x}/127"),
            ipaddress.ip_interface(f"169.254.1.{2 * n}/31"),
        }


def test_wireguard_interfaces_have_one_peer_each_and_no_private_key(facts: GatewayFacts) -> None:
    assert sorted(facts.wireguard) == ["wg3", "wg4", "wg5", "wg6"]
    for name, (peer_key, endpoint) in PEERS.items():
        interface = facts.wireguard[name]
        assert interface.public_key == V1_1
        assert interface.has_private_key is True  # "(hidden)": set, but not sent
        assert interface.listen_port == 5800 + int(name[2:])
        (peer,) = interface.peers
        assert (peer.public_key, peer.endpoint) == (peer_key, endpoint)
        assert peer.allowed_ips == ("0.0.0.0/0", "::/0")
        assert peer.latest_handshake > 0
    assert "(hidden)" in facts.raw_sections["private_wg"]
    assert "PrivateKey" not in repr(facts)


def test_sysctls_all_enabled(facts: GatewayFacts) -> None:
    assert facts.sysctls == {
        "net.ipv4.ip_forward": "1",
        "net.ipv6.conf.all.forwarding": "1",
        "net.ipv6.conf.all.keep_addr_on_down": "1",
        "net.ipv6.conf.default.keep_addr_on_down": "1",
    }


def test_peer_files_listed(facts: GatewayFacts) -> None:
    assert facts.peer_files == frozenset(
        {"private.key", "public.key", "wg3.conf", "wg4.conf", "wg5.conf", "wg6.conf"}
    )


def test_file_contents_of_peer_files_and_bird_config(facts: GatewayFacts) -> None:
    peer_paths = [PATHS.peer_file(name) for name in PEERS]
    assert set(facts.files) == {*peer_paths, PATHS.bird_config}
    for name, (peer_key, endpoint) in PEERS.items():
        content = facts.files[PATHS.peer_file(name)]
        assert content is not None
        assert content.startswith(f"# Managed by wgfleet: V1-1 {name} towards ")
        assert content.endswith("PersistentKeepalive = 0\n")
        assert f"PublicKey = {peer_key}\n" in content
        assert f"Endpoint = {endpoint}\n" in content
        assert f"ListenPort = {5800 + int(name[2:])}\n" in content
        assert "PrivateKey =" not in content
    bird = facts.files[PATHS.bird_config]
    assert bird is not None
    assert bird.startswith("# Managed by wgfleet: BIRD 2 for V1-1")
    assert bird.endswith("}\n")
    assert bird.count("protocol bgp IBGP_") == 8
    assert MARK not in bird


def test_bird_running_and_management_interface(facts: GatewayFacts) -> None:
    assert facts.bird_running is True
    assert facts.bird_status.startswith("BIRD 2.0.12 ready.")
    assert facts.bird_status.endswith("Daemon is up and running")
    assert facts.mgmt_interface == "lo"  # the lab's SSH goes to 127.77.1.1


def test_raw_sections_are_kept_but_not_compared_or_shown(facts: GatewayFacts) -> None:
    assert set(facts.raw_sections) >= {"hostname", "wg", "private_wg", "bird", "mgmt", "end"}
    assert "raw_sections" not in repr(facts)
    assert parse_gather(CONVERGED) == facts


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(CONVERGED.replace(f"{MARK}end\n", ""), id="no-end-marker"),
        pytest.param(CONVERGED[: len(CONVERGED) // 2], id="cut-in-the-middle"),
        pytest.param("", id="nothing"),
        pytest.param("sudo: a password is required\n", id="not-the-script"),
    ],
)
def test_truncated_output_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="truncated") as caught:
        parse_gather(text)
    assert caught.value.tool == "gather script"


def test_gateway_without_namespace_and_without_anything_of_ours() -> None:
    text = CONVERGED
    for name in ("netns", "private_links", "private_wg", "sysctl", "peer_files", "pubkey"):
        text = _with_section(name, "", text)
    for path in [*(PATHS.peer_file(n) for n in PEERS), PATHS.bird_config]:
        text = _with_section(f"file {path}", "", text)
    text = _with_section(
        "bird",
        "Unable to connect to server control socket (/run/bird/wgfleet-private.ctl): "
        "No such file or directory",
        text,
    )
    facts = parse_gather(text)
    assert facts.namespaces == frozenset()
    assert not facts.has_namespace("private")
    assert facts.private_links == {}
    assert facts.public_key is None
    assert facts.sysctls == {}
    assert facts.peer_files == frozenset()
    assert set(facts.files.values()) == {None}  # listed, but missing on the gateway
    assert facts.bird_running is False
    # wireguard-go's UAPI sockets are visible from the default namespace as well.
    assert sorted(facts.wireguard) == ["wg3", "wg4", "wg5", "wg6"]


def test_kernel_wireguard_and_ssh_over_a_site_interface() -> None:
    text = _with_section("kernel_wg", "yes")
    text = _with_section(
        "mgmt", '[{"dst":"192.0.2.10","gateway":"10.0.1.1","dev":"lan0","flags":[]}]', text
    )
    facts = parse_gather(text)
    assert facts.kernel_wireguard is True
    assert facts.mgmt_interface == "lan0"


@pytest.mark.parametrize("body", ["", "not json", "[]"])
def test_unknown_management_interface(body: str) -> None:
    assert parse_gather(_with_section("mgmt", body)).mgmt_interface is None


def test_garbage_namespace_list_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="namespaces") as caught:
        parse_gather(_with_section("netns", "private (id: 2)"))
    assert caught.value.tool == "ip -j netns list"


def test_garbage_links_are_a_parse_error() -> None:
    with pytest.raises(ParseError) as caught:
        parse_gather(_with_section("private_links", "Cannot open network namespace"))
    assert caught.value.tool == "ip -j link"


def test_unscrubbed_dump_never_reaches_the_facts() -> None:
    # A gateway whose scrub failed would send the key; the parser still drops it.
    key = "EGy4p/TxLAGHu3EZzkVNdZlU2gyu/1LBrq1JkQgVkG4="
    private_wg = split_sections(CONVERGED)["private_wg"].replace("(hidden)", key)
    facts = parse_gather(_with_section("private_wg", private_wg))
    assert all(interface.has_private_key for interface in facts.wireguard.values())
    assert key not in repr(facts)
    assert key not in repr(facts.wireguard)


def test_an_empty_file_reads_as_missing() -> None:
    path = PATHS.peer_file("wg3")
    assert parse_gather(_with_section(f"file {path}", "")).files[path] is None


def test_a_file_keeps_its_blank_lines_including_a_final_one() -> None:
    path = PATHS.peer_file("wg3")
    # cat printed "a\n\nb\n\n": the section holds "a", "", "b", "" before the next marker.
    assert parse_gather(_with_section(f"file {path}", "a\n\nb\n")).files[path] == "a\n\nb\n\n"


# --- parse_verify (the verification collector's script) --------------------------------


def test_parse_verify_on_the_converged_capture() -> None:
    text = (DATA / "verify_v1-1_converged.txt").read_text(encoding="utf-8")
    obs = parse_verify("V1-1", text)
    assert obs.gateway == "V1-1"
    assert obs.reachable
    assert obs.namespace is True
    assert obs.collected_at == 1795646929.0
    assert sorted(obs.wireguard) == ["wg3", "wg4", "wg5", "wg6"]
    assert obs.udp_ports == frozenset({5803, 5804, 5805, 5806})
    assert obs.bird is not None
    sessions = {name: p for name, p in obs.bird.items() if p.proto == "BGP"}
    assert len(sessions) == 8
    assert all(p.established for p in sessions.values())
    widths = {str(r.destination): r.width for r in obs.routes}
    assert widths == {
        "2001:db8:a2::/64": 2,
        "2001:db8:a3::/64": 2,
        "10.0.2.0/24": 2,
        "10.0.3.0/24": 2,
    }
    assert len(obs.pings) == 12
    assert all(p.loss_percent == 0.0 for p in obs.pings.values())


def test_parse_verify_without_bird() -> None:
    text = (DATA / "verify_v1-1_converged.txt").read_text(encoding="utf-8")
    bird = split_sections(text)["bird"]
    missing = (DATA / "birdc_socket_missing.txt").read_text(encoding="utf-8").splitlines()[0]
    obs = parse_verify("V1-1", text.replace(bird, missing))
    assert obs.bird is None
    assert obs.bird_error.startswith("Unable to connect to server control socket")
