"""End to end: the ``wgssh`` connection plugin against the lab's real gateways and sshd.

Plain Nornir (InitNornir + SimpleInventory on the lab's written inventory) drives the
plugin by its entry-point name; the lab's sshd, SFTP server, sudo and namespaces are
the real ones. Every file written lives in a gateway's private /etc.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.task import Result, Task

from tests.lab.conftest import Lab
from wgfleet.connection import WgSsh, gateway_connection
from wgfleet.errors import ExitStatus
from wgfleet.inventory import load_nornir
from wgfleet.ssh_errors import (
    BecomeError,
    CommandError,
    CommandTimeoutError,
    ConnectionLostError,
    HostKeyChangedError,
    HostKeyRevokedError,
    RemoteFileError,
    UnknownHostKeyError,
    UnsafeValueError,
)

pytestmark = pytest.mark.lab

GATEWAYS = ("V1-1", "V1-2", "V2-1", "V2-2", "V3-1", "V3-2")
SUDO_GATEWAY = "V3-2"
TEST_DIR = "/etc/wgfleet-conn-test"
MiB = 1024 * 1024


def _inventory_files(lab: Lab) -> dict[str, str]:
    inventory = lab.topo.state_dir / "inventory"
    return {
        "host_file": str(inventory / "hosts.yaml"),
        "group_file": str(inventory / "groups.yaml"),
        "defaults_file": str(inventory / "defaults.yaml"),
    }


@pytest.fixture(scope="module")
def nornir(lab: Lab) -> Iterator[Nornir]:
    """A plain Nornir on the lab's inventory: nothing of wgfleet but the plugin's name."""
    nr = InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": 6}},
        inventory={"plugin": "SimpleInventory", "options": _inventory_files(lab)},
        logging={"enabled": False},
    )
    yield nr
    nr.close_connections(on_good=True, on_failed=True)


@pytest.fixture
def connect(lab: Lab) -> Iterator[Callable[..., WgSsh]]:
    """Open a wgssh connection by hand (closed after the test)."""
    opened: list[WgSsh] = []

    def _connect(
        name: str, *, known_hosts: Path | None = None, username: str = "root", **extras: Any
    ) -> WgSsh:
        gw = lab.gateway(name)
        ssh = WgSsh()
        settings = {
            "known_hosts": str(known_hosts or lab.topo.state_dir / "known_hosts"),
            "key_file": str(lab.topo.state_dir / "id_ed25519"),
            "host": name,
            **extras,
        }
        ssh.open(str(gw.mgmt_address), username, None, lab.topo.port, None, settings)
        opened.append(ssh)
        return ssh

    yield _connect
    for ssh in opened:
        ssh.close()


@pytest.fixture
def root(connect: Callable[..., WgSsh]) -> Iterator[WgSsh]:
    """A root connection to V1-1 with a clean test directory in its private /etc."""
    ssh = connect("V1-1")
    ssh.run(["rm", "-rf", "--", TEST_DIR])
    ssh.run(["mkdir", "-m", "0755", "--", TEST_DIR])
    yield ssh
    ssh.run(["rm", "-rf", "--", TEST_DIR])


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _lab_key(lab: Lab, name: str) -> str:
    """``type base64`` of a gateway's host key, as the lab's known_hosts records it."""
    address = f"[{lab.gateway(name).mgmt_address}]:{lab.topo.port}"
    for line in (lab.topo.state_dir / "known_hosts").read_text().splitlines():
        if line.startswith(address + " "):
            return line.split(" ", 1)[1]
    raise AssertionError(f"no key for {name}")


# --- Nornir, one connection per gateway ----------------------------------------------------


def test_a_plain_nornir_script_runs_on_every_gateway_over_one_connection_each(
    nornir: Nornir,
) -> None:
    def probe(task: Task) -> Result:
        ssh: WgSsh = task.host.get_connection("wgssh", task.nornir.config)
        seen: list[tuple[str, str]] = []
        for _ in range(25):
            source, hostname = ssh.run("echo $SSH_CONNECTION; hostname").stdout.splitlines()
            seen.append((source.split()[1], hostname))  # the client's TCP port, the host
        assert ssh.transport is not None and isinstance(ssh.transport.sock, socket.socket)
        return Result(
            host=task.host,
            result={
                "seen": set(seen),
                "transport": id(ssh.transport),
                "opened": ssh.session.connections_opened,
                "nodelay": ssh.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            },
        )

    first = nornir.run(task=probe)
    assert not first.failed, {h: r.exception for h, r in first.failed_hosts.items()}
    assert sorted(first) == list(GATEWAYS)
    again = nornir.run(task=probe)
    assert not again.failed
    for name in GATEWAYS:
        before, after = first[name][0].result, again[name][0].result
        assert len(before["seen"]) == 1  # 25 commands, one TCP connection
        assert next(iter(before["seen"]))[1] == name
        assert after["seen"] == before["seen"] and after["transport"] == before["transport"]
        assert after["opened"] == 1 and before["nodelay"] == 1


def test_exit_status_and_a_megabyte_on_each_stream(root: WgSsh) -> None:
    script = (
        f"head -c {MiB} /dev/zero | tr '\\0' e >&2; head -c {MiB} /dev/zero | tr '\\0' o; exit 7"
    )
    result = root.run(script, check=False)
    assert result.exit_status == 7 and not result.ok
    assert result.stderr == "e" * MiB and result.stdout == "o" * MiB
    assert result.command == script and result.duration > 0
    with pytest.raises(CommandError) as caught:
        root.run(["sh", "-c", "echo out; echo 'RTNETLINK answers: File exists' >&2; exit 2"])
    error = caught.value
    assert (error.host, error.returncode, error.stdout) == ("V1-1", 2, "out\n")
    assert (
        error.command
        == "sh -c 'echo out; echo '\"'\"'RTNETLINK answers: File exists'\"'\"' >&2; exit 2'"
    )
    assert str(error).endswith("exited with status 2; stderr:\nRTNETLINK answers: File exists")
    assert error.exit_status == ExitStatus.FAILED


def test_stdin_is_fed_while_output_is_drained(root: WgSsh) -> None:
    data = bytes(range(256)) * 12 * 1024  # 3 MiB, more than an SSH window
    result = root.run(["sh", "-c", "tee /dev/stderr | wc -c"], stdin=data)
    assert result.stdout.strip() == str(len(data)) and len(result.stderr) > 0
    assert root.run(["true"], stdin=data).ok  # a command that reads none of it
    assert root.run(["head", "-c", "3"], stdin=data).stdout == "\x00\x01\x02"


def test_a_command_timeout_fires_and_stops_the_remote_process(root: WgSsh) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError) as caught:
        root.run("echo started; sleep 31.25", timeout=1)
    assert time.monotonic() - started < 5
    assert caught.value.timeout == 1 and caught.value.stdout == "started\n"
    assert "did not finish within 1 s" in str(caught.value)
    _wait_until(lambda: not root.run(["pgrep", "-f", "[s]leep 31.25"], check=False).ok)
    assert root.run(["echo", "still usable"]).stdout == "still usable\n"
    assert root.session.connections_opened == 1


def test_a_lost_connection_is_replaced_before_the_next_command(root: WgSsh) -> None:
    port = root.run("echo $SSH_CONNECTION").stdout.split()[1]
    assert root.transport is not None
    root.transport.close()
    assert root.run("echo $SSH_CONNECTION").stdout.split()[1] != port
    assert root.session.connections_opened == 2


# --- host keys -----------------------------------------------------------------------------


def test_an_unknown_host_is_refused_with_its_own_error(
    connect: Callable[..., WgSsh], lab: Lab, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{lab.gateway('V1-2').mgmt_address}]:{lab.topo.port} x\n")
    with pytest.raises(UnknownHostKeyError) as caught:
        connect("V1-1", known_hosts=known_hosts)
    error = caught.value
    assert (error.host, error.address, error.port) == ("V1-1", "127.77.1.1", lab.topo.port)
    assert f"not in {known_hosts}" in str(error) and "wgfleet hosts trust V1-1" in str(error)
    assert error.fingerprint.startswith("SHA256:")
    with pytest.raises(UnknownHostKeyError):
        connect("V1-1", known_hosts=tmp_path / "missing")


def test_a_changed_host_key_is_refused_with_its_own_error(
    connect: Callable[..., WgSsh], lab: Lab, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    name = f"[{lab.gateway('V1-1').mgmt_address}]:{lab.topo.port}"
    known_hosts.write_text(f"# V1-1 with V1-2's key\n{name} {_lab_key(lab, 'V1-2')}\n")
    with pytest.raises(HostKeyChangedError) as caught:
        connect("V1-1", known_hosts=known_hosts)
    error = caught.value
    assert error.line == 2 and error.port == lab.topo.port
    assert f"than {known_hosts} line 2 — possible man-in-the-middle" in str(error)


def test_marker_lines_and_hashed_entries(
    connect: Callable[..., WgSsh], lab: Lab, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    real = (lab.topo.state_dir / "known_hosts").read_text()
    known_hosts.write_text(
        f"@cert-authority *.example.net {_lab_key(lab, 'V3-1')}\n"
        f"@revoked * {_lab_key(lab, 'V2-1')}\n{real}"
    )
    assert connect("V1-1", known_hosts=known_hosts).run(["hostname"]).stdout == "V1-1\n"
    with pytest.raises(HostKeyRevokedError) as caught:
        connect("V2-1", known_hosts=known_hosts)
    assert caught.value.line == 2
    hashed = tmp_path / "hashed"
    hashed.write_text(real)
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert str(lab.gateway("V3-1").mgmt_address) not in hashed.read_text()
    assert connect("V3-1", known_hosts=hashed).run(["hostname"]).stdout == "V3-1\n"


# --- files over SFTP, as root --------------------------------------------------------------


def _stat(ssh: WgSsh, path: str) -> str:
    return ssh.run(["stat", "-c", "%a %U:%G %s", "--", path]).stdout.strip()


def test_a_file_is_0600_from_birth_until_it_replaces_the_target(root: WgSsh) -> None:
    target = f"{TEST_DIR}/wg3.conf"
    with root.atomic_writer(target, mode=0o600) as writer:
        assert posixpath.dirname(writer.temp_path) == TEST_DIR  # same filesystem: rename works
        assert posixpath.basename(writer.temp_path).startswith(".wg3.conf.wgfleet-tmp-")
        # Nothing but the OPEN request has reached the server yet: its mode is the birth mode.
        assert _stat(root, writer.temp_path) == "600 root:root 0"
        writer.write(b"[Peer]\n" * 100_000)
        assert _stat(root, writer.temp_path).startswith("600 ")
        assert not root.file_exists(target)  # an SFTP request amid the pipelined writes
    assert writer.result is not None and writer.result.previous is None
    assert _stat(root, target) == f"600 root:root {7 * 100_000}"
    assert root.run(["ls", "-A", TEST_DIR]).stdout.split() == ["wg3.conf"]


def test_a_public_file_is_opened_up_only_after_it_is_complete(root: WgSsh) -> None:
    target = f"{TEST_DIR}/public.key"
    with root.atomic_writer(target, mode=0o644, group=5) as writer:
        writer.write("key=\n")
        assert _stat(root, writer.temp_path).startswith("600 root:root")
    assert _stat(root, target) == "644 root:tty 5"


def test_the_previous_version_is_kept_for_rollback(root: WgSsh) -> None:
    target = f"{TEST_DIR}/bird.conf"
    first = root.write_file(target, "one\n", mode=0o640)
    assert first.previous is None and first.size == 4
    second = root.write_file(target, "two\n", mode=0o600)
    assert second.previous == f"{target}.prev"
    third = root.write_file(target, "three\n")
    assert root.read_file(target) == b"three\n"
    assert root.read_file(f"{target}.prev") == b"two\n" and third.previous == second.previous
    assert _stat(root, f"{target}.prev") == "600 root:root 4"
    assert root.write_file(f"{TEST_DIR}/x", "x", keep_previous=False).previous is None
    assert sorted(root.run(["ls", "-A", TEST_DIR]).stdout.split()) == [
        "bird.conf",
        "bird.conf.prev",
        "x",
    ]


def test_a_transfer_cut_off_midway_leaves_the_target_untouched(root: WgSsh) -> None:
    target = f"{TEST_DIR}/wg4.conf"
    root.write_file(target, "old\n")
    lost = pytest.raises(ConnectionLostError, match="lost while trying to write")
    with lost, root.atomic_writer(target) as writer:
        writer.write(b"n" * MiB)
        assert root.transport is not None
        root.transport.close()
        writer.write(b"e" * MiB)
    assert root.read_file(target) == b"old\n"  # on a new connection
    assert root.session.connections_opened == 2
    names = root.run(["ls", "-A", TEST_DIR]).stdout.split()
    leftovers = [name for name in names if name != "wg4.conf"]
    # The dead link could not remove the temp: a hidden 0600 file that nothing reads.
    assert all(name.startswith(".wg4.conf.wgfleet-tmp-") for name in leftovers)
    for name in leftovers:
        assert _stat(root, f"{TEST_DIR}/{name}").startswith("600 ")
    new = f"{TEST_DIR}/new.conf"
    with pytest.raises(ConnectionLostError), root.atomic_writer(new) as writer:
        writer.write(b"n" * MiB)
        assert root.transport is not None
        root.transport.close()
        writer.write(b"e" * MiB)
    assert not root.file_exists(new)


def test_an_error_inside_the_block_removes_the_temp(root: WgSsh) -> None:
    target = f"{TEST_DIR}/wg5.conf"
    root.write_file(target, "old\n")
    failing = pytest.raises(RuntimeError, match="template failed")
    with failing, root.atomic_writer(target) as writer:
        writer.write("half")
        raise RuntimeError("template failed")
    assert root.read_file(target) == b"old\n"
    assert root.run(["ls", "-A", TEST_DIR]).stdout.split() == ["wg5.conf"]


def test_reading_checking_renaming_and_refusals(root: WgSsh) -> None:
    assert root.read_file(f"{TEST_DIR}/absent") is None
    assert not root.file_exists(f"{TEST_DIR}/absent")
    assert root.file_exists("/etc/hostname") and root.read_file("/etc/hostname") is not None
    root.write_file(f"{TEST_DIR}/live", "live\n")
    root.write_file(f"{TEST_DIR}/candidate", "candidate\n")
    assert root.rename_file(f"{TEST_DIR}/candidate", f"{TEST_DIR}/live") == f"{TEST_DIR}/live.prev"
    assert root.read_file(f"{TEST_DIR}/live") == b"candidate\n"
    assert root.read_file(f"{TEST_DIR}/live.prev") == b"live\n"
    with pytest.raises(RemoteFileError, match="no such file or directory") as caught:
        root.write_file(f"{TEST_DIR}/missing/dir/f", "x")
    assert caught.value.host == "V1-1"
    with pytest.raises(UnsafeValueError):
        root.write_file("relative/path", "x")


def test_commands_run_inside_a_network_namespace(root: WgSsh) -> None:
    namespace = "wgfc-test"
    root.run(["ip", "netns", "add", namespace])
    try:
        assert root.run(["ip", "-o", "link"], namespace=namespace).stdout.count(": lo:") == 1
        assert root.run("ip -o link | wc -l", namespace=namespace).stdout.strip() == "1"
        assert "eth0" in root.run(["ip", "-o", "link"]).stdout  # the default namespace
        result = root.run(["ip", "link", "show", "eth0"], namespace=namespace, check=False)
        assert result.command == f"ip netns exec {namespace} ip link show eth0"
        assert not result.ok and "does not exist" in result.stderr
    finally:
        root.run(["ip", "netns", "del", namespace])
    with pytest.raises(UnsafeValueError):
        root.run(["true"], namespace="x; reboot")


# --- sudo ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sudo_gateway(lab: Lab) -> Iterator[str]:
    """Users ``wgops`` (NOPASSWD sudo) and ``wgnopw`` (no sudo rule) on one gateway.

    The lab's sshd reads one AuthorizedKeysFile in the lab state directory, which only
    root can traverse; inside this gateway's own mount namespace its sshd_config is
    bind-mounted with a per-user file added. Everything lives in the gateway's private
    /etc and mount namespace and is undone afterwards.
    """
    if shutil.which("sudo") is None:
        message = "sudo is not installed on this machine (`make deps` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    state = lab.topo.state_dir
    setup = f"""set -e
