"""Command builders: quoting, key handling and the gather script, some run locally with sh.

Nothing here talks to a gateway. Where running a builder's output says more than reading
it, it runs under the local ``sh`` with POSIX tools (awk, cat, tail, ls) and a stub ``wg``
that records what it was given; paths point into ``tmp_path`` through ``GatewayPaths(root=…)``.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from wgfleet import commands as cmd
from wgfleet.commands import MARK
from wgfleet.facts import parse_gather, split_sections
from wgfleet.parsers.wg import parse_wg_dump
from wgfleet.paths import GatewayPaths

DATA = Path(__file__).parent / "data"
DUMMY_KEY = "EGy4p/TxLAGHu3EZzkVNdZlU2gyu/1LBrq1JkQgVkG4="
DUMMY_PSK = "ZHVtbXktcHJlc2hhcmVkLWtleS1mb3ItdGVzdHMhISE="
STUB_PUBLIC = "S0ONR02RauunuYoOolQsLrHnTheIFJL6/gzmpIvnjWs="

# Values no validated inventory lets through, to prove quoting does not rely on validation.
BENIGN = {"ns": "private", "if": "wg5", "root": "/srv/gw"}
HOSTILE = {
    "ns": "pri vate;'$(touch ns-pwned)`id`\"",
    "if": "wg 5'; touch if-pwned #",
    "root": "/srv/g w'$(touch root-pwned)\\\"&|",
}

Builder = Callable[[dict[str, str]], str]


def _paths(v: dict[str, str]) -> GatewayPaths:
    return GatewayPaths(namespace=v["ns"], root=v["root"])


BUILDERS: dict[str, Builder] = {
    "ensure_key": lambda v: cmd.ensure_key(_paths(v)),
    "read_public_key": lambda v: cmd.read_public_key(_paths(v)),
    "feed_config setconf": lambda v: cmd.feed_config(_paths(v), v["if"], "setconf"),
    "feed_config syncconf": lambda v: cmd.feed_config(_paths(v), v["if"], "syncconf"),
    "create_userspace": lambda v: cmd.create_userspace(v["if"]),
    "create_kernel": lambda v: cmd.create_kernel(v["if"]),
    "ip_ns": lambda v: cmd.ip_ns(v["ns"], "link show"),
    "bird_check": lambda v: cmd.bird_check(_paths(v).bird_candidate),
    "bird_start": lambda v: cmd.bird_start(_paths(v)),
    "birdc": lambda v: cmd.birdc(_paths(v), "show status", readonly=True),
    "in_netns": lambda v: cmd.in_netns(v["ns"], "wg show all dump"),
    "in_netns feed_config": lambda v: cmd.in_netns(
        v["ns"], cmd.feed_config(_paths(v), v["if"], "syncconf")
    ),
}


def _words(command: str) -> list[str]:
    """Shell words and operators, as sh would split them (quotes removed)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _shape(command: str, unhostile: bool = False) -> list[object]:
    """Words of ``command``; the script of an ``sh -c`` split in turn (nested quoting)."""
    shape: list[object] = []
    words = _words(command)
    for i, word in enumerate(words):
        if i >= 2 and words[i - 2 : i] == ["sh", "-c"]:
            shape.append(_shape(word, unhostile))
            continue
        if unhostile:
            for key in ("root", "ns", "if"):
                word = word.replace(HOSTILE[key], BENIGN[key])
        shape.append(word)
    return shape


def _sh(script: str, tmp: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp,
        env={**os.environ, **env},
        timeout=30,
        check=False,
    )


def _syntax_ok(script: str, tmp: Path) -> None:
    result = subprocess.run(
        ["sh", "-n", "-c", script], capture_output=True, text=True, cwd=tmp, check=False
    )
    assert result.returncode == 0, result.stderr


# --- quoting ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILDERS)
def test_hostile_values_do_not_change_the_command_structure(name: str, tmp_path: Path) -> None:
    benign, hostile = BUILDERS[name](BENIGN), BUILDERS[name](HOSTILE)
    assert _shape(hostile, unhostile=True) == _shape(benign)
    _syntax_ok(hostile, tmp_path)


@pytest.mark.parametrize(
    "command", ["wg show all dump", "echo 'a b' \"$HOME\" | tr a b; exit 3", HOSTILE["if"]]
)
def test_in_netns_round_trips(command: str) -> None:
    words = shlex.split(cmd.in_netns(HOSTILE["ns"], command))
    assert words == ["ip", "netns", "exec", HOSTILE["ns"], "sh", "-c", command]


