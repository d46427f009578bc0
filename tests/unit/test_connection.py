"""Unit tests of the SSH layer's pure parts: known_hosts, command building, sudo, settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgfleet import remote
from wgfleet.connection import settings_from
from wgfleet.errors import ExitStatus
from wgfleet.known_hosts import HostKey, KnownHosts, host_name, hosts_field_matches, record_host_key
from wgfleet.ssh import SshSession, SshSettings
from wgfleet.ssh_errors import (
    BecomeError,
    CommandError,
    ConnectionSettingsError,
    HostKeyChangedError,
    UnknownHostKeyError,
    UnreachableError,
    UnsafeValueError,
)


def _key(seed: int, key_type: str = "ssh-ed25519") -> HostKey:
    """A syntactically valid public key blob (type string + 32 bytes)."""
    kind = key_type.encode()
    body = hashlib.sha256(str(seed).encode()).digest()
    blob = len(kind).to_bytes(4, "big") + kind + len(body).to_bytes(4, "big") + body
    return HostKey(key_type, blob)


def _hashed(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


K1, K2, K3 = _key(1), _key(2), _key(3)
V11 = host_name("127.77.1.1", 2222)


# --- known_hosts ---------------------------------------------------------------------------


def test_host_name_brackets_only_non_standard_ports() -> None:
    assert host_name("10.0.0.1", 22) == "10.0.0.1"
    assert host_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"
    assert host_name("GW.Example.NET", 22) == "gw.example.net"
    assert host_name("2001:db8::1", 2222) == "[2001:db8::1]:2222"


def test_marker_lines_do_not_break_loading_and_revoked_keys_are_refused() -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            f"@cert-authority *.example.net {K3.line('x').split(' ', 1)[1]}",
            f"@revoked * {K2.key_type} {K2.base64}",
            K1.line(V11),
            K2.line("[127.77.1.2]:2222"),
            "garbage line",
            "[127.77.1.3]:2222 ssh-ed25519 not-base64!",
            "@unknown-marker * ssh-ed25519 " + K1.base64,
        ]
    )
    known = KnownHosts.parse(text, "kh")
    assert [e.line for e in known.entries] == [3, 4, 5, 6]
    assert known.skipped == (7, 8, 9)
    assert known.check(V11, K1).status == "ok"
    # K2 is recorded for V1-2, but revoked everywhere: refused.
    assert known.check("[127.77.1.2]:2222", K2).status == "revoked"
    assert known.check("[127.77.1.2]:2222", K2).line == 4
    # A @cert-authority line is no host key of its own.
    assert known.check("gw.example.net", K3).status == "unknown"


def test_check_tells_unknown_from_changed_and_names_the_line() -> None:
    rsa = _key(9, "ssh-rsa")
    known = KnownHosts.parse(f"{rsa.line(V11)}\n{K1.line(V11)}\n{K2.line('other')}\n")
    assert known.check(V11, K1).status == "ok"
    changed = known.check(V11, K3)
    assert (changed.status, changed.line) == ("changed", 2)  # the line of the same type
    assert known.check(V11, _key(10, "ssh-rsa")).line == 1
    assert known.check("[127.77.1.1]:22", K1).status == "unknown"  # port matters
    assert known.check("127.77.1.1", K1).status == "unknown"
    assert known.key_types(V11) == ["ssh-rsa", "ssh-ed25519"]


def test_hashed_entries_match_only_their_host() -> None:
    known = KnownHosts.parse(f"{_hashed(V11)} {K1.key_type} {K1.base64}\n")
    assert known.check(V11, K1).status == "ok"
    assert known.check(V11, K2).status == "changed"
    assert known.check("[127.77.1.1]:2223", K1).status == "unknown"


def test_hashed_entries_written_by_ssh_keygen_match(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(K1.line(V11) + "\n" + K2.line("gw2.example.net,10.1.1.1") + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    known = KnownHosts.load(path)
    assert all(e.hosts.startswith("|1|") for e in known.entries)
    assert known.check(V11, K1).status == "ok"
    assert known.check("10.1.1.1", K2).status == "ok"
    assert known.check("gw2.example.net", K2).status == "ok"


def test_patterns_wildcards_and_negation() -> None:
    assert hosts_field_matches("gw*.example.net,!gw9.example.net", "gw1.example.net")
    assert not hosts_field_matches("gw*.example.net,!gw9.example.net", "gw9.example.net")
    assert hosts_field_matches("[127.77.?.1]:2222", V11)
    assert not hosts_field_matches("[127.77.?.1]:2222", "[127.77.10.1]:2222")
    assert hosts_field_matches("GW1.EXAMPLE.NET", "gw1.example.net")
    assert not hosts_field_matches("|1|bad|salt", V11)


def test_fingerprint_is_the_one_ssh_keygen_prints(tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    key_type, b64 = (tmp_path / "k.pub").read_text().split()[:2]
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "k.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert HostKey.from_base64(key_type, b64).fingerprint == printed


def test_a_blob_of_another_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not a ssh-rsa key"):
        HostKey.from_base64("ssh-rsa", K1.base64)


def test_record_host_key_adds_and_replaces_keeping_markers_and_other_hosts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sub" / "known_hosts"
    record_host_key(path, V11, K1)
    assert path.read_text() == K1.line(V11) + "\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.parent.stat().st_mode & 0o777 == 0o700
    revoked = f"@revoked * {K3.key_type} {K3.base64}"
    path.write_text(
        f"{revoked}\n{_hashed(V11)} {K1.key_type} {K1.base64}\n{K2.line('other')}\n{K1.line(V11)}\n"
    )
    path.chmod(0o600)
    record_host_key(path, V11, K2, replace=True)
    lines = path.read_text().splitlines()
    assert lines == [revoked, K2.line("other"), K2.line(V11)]
    assert path.stat().st_mode & 0o777 == 0o600  # mode kept
    assert not [p for p in path.parent.iterdir() if p.name != "known_hosts"]  # no temp left


def test_host_key_errors_are_distinct_and_say_what_to_do() -> None:
    where = {"host": "V1-1", "address": "127.77.1.1", "port": 2222, "known_hosts": "/kh"}
    unknown = UnknownHostKeyError(key_type="ssh-ed25519", fingerprint="SHA256:x", **where)
    changed = HostKeyChangedError(line=7, key_type="ssh-ed25519", fingerprint="SHA256:y", **where)
    assert not isinstance(unknown, HostKeyChangedError)
    assert not isinstance(changed, UnknownHostKeyError)
    assert "not in /kh" in str(unknown) and "`wgfleet hosts trust V1-1`" in str(unknown)
    assert "different key" in str(changed) and "/kh line 7" in str(changed)
    assert "man-in-the-middle" in str(changed) and "reinstalled" in str(changed)
    assert (changed.host, changed.address, changed.port, changed.line) == (
        "V1-1",
        "127.77.1.1",
        2222,
        7,
    )
    assert unknown.exit_status == changed.exit_status == ExitStatus.UNREACHABLE


# --- command building ----------------------------------------------------------------------


def test_argv_words_are_quoted_once() -> None:
    argv = ["printf", "%s\\n", "a b", "it's", "$(reboot)", "; rm -rf /", ""]
    line = remote.command_line(argv)
    assert shlex.split(line) == argv
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == argv[2:]


@given(st.lists(st.text(st.characters(exclude_characters="\0")), min_size=1, max_size=5))
def test_any_argv_survives_the_shell(words: list[str]) -> None:
    assert shlex.split(remote.command_line(["echo", *words])) == ["echo", *words]


def test_namespace_wrapping_for_argv_and_scripts() -> None:
    assert remote.command_line(["wg", "show"], namespace="private") == (
        "ip netns exec private wg show"
    )
    script = "wg show | grep -c peer"
    assert shlex.split(remote.command_line(script, namespace="private")) == [
        "ip",
        "netns",
        "exec",
        "private",
        "sh",
        "-c",
        script,
    ]
    assert remote.command_line(script) == script


@pytest.mark.parametrize(
    "name", ["", "a b", "../x", "x/y", "-rf", ".hidden", "a;b", "$(x)", "n" * 65, 3]
)
def test_bad_namespace_names_are_refused_before_anything_runs(name: object) -> None:
    with pytest.raises(UnsafeValueError) as caught:
        remote.command_line(["true"], namespace=name)  # type: ignore[arg-type]
    assert caught.value.exit_status == ExitStatus.BAD_INPUT


def test_interface_names_are_limited_to_15_characters() -> None:
    assert remote.interface_name("wg18") == "wg18"
    with pytest.raises(UnsafeValueError, match="longer than 15"):
        remote.interface_name("w" * 16)


@pytest.mark.parametrize(
    "path", ["etc/x", "/etc/../x", "/etc//x", "/etc/x/", "/", "/etc/x\ny", "/./x", 5]
)
def test_bad_remote_paths_are_refused(path: object) -> None:
    with pytest.raises(UnsafeValueError):
        remote.remote_path(path)


def test_root_runs_lines_as_they_are_and_sudo_wraps_them_in_sh_c() -> None:
    line = remote.command_line(["ip", "netns", "exec", "private", "wg", "show", "it's"])
    assert remote.become_line(line, "root") == line
    wrapped = remote.become_line(line, "sudo")
    assert wrapped.startswith("sudo -n -- sh -c ")
    assert shlex.split(wrapped) == ["sudo", "-n", "--", "sh", "-c", line]
    with pytest.raises(UnsafeValueError):
        remote.become_line(line, "doas")  # type: ignore[arg-type]


def test_build_bounds_the_command_on_the_gateway_inside_sudo() -> None:
    shown, wire = remote.build(["sleep", "9"], namespace="private", seconds=2.5, become="sudo")
    assert shown == "ip netns exec private sleep 9"
    inner = shlex.split(wire)
    assert inner[:5] == ["sudo", "-n", "--", "sh", "-c"]
    assert shlex.split(inner[5]) == [
        "timeout",
        "-k",
        str(remote.KILL_AFTER),
        "2.5",
        *shlex.split(shown),
    ]
    shown, wire = remote.build("echo $HOME | wc -c", seconds=60, become="root")
    assert shown == "echo $HOME | wc -c"
    assert shlex.split(wire) == ["timeout", "-k", "5", "60", "sh", "-c", shown]


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_timeouts_are_refused(seconds: object) -> None:
    with pytest.raises(UnsafeValueError):
        remote.deadline_line(["true"], seconds)  # type: ignore[arg-type]


def test_a_timed_out_command_is_stopped_by_timeout_on_the_gateway() -> None:
    line = remote.deadline_line("sleep 5; echo late", 0.2)
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    assert done.returncode in remote.TIMEOUT_STATUSES
    assert done.stdout == "" and time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("status", "stderr", "refused"),
    [
        (1, "sudo: a password is required\n", True),
        (1, "sudo: a terminal is required to read the password\n", True),
        (1, "wgops is not in the sudoers file.  This incident will be reported.\n", False),
        (1, "sudo: wgops is not in the sudoers file.  This incident will be reported.\n", True),
        (127, "sh: 1: sudo: not found\n", True),
        (0, "sudo: unable to resolve host V1-1: Name or service not known\n", False),
        (1, "RTNETLINK answers: File exists\n", False),
        (2, "sudo: a password is required\n", False),
    ],
)
def test_sudo_refusals_are_told_from_command_failures(
    status: int, stderr: str, refused: bool
) -> None:
    assert remote.sudo_refusal(status, stderr) is refused


def test_become_error_tells_how_to_grant_passwordless_sudo() -> None:
    error = BecomeError(
        host="V1-1",
        command="wg show",
        returncode=1,
        stderr="sudo: a password is required\n",
        username="wgops",
    )
    assert isinstance(error, CommandError)
    assert "wgops ALL=(root) NOPASSWD: ALL" in str(error) and "never" in str(error)


def test_command_error_keeps_wgfleets_exit_status_and_the_remote_one_apart() -> None:
    error = CommandError(host="V1-1", command="false", returncode=7, stderr="a\nb\n" * 50)
    assert error.exit_status == ExitStatus.FAILED and error.returncode == 7
    assert str(error).startswith("V1-1: `false` exited with status 7; stderr:\n")
    assert len(str(error)) < 200  # only the last lines of stderr


def _sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


def test_sudo_install_script_replaces_atomically_and_keeps_the_previous(tmp_path: Path) -> None:
    target, staged = tmp_path / "dir with space" / "wg'1.conf", tmp_path / "staged"
    target.parent.mkdir()
    for version in ("one\n", "two\n"):
        staged.write_text(version)
        script = remote.sudo_install_script(
            str(staged), str(target), mode=0o640, previous=f"{target}.prev"
        )
        done = _sh(script)
        assert done.returncode == 0, done.stderr
    assert target.read_text() == "two\n" and target.stat().st_mode & 0o777 == 0o640
    assert Path(f"{target}.prev").read_text() == "one\n"
    assert remote.PREVIOUS_KEPT in done.stdout
    assert sorted(p.name for p in target.parent.iterdir()) == ["wg'1.conf", "wg'1.conf.prev"]
    assert not staged.exists()


def test_sudo_install_script_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.write_text("x")
    target = tmp_path / "missing-dir" / "f"
    assert _sh(remote.sudo_install_script(str(staged), str(target), mode=0o600)).returncode != 0
    assert not staged.exists() and not target.exists()
    staged.write_text("x")
    (tmp_path / "d").mkdir()  # a directory where the file should be: mv -T refuses it
    done = _sh(remote.sudo_install_script(str(staged), str(tmp_path / "d"), mode=0o600))
    assert done.returncode != 0 and (tmp_path / "d").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_read_script_tells_absent_from_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    assert _sh(remote.read_script(str(tmp_path / "empty"))).returncode == 0
    assert _sh(remote.read_script(str(tmp_path / "nope"))).returncode == remote.ABSENT_STATUS


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults_and_extras() -> None:
    settings = settings_from("10.0.0.1", None, None, None, {})
    assert (settings.port, settings.username, settings.become) == (22, "root", "root")
    assert settings.known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert settings.label == "10.0.0.1"
    settings = settings_from(
        "10.0.0.1",
        "ops",
        None,
        2222,
        {
            "known_hosts": "/kh",
            "key_file": "/k",
            "connect_timeout": 3,
            "command_timeout": 1.5,
            "become": "sudo",
            "host": "V1-1",
        },
    )
    assert settings.known_hosts == Path("/kh") and settings.key_file == Path("/k")
    assert (settings.connect_timeout, settings.command_timeout) == (3.0, 1.5)
    assert (settings.become, settings.label, settings.username) == ("sudo", "V1-1", "ops")


@pytest.mark.parametrize(
    ("hostname", "extras", "field"),
    [
        (None, {}, "hostname"),
        ("h", {"become": "doas"}, "extras.become"),
        ("h", {"command_timeout": 0}, "extras.command_timeout"),
        ("h", {"connect_timeout": "10"}, "extras.connect_timeout"),
        ("h", {"keepalive": -1}, "extras.keepalive"),
        ("h", {"known_hosts": 5}, "extras.known_hosts"),
    ],
)
def test_bad_settings_are_bad_input(
    hostname: str | None, extras: dict[str, object], field: str
) -> None:
    with pytest.raises(ConnectionSettingsError) as caught:
        settings_from(hostname, None, None, None, extras)
    assert caught.value.field == field and caught.value.exit_status == ExitStatus.BAD_INPUT


# --- connecting (local sockets, no gateway) ------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A TCP server that accepts and never says a word (an SSH banner never comes)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[:2]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_connect_timeout_covers_a_server_that_never_answers(
    silent_server: tuple[str, int], tmp_path: Path
) -> None:
    address, port = silent_server
    session = SshSession(
        SshSettings(address=address, port=port, connect_timeout=0.5, known_hosts=tmp_path / "kh")
    )
    started = time.monotonic()
    with pytest.raises(UnreachableError, match="no SSH session could be set up"):
        session.connect()
    assert time.monotonic() - started < 5


def test_a_refused_connection_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        session = SshSession(SshSettings(address="127.0.0.1", port=port, host="V9-9"))
        with pytest.raises(UnreachableError) as caught:
            session.connect()
    assert caught.value.host == "V9-9" and caught.value.port == port
    assert "cannot connect to 127.0.0.1" in str(caught.value)


# --- the pure core never imports paramiko --------------------------------------------------


def test_the_pure_core_and_the_command_builder_never_import_paramiko() -> None:
    modules = [
        "wgfleet.model",
        "wgfleet.plan",
        "wgfleet.render",
        "wgfleet.inventory",
        "wgfleet.paths",
        "wgfleet.remote",
        "wgfleet.known_hosts",
        "wgfleet.ssh_errors",
    ]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko', 'nornir')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": "src"},
    ).stdout
    assert out.strip() == "[]"


# --- wgfleet hosts trust: the confirmation -------------------------------------------------


class _Terminal:
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "trusted"), [("y", True), ("YES ", True), ("", False)])
def test_trust_asks_on_a_terminal_and_defaults_to_no(
    monkeypatch: pytest.MonkeyPatch, answer: str, trusted: bool
) -> None:
    from wgfleet.cli import hosts

    asked: list[str] = []
    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or answer)
    assert hosts._confirm("Trust this key for V1-1?") is trusted
    assert asked == ["Trust this key for V1-1? [y/N] "]


def test_trust_never_records_without_a_terminal_or_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wgfleet.cli import hosts

    monkeypatch.setattr("builtins.input", lambda q: pytest.fail("must not prompt"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal (cron, CI, a pipe)
    assert hosts._confirm("Trust?") is False
    assert "pass --yes" in capsys.readouterr().out