chmod 0755 /etc  # the overlay root takes the mode of its upper directory (0700)
echo "127.0.1.1 {SUDO_GATEWAY}" >> /etc/hosts
for user in wgops wgnopw; do
  useradd --no-create-home --home-dir /tmp --shell /bin/sh "$user"
  install -D -m 0644 {state}/authorized_keys /etc/ssh/wgfleet-test/"$user"
done
sed 's|^AuthorizedKeysFile .*|& /etc/ssh/wgfleet-test/%u|' {state}/sshd_config \
  > /etc/ssh/wgfleet-test/sshd_config
mount --bind /etc/ssh/wgfleet-test/sshd_config {state}/sshd_config
echo 'wgops ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/wgfleet-test
chmod 0440 /etc/sudoers.d/wgfleet-test
"""
    lab.sh(SUDO_GATEWAY, setup)
    yield SUDO_GATEWAY
    lab.sh(
        SUDO_GATEWAY,
        f"""umount {state}/sshd_config; userdel wgops; userdel wgnopw
rm -rf /etc/ssh/wgfleet-test /etc/sudoers.d/wgfleet-test
sed -i '/^127.0.1.1 {SUDO_GATEWAY}$/d' /etc/hosts; chmod 0700 /etc""",
    )


def test_become_sudo_from_the_inventory_runs_every_command_as_root(
    lab: Lab, sudo_gateway: str, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    for file in ("hosts.yaml", "groups.yaml", "defaults.yaml"):
        (inventory / file).write_text((lab.topo.state_dir / "inventory" / file).read_text())
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    hosts[sudo_gateway]["username"] = "wgops"
    hosts[sudo_gateway]["data"]["gateway"]["become"] = "sudo"
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    nr = load_nornir(inventory).filter(name=sudo_gateway)

    def who(task: Task) -> Result:
        ssh = gateway_connection(task.host, task.nornir.config)
        assert ssh.become == "sudo" and ssh.host == sudo_gateway
        login = ssh.session.settings.username
        out = ssh.run("echo $(id -un) $SUDO_USER", namespace=None).stdout.split()
        inside = ssh.run(["id", "-un"], namespace=None).stdout.strip()
        return Result(host=task.host, result=(login, out, inside))

    try:
        result = nr.run(task=who)
        assert not result.failed, result[sudo_gateway].exception
        assert result[sudo_gateway][0].result == ("wgops", ["root", "wgops"], "root")
    finally:
        nr.close_connections()


def test_sudo_writes_reads_and_times_out_as_root(
    connect: Callable[..., WgSsh], sudo_gateway: str
) -> None:
    ssh = connect(sudo_gateway, username="wgops", become="sudo")
    target = f"{TEST_DIR}/wg1.conf"
    ssh.run(["mkdir", "-p", "-m", "0755", "--", TEST_DIR])
    try:
        assert ssh.write_file(target, "one\n").previous is None
        assert ssh.write_file(target, "two\n", mode=0o640, group=5).previous == f"{target}.prev"
        assert _stat(ssh, target) == "640 root:tty 4"
        assert _stat(ssh, f"{target}.prev") == "600 root:root 4"
        assert ssh.read_file(target) == b"two\n" and ssh.file_exists(target)
        assert ssh.read_file(f"{TEST_DIR}/absent") is None
        assert not ssh.file_exists(f"{TEST_DIR}/absent")
        assert ssh.run(["ls", "-A", TEST_DIR]).stdout.split() == ["wg1.conf", "wg1.conf.prev"]
        assert ssh.run("ls -A /tmp | grep -c wgfleet-stage || true").stdout.strip() == "0"
        with pytest.raises(RemoteFileError):
            ssh.write_file(f"{TEST_DIR}/no/such/dir", "x")
        with pytest.raises(CommandTimeoutError):
            ssh.run(["sleep", "32.5"], timeout=1)
        # Only root could stop it (the login user cannot signal root's processes).
        _wait_until(lambda: not ssh.run(["pgrep", "-f", "[s]leep 32.5"], check=False).ok)
    finally:
        ssh.run(["rm", "-rf", "--", TEST_DIR])


def test_sudo_asking_for_a_password_is_an_error_not_a_hang(
    connect: Callable[..., WgSsh], sudo_gateway: str
) -> None:
    ssh = connect(sudo_gateway, username="wgnopw", become="sudo")
    started = time.monotonic()
    with pytest.raises(BecomeError) as caught:
        ssh.run(["wg", "show"], check=False)
    assert time.monotonic() - started < 5
    assert caught.value.username == "wgnopw" and caught.value.command == "wg show"
    assert "wgnopw ALL=(root) NOPASSWD: ALL" in str(caught.value)
    with pytest.raises(BecomeError):
        ssh.write_file(f"{TEST_DIR}/x", "x")


# --- wgfleet hosts -------------------------------------------------------------------------


def test_hosts_trust_and_check(
    lab: Lab, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    for file in ("hosts.yaml", "groups.yaml"):
        (inventory / file).write_text((lab.topo.state_dir / "inventory" / file).read_text())
    defaults = yaml.safe_load((lab.topo.state_dir / "inventory" / "defaults.yaml").read_text())
    known_hosts = tmp_path / "known_hosts"
    defaults["connection_options"]["wgssh"]["extras"]["known_hosts"] = str(known_hosts)
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    inv = str(inventory)

    status, out, _ = run_cli("hosts", "check", "-i", inv)
    assert status == ExitStatus.UNREACHABLE and out.count("unknown key") == 6

    status, out, _ = run_cli("hosts", "trust", "-i", inv, "V1-1")  # stdin is no terminal
    assert status == ExitStatus.FAILED and "pass --yes" in out and not known_hosts.exists()

    status, out, _ = run_cli("hosts", "trust", "-i", inv, "--all", "--yes")
    assert status == ExitStatus.OK and out.count("added to") == 6
    assert known_hosts.read_text() == (lab.topo.state_dir / "known_hosts").read_text()
    status, out, _ = run_cli("hosts", "check", "-i", inv, "--format", "json")
    assert status == ExitStatus.OK and out.count('"ok"') == 6

    # V1-1 "reinstalled": the file now records another key for it.
    lines = known_hosts.read_text().splitlines()
    lines[0] = lines[0].split(" ", 1)[0] + " " + _lab_key(lab, "V1-2")
    known_hosts.write_text("\n".join(lines) + "\n")
    tampered = known_hosts.read_text()
    status, out, _ = run_cli("hosts", "check", "-i", inv, "V1-1", "V1-2")
    assert status == ExitStatus.UNREACHABLE
    assert "key changed" in out and out.count(" ok ") == 1
    status, out, _ = run_cli("hosts", "trust", "-i", inv, "--yes", "V1-1")
    assert status == ExitStatus.FAILED and "DIFFERENT key" in out and "--replace" in out
    assert known_hosts.read_text() == tampered
    address = f"{lab.gateway('V1-1').mgmt_address}:{lab.topo.port}"  # as errors show it
    status, out, _ = run_cli("hosts", "trust", "-i", inv, "--yes", "--replace", address)
    assert status == ExitStatus.OK and "replaced in" in out
    assert sorted(known_hosts.read_text().splitlines()) == sorted(
        (lab.topo.state_dir / "known_hosts").read_text().splitlines()
    )

    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    hosts["ghost"] = {"hostname": "127.77.9.9", "port": lab.topo.port}  # nothing listens
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    status, out, _ = run_cli("hosts", "check", "-i", inv)
    assert status == ExitStatus.UNREACHABLE
    assert out.count(" ok ") == 6 and "unreachable" in out.splitlines()[-1]
    status, _, err = run_cli("hosts", "trust", "-i", inv, "nosuch")
    assert status == ExitStatus.BAD_INPUT and "no such host" in err