def test_ip_ns_runs_in_the_default_namespace_without_one() -> None:
    assert cmd.ip_ns(None, "link del dev wg1") == "ip link del dev wg1"
    assert cmd.ip_ns("private", "link del dev wg1") == "ip -n private link del dev wg1"


def test_simple_builders_exact_words() -> None:
    paths = GatewayPaths()
    assert cmd.create_kernel("wg3") == "ip link add dev wg3 type wireguard"
    assert shlex.split(cmd.bird_check("/etc/bird/x.conf.new")) == [
        "bird",
        "-p",
        "-c",
        "/etc/bird/x.conf.new",
    ]
    assert shlex.split(cmd.birdc(paths, "configure")) == [
        "birdc",
        "-s",
        "/run/bird/wgfleet-private.ctl",
        "configure",
    ]
    assert "-r" in shlex.split(cmd.birdc(paths, "show status", readonly=True))
    assert _words(cmd.bird_start(paths)) == [
        *("mkdir", "-p", "/run/bird", "&&"),
        *("ip", "netns", "exec", "private", "bird"),
        *("-c", "/etc/bird/wgfleet-private.conf"),
        *("-s", "/run/bird/wgfleet-private.ctl"),
        *("-P", "/run/bird/wgfleet-private.pid"),
    ]


def test_gather_script_quotes_every_value(tmp_path: Path) -> None:
    def build(v: dict[str, str]) -> str:
        return cmd.gather_script(_paths(v), ["wg3", v["if"]])

    hostile = build(HOSTILE)
    _syntax_ok(hostile, tmp_path)
    for bad, good in zip(hostile.splitlines(), build(BENIGN).splitlines(), strict=True):
        if "$(tail -c 1" in bad:  # quotes inside "$(…)" are beyond shlex: run below instead
            continue
        assert _shape(bad, unhostile=True) == _shape(good), bad


# --- keys -------------------------------------------------------------------------------


