"""End to end: the lab's gateways are separate SSH hosts with private namespaces and files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from tests.lab.conftest import (
    LAB_NAME,
    LAB_PORT,
    SMALL_LAB_NAME,
    SMALL_LAB_PORT,
    STATE_ROOT,
    Lab,
    leftovers,
    require_lab_environment,
)
from wgfleet.lab import manager
from wgfleet.lab.topology import build_topology

pytestmark = pytest.mark.lab


def test_every_gateway_answers_over_ssh_with_strict_host_keys(lab: Lab) -> None:
    for gw in lab.topo.gateways:
        _, out, _ = lab.sh(gw.name, "hostname; ip -j addr show dev eth0; ip -j link show dev lan0")
        lines = out.splitlines()
        assert lines[0] == gw.name
        eth0 = json.loads(lines[1])[0]
        assert str(gw.endpoint.ip) in [a["local"] for a in eth0["addr_info"]]
        lan0 = json.loads(lines[2])[0]
        assert lan0["operstate"] == "DOWN"  # as on a freshly installed gateway
        _, addrs, _ = lab.sh(gw.name, "ip -j addr show dev lan0")
        assert json.loads(addrs)[0]["addr_info"] == []


def test_gateways_reach_each_other_only_on_the_internet_bridge(lab: Lab) -> None:
    status, _, _ = lab.sh("V1-1", "ping -6 -c1 -W2 2001:db8:3::2", check=False)
    assert status == 0
    # The site LAN is not reachable from the default namespace: only through the VPN.
    status, _, _ = lab.sh("V1-1", "ping -6 -c1 -W1 2001:db8:a3::1", check=False)
    assert status != 0


def test_unknown_and_changed_host_keys_are_refused(lab: Lab, tmp_path: Path) -> None:
    gw = lab.gateway("V1-1")
    key = str(lab.topo.state_dir / "id_ed25519")

    def connect(known_hosts: Path) -> None:
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                str(gw.mgmt_address), port=lab.topo.port, username="root",
                key_filename=key, look_for_keys=False, allow_agent=False, timeout=5,
            )  # fmt: skip
        finally:
            client.close()

    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(empty)
    # V1-1's address with V1-2's key: each gateway has its own host key.
    other = (lab.topo.state_dir / "hosts" / "V1-2" / "ssh_host_ed25519_key.pub").read_text()
    wrong = tmp_path / "wrong"
    wrong.write_text(f"[{gw.mgmt_address}]:{lab.topo.port} {' '.join(other.split()[:2])}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(wrong)


def test_namespaces_files_and_tunnels_are_private_to_each_gateway(lab: Lab) -> None:
    # wireguard-go's daemon may still be setting the TUN device up when `setsid -w`
    # returns: moving the link then kills it. `wg show` answers only once it is ready.
    # Names of their own, so that the test holds whatever state wgfleet left behind.
    setup = (
        "ip netns add isolation && setsid -w wireguard-go wg90 </dev/null >/dev/null 2>&1 && "
        "wg show wg90 >/dev/null && "
        "ip link set netns isolation dev wg90 && mkdir -p /etc/wireguard && "
        "echo {name} > /etc/wireguard/isolation && echo {name} > /tmp/isolation"
    )
    try:
        # The same names on two gateways of one site: no clash.
        lab.sh("V1-1", setup.format(name="V1-1"))
        lab.sh("V1-2", setup.format(name="V1-2"))
        for name in ("V1-1", "V1-2"):
            _, out, _ = lab.sh(
                name,
                "ip netns list; ls /run/wireguard; cat /etc/wireguard/isolation /tmp/isolation; "
                "ip -n isolation -br link show wg90; pgrep -fc 'wireguard-go wg90'",
            )
            assert "isolation" in out and "wg90.sock" in out and out.count(name) == 2
            assert out.split()[-1] == "1"
        _, out, _ = lab.sh(
            "V2-1",
            "ip netns list; ls -A /run/wireguard; cat /etc/wireguard/isolation 2>/dev/null; "
            "ls -A /tmp; pgrep -fc 'wireguard-go wg90' || true; ip -br link",
        )
        assert "isolation" not in out
        assert "wg90" not in out
        assert "V1-" not in out
        # Nothing leaked to the machine itself.
        assert not Path("/run/wireguard/wg90.sock").exists()
        assert (
            "isolation"
            not in subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True
            ).stdout.split()
        )
    finally:
        for name in ("V1-1", "V1-2"):
            lab.sh(name, "ip -n isolation link del wg90; ip netns del isolation; "
                   "rm -f /etc/wireguard/isolation /tmp/isolation", check=False)  # fmt: skip


def test_reboot_empties_run_and_keeps_etc(lab: Lab) -> None:
    gw = "V2-2"
    lab.sh(
        gw,
        "ip netns add rebootns && ip -d link show dev lan0 >/dev/null 2>&1 && "
        "ip link set netns rebootns dev lan0 || true; "
        "setsid -w wireguard-go wg91 </dev/null >/dev/null 2>&1 && "
        "mkdir -p /etc/wireguard && echo kept > /etc/wireguard/reboot && echo gone > /run/x",
    )
    before = manager.pid_of(LAB_NAME, gw, STATE_ROOT)
    lab.drop_clients()
    manager.reboot(LAB_NAME, gw, STATE_ROOT)
    after = manager.pid_of(LAB_NAME, gw, STATE_ROOT)
    assert before is not None and after is not None and before != after
    _, out, _ = lab.sh(
        gw,
        "ls -A /run; echo --; ls -A /run/netns /run/wireguard; echo --; "
        "cat /etc/wireguard/reboot; pgrep wireguard-go || echo no-wg; ip -br link show lan0",
    )
    run_listing, netns_and_wg, rest = out.split("--\n")
    assert "x" not in run_listing.split()
    assert netns_and_wg.strip().splitlines() == ["/run/netns:", "", "/run/wireguard:"]
    assert rest.splitlines()[0] == "kept"
    assert "no-wg" in rest
    assert rest.splitlines()[-1].startswith("lan0")  # a fresh site-facing interface
    lab.sh(gw, "rm -f /etc/wireguard/reboot")


def test_up_again_changes_nothing(lab: Lab) -> None:
    pids = {gw.name: manager.pid_of(LAB_NAME, gw.name, STATE_ROOT) for gw in lab.topo.gateways}
    known_hosts = (lab.topo.state_dir / "known_hosts").read_text()
    manager.up(lab.topo)
    assert {
        gw.name: manager.pid_of(LAB_NAME, gw.name, STATE_ROOT) for gw in lab.topo.gateways
    } == pids
    assert (lab.topo.state_dir / "known_hosts").read_text() == known_hosts


def test_lab_status_reports_every_gateway(lab: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    status, out, _ = run_cli(
        "lab", "status", "--name", LAB_NAME, "--state-root", str(STATE_ROOT), "--format", "json"
    )
    assert status == 0
    rows = json.loads(out)
    assert [r["gateway"] for r in rows] == [gw.name for gw in lab.topo.gateways]
    assert all(r["reachable"] and r["hostname"] == r["gateway"] for r in rows)


def test_lab_inventory_matches_the_lab(lab: Lab) -> None:
    import yaml

    hosts = yaml.safe_load((lab.topo.state_dir / "inventory" / "hosts.yaml").read_text())
    assert sorted(hosts) == sorted(gw.name for gw in lab.topo.gateways)
    assert hosts["V3-2"]["hostname"] == "127.77.3.2"
    assert hosts["V3-2"]["port"] == LAB_PORT


# --- a second, small lab: teardown, partial builds and bad input ---------------------------

SMALL = SMALL_LAB_NAME
SMALL_PORT = SMALL_LAB_PORT


def _wgfleet(*args: str, env: dict[str, str] | None = None, user: str | None = None):  # type: ignore[no-untyped-def]
    cmd = [sys.executable, "-m", "wgfleet", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd="/")


def test_down_removes_everything() -> None:
    require_lab_environment()
    inotify_before = Path("/proc/sys/fs/inotify/max_user_instances").read_text()
    try:
        result = _wgfleet("lab", "up", "--name", SMALL, "--port", str(SMALL_PORT),
                          "--sites", "2", "--gateways", "1")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert leftovers(SMALL) != []
    finally:
        result = _wgfleet("lab", "down", "--name", SMALL)
    assert result.returncode == 0, result.stderr
    assert leftovers(SMALL) == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.77.1.1", SMALL_PORT)) != 0
    assert Path("/proc/sys/fs/inotify/max_user_instances").read_text() == inotify_before
    again = _wgfleet("lab", "down", "--name", SMALL)
    assert again.returncode == 0
    assert "nothing to remove" in again.stdout


def test_failed_up_leaves_nothing_behind() -> None:
    require_lab_environment()
    topo = build_topology(2, 1, name=SMALL, port=SMALL_PORT, state_root=STATE_ROOT)
    # A file where a gateway's directory must go makes `up` fail after the network is built.
    (topo.state_dir / "hosts").mkdir(parents=True)
    (topo.state_dir / "hosts" / "V2-1").write_text("in the way\n")
    try:
        with pytest.raises(OSError):
            manager.up(topo)
        assert leftovers(SMALL) == []
    finally:
        manager.down(SMALL, STATE_ROOT)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sites", "0"], "--sites: must be 1..99, got 0"),
        (["--sites", "1"], "a VPN needs at least 2 sites"),
        (["--gateways", "9"], "--gateways: must be 1..8 gateways per site, got 9"),
        (["--name", "Bad_Name"], "--name: must be 1-8 lowercase letters/digits"),
        (["--port", "80"], "--port: must be 1024..65535, got 80"),
    ],
)
def test_bad_lab_sizes_are_refused(args: list[str], message: str) -> None:
    result = _wgfleet("lab", "up", "--name", SMALL, *args)
    assert result.returncode == 64
    assert message in result.stderr
    assert leftovers(SMALL) == []


def test_missing_tool_is_named_with_its_package() -> None:
    require_lab_environment()
    env = dict(os.environ, PATH="/nonexistent")
    result = _wgfleet("lab", "up", "--name", SMALL, "--port", str(SMALL_PORT), env=env)
    assert result.returncode == 69
    assert "wireguard-go" in result.stderr and "apt-get install" in result.stderr
    assert leftovers(SMALL) == []


def test_not_root_is_refused() -> None:
    require_lab_environment()
    result = _wgfleet("lab", "up", "--name", SMALL, "--port", str(SMALL_PORT), user="65534")
    assert result.returncode == 69, result.stderr
    assert "needs root" in result.stderr
    assert leftovers(SMALL) == []


def test_port_in_use_is_refused() -> None:
    require_lab_environment()
    with socket.socket() as squatter:
        squatter.bind(("127.77.1.1", SMALL_PORT))
        squatter.listen(1)
        result = _wgfleet("lab", "up", "--name", SMALL, "--port", str(SMALL_PORT))
    assert result.returncode == 69
    assert f"port {SMALL_PORT} on 127.77.1.1 is in use" in result.stderr
    assert leftovers(SMALL) == []