@pytest.fixture
def stub_wg(tmp_path: Path) -> dict[str, str]:
    """A ``wg`` on PATH that records argv and stdin; genkey/pubkey print dummy keys."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "wg-log"
    log.mkdir()
    wg = bin_dir / "wg"
    wg.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {shlex.quote(str(log))}/argv\n'
        'case "$1" in\n'
        f"  genkey) echo {DUMMY_KEY} ;;\n"
        f"  pubkey) cat > /dev/null; echo {STUB_PUBLIC} ;;\n"
        f"  *) cat > {shlex.quote(str(log))}/stdin ;;\n"
        "esac\n"
    )
    wg.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOG": str(log)}


@pytest.fixture
def gw(tmp_path: Path) -> GatewayPaths:
    root = tmp_path / "gw root'$(touch root-pwned)"
    return GatewayPaths(root=str(root))


def test_feed_config_streams_key_file_then_peer_file_into_wg(
    tmp_path: Path, gw: GatewayPaths, stub_wg: dict[str, str]
) -> None:
    Path(gw.wireguard_dir).mkdir(parents=True)
    Path(gw.private_key).write_text(DUMMY_KEY + "\n")
    peer = "[Interface]\nListenPort = 5803\n\n[Peer]\nPublicKey = x\n"
    Path(gw.peer_file("wg3")).write_text(peer)
    command = cmd.feed_config(gw, "wg3", "syncconf")
    assert DUMMY_KEY not in command
    result = _sh(command, tmp_path, PATH=stub_wg["PATH"])
    assert result.returncode == 0, result.stderr
    log = Path(stub_wg["LOG"])
    assert (log / "argv").read_text().splitlines() == ["syncconf", "wg3", "/dev/stdin"]
    # No preshared key planned: the all-zero "none" clears one a peer may still have.
    assert (log / "stdin").read_text() == (
        f"[Interface]\nPrivateKey = {DUMMY_KEY}\n{peer}PresharedKey = {cmd.NO_PSK}\n"
    )
    assert DUMMY_KEY not in result.stdout + result.stderr
    assert not (tmp_path / "root-pwned").exists()


DUMMY_PSK = "ZHVtbXktcHJlc2hhcmVkLWtleS1mb3ItdGVzdHMhISE="


def test_feed_config_appends_the_tunnels_preshared_key_from_its_file(
    tmp_path: Path, gw: GatewayPaths, stub_wg: dict[str, str]
) -> None:
    Path(gw.wireguard_dir).mkdir(parents=True)
    Path(gw.private_key).write_text(DUMMY_KEY + "\n")
    Path(gw.psk_file("wg3")).write_text(DUMMY_PSK + "\n")
    peer = "[Interface]\nListenPort = 5803\n\n[Peer]\nPublicKey = x\n"
    Path(gw.peer_file("wg3")).write_text(peer)
    command = cmd.feed_config(gw, "wg3", "syncconf", psk=True)
    assert DUMMY_PSK not in command and DUMMY_KEY not in command
    result = _sh(command, tmp_path, PATH=stub_wg["PATH"])
    assert result.returncode == 0, result.stderr
    stdin = (Path(stub_wg["LOG"]) / "stdin").read_text()
    assert stdin == f"[Interface]\nPrivateKey = {DUMMY_KEY}\n{peer}PresharedKey = {DUMMY_PSK}\n"
    assert DUMMY_PSK not in result.stdout + result.stderr


@pytest.mark.parametrize("psk_file", ["empty", "missing"])
def test_feed_config_never_runs_wg_without_the_planned_preshared_key(
    tmp_path: Path, gw: GatewayPaths, stub_wg: dict[str, str], psk_file: str
) -> None:
    Path(gw.wireguard_dir).mkdir(parents=True)
    Path(gw.private_key).write_text(DUMMY_KEY + "\n")
    if psk_file == "empty":
        Path(gw.psk_file("wg3")).write_text("")
    Path(gw.peer_file("wg3")).write_text("[Interface]\nListenPort = 5803\n")
    result = _sh(cmd.feed_config(gw, "wg3", "setconf", psk=True), tmp_path, PATH=stub_wg["PATH"])
    assert result.returncode != 0
    # wg never ran: the two ends would otherwise disagree at the next handshake.
    assert not (Path(stub_wg["LOG"]) / "argv").exists()


@pytest.mark.parametrize("key_file", ["empty", "missing"])
def test_feed_config_never_runs_wg_without_a_key(
    tmp_path: Path, gw: GatewayPaths, stub_wg: dict[str, str], key_file: str
) -> None:
    Path(gw.wireguard_dir).mkdir(parents=True)
    if key_file == "empty":
        Path(gw.private_key).write_text("")
    Path(gw.peer_file("wg3")).write_text("[Interface]\nListenPort = 5803\n")
    result = _sh(cmd.feed_config(gw, "wg3", "setconf"), tmp_path, PATH=stub_wg["PATH"])
    assert result.returncode != 0
    assert not (Path(stub_wg["LOG"]) / "argv").exists()  # wg never ran: the key stays


def test_feed_config_checks_the_key_before_anything_else() -> None:
    paths = GatewayPaths()
    words = _words(cmd.feed_config(paths, "wg3", "setconf"))
    assert words[:4] == ["test", "-s", paths.private_key, "&&"]
    assert words[-4:] == ["wg", "setconf", "wg3", "/dev/stdin"]


def test_ensure_key_generates_once_with_private_modes_and_prints_only_the_public_key(
    tmp_path: Path, gw: GatewayPaths, stub_wg: dict[str, str]
) -> None:
    first = _sh(cmd.ensure_key(gw), tmp_path, PATH=stub_wg["PATH"])
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["generated", STUB_PUBLIC]
    assert Path(gw.private_key).read_text() == DUMMY_KEY + "\n"
    assert stat.S_IMODE(Path(gw.private_key).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(gw.wireguard_dir).stat().st_mode) == 0o700
    assert Path(gw.public_key).read_text() == STUB_PUBLIC + "\n"
    second = _sh(cmd.ensure_key(gw), tmp_path, PATH=stub_wg["PATH"])
    assert second.stdout.split() == [STUB_PUBLIC]  # the existing key is kept
    assert DUMMY_KEY not in first.stdout + first.stderr + second.stdout + second.stderr
    assert not (tmp_path / "root-pwned").exists()


def test_read_public_key_prints_nothing_without_a_key(
    tmp_path: Path, gw: GatewayPaths, stub_wg: dict[str, str]
) -> None:
    assert _sh(cmd.read_public_key(gw), tmp_path, PATH=stub_wg["PATH"]).stdout == ""
    Path(gw.wireguard_dir).mkdir(parents=True)
    Path(gw.private_key).write_text(DUMMY_KEY + "\n")
    out = _sh(cmd.read_public_key(gw), tmp_path, PATH=stub_wg["PATH"]).stdout
    assert out == STUB_PUBLIC + "\n"


def test_create_userspace_detaches_and_waits_for_the_uapi() -> None:
    words = _words(cmd.create_userspace("wg3"))
    assert words[:4] == ["setsid", "-w", "wireguard-go", "wg3"]
    assert words[words.index("show") - 1 :][:4] == ["wg", "show", "wg3", "listen-port"]
    assert words[-2:] == ["exit", "1"]


# --- gather script ----------------------------------------------------------------------


def _scrub_command() -> str:
    (line,) = [
        line
        for line in cmd.gather_script(GatewayPaths(), []).splitlines()
        if line.startswith(f"echo '{MARK}wg'")
    ]
    return line.split(" | ", 1)[1]


def test_scrub_is_awk_on_field_2_of_interface_lines() -> None:
    scrub = _scrub_command()
    assert scrub.startswith("awk ")
    assert 'NF==5 && $2!="(none)"{$2="(hidden)"}' in scrub
    assert (
        cmd.gather_script(GatewayPaths(), []).count(f"wg show all dump 2>/dev/null | {scrub}") == 2
    )
    assert cmd.verify_script(GatewayPaths(), [], 1).count(f"| {scrub}") == 1


def test_scrub_removes_the_private_key_from_the_real_dump(tmp_path: Path) -> None:
    raw = (DATA / "wg_show_all_dump_raw.txt").read_text()
    result = _sh(_scrub_command(), tmp_path, stdin=raw)
    assert result.returncode == 0, result.stderr
    scrubbed = result.stdout
    assert DUMMY_KEY not in scrubbed
    raw_lines, lines = raw.splitlines(), scrubbed.splitlines()
    assert len(lines) == len(raw_lines) == 8
    for before, after in zip(raw_lines, lines, strict=True):
        fields, kept = before.split("\t"), after.split("\t")
        if len(fields) == 5:
            assert kept == [fields[0], "(hidden)", *fields[2:]]
        else:
            assert after == before  # peer lines pass untouched
    assert parse_wg_dump(scrubbed) == parse_wg_dump(raw)


def test_scrub_removes_preshared_keys_and_keeps_none(tmp_path: Path) -> None:
    raw = (DATA / "wg_show_all_dump_fwmark_psk_raw.txt").read_text()
    scrubbed = _sh(_scrub_command(), tmp_path, stdin=raw).stdout
    assert DUMMY_KEY not in scrubbed
    assert DUMMY_PSK not in scrubbed
    assert scrubbed.splitlines()[0] == "wgx3\t(none)\t(none)\t45907\toff"  # no key: says so
    assert parse_wg_dump(scrubbed) == parse_wg_dump(raw)


def test_gather_script_reads_every_managed_file_and_writes_nothing() -> None:
    paths = GatewayPaths()
    script = cmd.gather_script(paths, ["wg3", "wg4"])
    sections = [line.split(";")[0] for line in script.splitlines()]
    assert sections[0] == f"echo '{MARK}hostname'"
    assert sections[-1] == f"echo '{MARK}end'"
    for path in (paths.peer_file("wg3"), paths.peer_file("wg4"), paths.bird_config):
        assert f"echo '{MARK}file {path}'; cat {path} 2>/dev/null" in script
    assert f"birdc -r -s {paths.bird_socket} show status" in script
    for line in script.splitlines():
        words = _words(line)
        assert not {"rm", "mv", "tee", "chmod", "setconf", "syncconf", "add", "del"} & set(words)
        for i, word in enumerate(words):
            if word in (">", ">>"):
                assert words[i + 1] == "/dev/null", line
    # The key file is only tested for and fed to `wg pubkey`, never printed.
    assert script.count(paths.private_key) == 2
    assert f"wg pubkey < {paths.private_key}" in script


def test_gather_file_sections_survive_odd_paths_and_missing_final_newlines(
    tmp_path: Path, gw: GatewayPaths
) -> None:
    odd = "wg 5'x"
    Path(gw.wireguard_dir).mkdir(parents=True)
    Path(gw.bird_config).parent.mkdir(parents=True)
    Path(gw.private_key).write_text(DUMMY_KEY + "\n")
    Path(gw.peer_file("wg3")).write_text("[Interface]\nListenPort = 5803\n")
    Path(gw.peer_file(odd)).write_text("[Interface]\nListenPort = 5805")  # no final newline
    Path(gw.bird_config).write_text("router id 10.0.1.11;\n\n")
    script = cmd.gather_script(gw, ["wg3", "wg4", odd])
    wanted = (f"echo '{MARK}peer_files'", f"echo '{MARK}file ", f"echo '{MARK}end'")
    part = "\n".join(line for line in script.splitlines() if line.startswith(wanted))
    result = _sh(part, tmp_path)
    assert result.returncode == 0, result.stderr
    facts = parse_gather(result.stdout)
    assert facts.peer_files == {"private.key", "wg3.conf", f"{odd}.conf"}
    assert facts.files == {
        gw.peer_file("wg3"): "[Interface]\nListenPort = 5803\n",
        gw.peer_file("wg4"): None,
        gw.peer_file(odd): "[Interface]\nListenPort = 5805\n",
        gw.bird_config: "router id 10.0.1.11;\n\n",
    }
    assert set(split_sections(result.stdout)) == {
        "peer_files",
        *(f"file {p}" for p in facts.files),
        "end",
    }
    assert DUMMY_KEY not in result.stdout
    assert not (tmp_path / "root-pwned").exists()


def _mgmt_section(stub_dir: Path, outer: str, env: dict[str, str]) -> str | None:
    (line,) = [
        line
        for line in cmd.gather_script(GatewayPaths(), []).splitlines()
        if line.startswith(f"echo '{MARK}mgmt'")
    ]
    ip = stub_dir / "ip"  # `ip -j route get ADDR` answers that lan0 leads to ADDR
    ip.write_text('#!/bin/sh\necho "[{\\"dst\\":\\"$4\\",\\"dev\\":\\"lan0\\"}]"\n')
    ip.chmod(0o755)
    full_env = {**os.environ, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}", **env}
    result = subprocess.run(
        ["sh", "-c", outer, "sh", f"{line}\necho '{MARK}end'"],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "192.0.2.10" in result.stdout
    return parse_gather(result.stdout).mgmt_interface


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "outer",
    [
        pytest.param('sh -c "$1"', id="root-login"),
        # sudo's env_reset: the script's own environment lacks SSH_CONNECTION, its parent's
        # (sudo, or the login shell) still has it.
        pytest.param('env -u SSH_CONNECTION sh -c "$1"', id="under-sudo"),
    ],
)
def test_gather_finds_the_ssh_interface_with_or_without_sudo(tmp_path: Path, outer: str) -> None:
    env = {"SSH_CONNECTION": "192.0.2.10 50022 192.0.2.1 22"}
    assert _mgmt_section(tmp_path, outer, env) == "lan0"


# --- one round trip for a whole change --------------------------------------------------------


def test_a_batch_runs_every_command_in_order_in_one_shell(tmp_path: Path) -> None:
    commands = [
        "echo one > log",
        # `exit 0` ends its own subshell only: what comes next still runs.
        "for i in 1 2; do [ $i = 2 ] && exit 0; done",
        "echo 'two; # not a comment' >> log",
        "cat log",
    ]
    done = _sh(cmd.batch(commands), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "one\ntwo; # not a comment\n"
    assert cmd.batch_failure(done.stderr) == (3, "")


def test_a_batch_stops_at_the_first_failure_and_says_which(tmp_path: Path) -> None:
    commands = ["echo fine >&2", "echo 'RTNETLINK answers: File exists' >&2; exit 2", "touch ran"]
    done = _sh(cmd.batch(commands), tmp_path)
    assert done.returncode == 2
    assert not (tmp_path / "ran").exists()
    index, stderr = cmd.batch_failure(done.stderr)
    assert (index, stderr) == (1, "RTNETLINK answers: File exists")


def test_a_batch_failure_without_markers_keeps_all_of_stderr() -> None:
    assert cmd.batch_failure("sudo: a password is required") == (
        None,
        "sudo: a password is required",
    )


# --- a gateway locked by a runbook run ---------------------------------------------------------

LOCK = '{"change": "CHG-1", "owner": "alice@ops", "run_id": "0123abcd", "runbook": "rollout"}\n'


@pytest.mark.parametrize(
    ("lock", "run_id", "refused"),
    [
        (None, None, False),
        (LOCK, None, True),  # a plain apply never runs on a gateway a run holds
        (LOCK, "ffff0000", True),  # nor does another run
        (LOCK, "0123abcd", False),  # the holder itself does
    ],
)
def test_a_key_is_only_made_on_a_gateway_no_other_run_holds(
    tmp_path: Path,
    gw: GatewayPaths,
    stub_wg: dict[str, str],
    lock: str | None,
    run_id: str | None,
    refused: bool,
) -> None:
    if lock is not None:
        Path(gw.lock).parent.mkdir(parents=True)
        Path(gw.lock).write_text(lock)
    done = _sh(cmd.ensure_key(gw, run_id), tmp_path, PATH=stub_wg["PATH"])
    if refused:
        assert done.returncode == cmd.LOCKED_STATUS
        assert done.stdout == LOCK
        assert not Path(gw.private_key).exists(), "nothing was touched"
    else:
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == "generated"
        assert Path(gw.private_key).read_text().strip() == DUMMY_KEY
