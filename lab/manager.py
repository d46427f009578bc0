"""Bring a lab of real gateways up, take it down, reboot one, and report its status."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wgfleet.errors import EnvironmentProblemError
from wgfleet.lab import frontdoor, network
from wgfleet.lab.inventory import known_hosts_lines, lab_inventory
from wgfleet.lab.system import (
    LabError,
    Proc,
    check_root,
    check_tools,
    netns_inode,
    processes_in_netns,
    read_sysctl,
    run,
    stop_processes,
    wait_until,
    write_sysctl,
)
from wgfleet.lab.topology import (
    DEFAULT_STATE_ROOT,
    LabGateway,
    LabTopology,
    build_topology,
)

STATE_FILE = "lab.json"
INOTIFY_KEY = "fs.inotify.max_user_instances"
READY_TIMEOUT = 30.0
SSHD_CONFIG = """\
# wgfleet lab sshd: entered per connection by the front door (`sshd -i`), never the machine's.
AuthorizedKeysFile {state}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
PidFile none
UseDNS no
MaxSessions 64
PrintMotd no
PrintLastLog no
LogLevel ERROR
Subsystem sftp internal-sftp
"""


@dataclass
class LabState:
    """What a running lab remembers in ``STATE_DIR/lab.json``: its size and our processes."""

    sites: int
    gateways: int
    port: int
    frontdoor: Proc | None = None
    hosts: dict[str, dict[str, Proc]] | None = None
    sysctl: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """Serialise."""
        return {
            "sites": self.sites,
            "gateways": self.gateways,
            "port": self.port,
            "frontdoor": self.frontdoor.to_json() if self.frontdoor else None,
            "hosts": {
                name: {role: proc.to_json() for role, proc in procs.items()}
                for name, procs in (self.hosts or {}).items()
            },
            "sysctl": self.sysctl or {},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LabState:
        """Deserialise."""
        return cls(
            sites=raw["sites"],
            gateways=raw["gateways"],
            port=raw["port"],
            frontdoor=Proc(*raw["frontdoor"]) if raw.get("frontdoor") else None,
            hosts={
                name: {role: Proc(*pair) for role, pair in procs.items()}
                for name, procs in raw.get("hosts", {}).items()
            },
            sysctl=dict(raw.get("sysctl", {})),
        )


def load_state(state_dir: Path) -> LabState | None:
    """The lab's state file, or None when no lab of that name exists."""
    try:
        return LabState.from_json(json.loads((state_dir / STATE_FILE).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(
            f"{state_dir / STATE_FILE} is unreadable ({exc}); run `wgfleet lab down` to clean up"
        ) from exc


def save_state(state_dir: Path, state: LabState) -> None:
    """Write the state file atomically."""
    tmp = state_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    tmp.replace(state_dir / STATE_FILE)


def running_topology(name: str, state_root: Path = DEFAULT_STATE_ROOT) -> LabTopology:
    """The topology of a lab that is up (LabError if there is none)."""
    state = load_state(state_root / name)
    if state is None:
        raise LabError(f"no lab named {name!r} is up: start it with `wgfleet lab up`")
    return build_topology(
        state.sites, state.gateways, name=name, port=state.port, state_root=state_root
    )


# --- up -------------------------------------------------------------------------------------


def up(topo: LabTopology) -> LabState:
    """Build the lab (idempotent); on a failed first build remove everything it made."""
    check_root()
    check_tools()
    state = load_state(topo.state_dir)
    if state is not None and (state.sites, state.gateways, state.port) != (
        len(topo.sites),
        len(topo.gateways) // len(topo.sites),
        topo.port,
    ):
        raise LabError(
            f"lab {topo.name!r} is already up as {state.sites} x {state.gateways} on port "
            f"{state.port}; run `wgfleet lab down --name {topo.name}` first"
        )
    fresh = state is None
    if fresh:
        _check_ports_free(topo)
        state = LabState(
            sites=len(topo.sites), gateways=len(topo.gateways) // len(topo.sites), port=topo.port
        )
    assert state is not None
    try:
        _build(topo, state)
    except BaseException:
        if fresh:
            down(topo.name, topo.state_dir.parent)
        raise
    return state


def _check_ports_free(topo: LabTopology) -> None:
    for gw in topo.gateways:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the front door will: TIME_WAIT leftovers of an earlier lab are no conflict.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((str(gw.mgmt_address), topo.port))
            except OSError as exc:
                raise EnvironmentProblemError(
                    f"port {topo.port} on {gw.mgmt_address} is in use ({exc.strerror}): "
                    f"stop what listens there or choose another one with --port"
                ) from exc


def _build(topo: LabTopology, state: LabState) -> None:
    state_dir = topo.state_dir
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (state_dir / "hosts").mkdir(mode=0o700, exist_ok=True)
    save_state(state_dir, state)
    _ensure_client_key(state_dir)
    (state_dir / "sshd_config").write_text(SSHD_CONFIG.format(state=state_dir))
    _raise_inotify_limit(topo, state)
    save_state(state_dir, state)

    present = network.existing_netns()
    network.ensure_inet(topo, present)
    for site in topo.sites:
        network.ensure_site(topo, site, present)
    for gw in topo.gateways:
        network.ensure_gateway_net(topo, gw, present)

    if not (state.frontdoor and state.frontdoor.alive()):
        state.frontdoor = _start_frontdoor(topo)
        save_state(state_dir, state)
    state.hosts = state.hosts or {}
    started: list[LabGateway] = []
    for gw in topo.gateways:
        hostdir = _hostdir(topo, gw)
        hostdir.mkdir(mode=0o700, exist_ok=True)
        _ensure_host_key(hostdir, gw.name)
        procs = state.hosts.get(gw.name, {})
        if not (procs.get("init") and procs["init"].alive()):
            if gw.netns in present:
                network.plug_lan(topo, gw)  # a powered-off gateway: its old lan0 may linger
            state.hosts[gw.name] = _start_host(topo, gw)
            save_state(state_dir, state)
            started.append(gw)
    for gw in started:
        _wait_host_ready(topo, gw)

    for gw in topo.gateways:
        _wait_ssh_banner(topo, gw)
    _write_client_files(topo)


def _hostdir(topo: LabTopology, gw: LabGateway) -> Path:
    return topo.state_dir / "hosts" / gw.name


def _ensure_client_key(state_dir: Path) -> None:
    key = state_dir / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wgfleet-lab", "-f", str(key)])
    (state_dir / "authorized_keys").write_text((state_dir / "id_ed25519.pub").read_text())


def _ensure_host_key(hostdir: Path, name: str) -> None:
    key = hostdir / "ssh_host_ed25519_key"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)])


def _raise_inotify_limit(topo: LabTopology, state: LabState) -> None:
    """Each wireguard-go holds an inotify instance; the default 128 caps the lab."""
    per_site = len(topo.gateways) // len(topo.sites)
    tunnel_ends = len(topo.gateways) * (len(topo.gateways) - per_site)
    current = int(read_sysctl(INOTIFY_KEY))
    needed = tunnel_ends + 64
    if needed > current:
        state.sysctl = state.sysctl or {}
        state.sysctl.setdefault(INOTIFY_KEY, str(current))
        write_sysctl(INOTIFY_KEY, str(max(needed, 1024)))


def _start_host(topo: LabTopology, gw: LabGateway) -> dict[str, Proc]:
    """Power a gateway on: a new PID/mount/UTS namespace inside its network namespace."""
    hostdir = _hostdir(topo, gw)
    for stale in ("ready", "failed", "init.pid"):
        (hostdir / stale).unlink(missing_ok=True)
    argv = [
        "ip", "netns", "exec", gw.netns,
        "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
        "--kill-child", "--propagation", "slave",
        sys.executable, "-m", "wgfleet.lab.host_init", str(hostdir), gw.name,
    ]  # fmt: skip
    try:
        pid = frontdoor.spawn(topo.state_dir, argv, hostdir / "console.log")
    except OSError as exc:
        raise LabError(f"could not start {gw.name} through the front door: {exc}") from exc
    unshare = Proc.of(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")

    def _forked() -> bool:
        try:
            return bool(children.read_text().split())
        except OSError:
            return True  # exited: reported below

    wait_until(_forked, timeout=READY_TIMEOUT, what=f"{gw.name}'s PID 1 to start")
    if unshare is None or not unshare.alive():
        raise LabError(f"{gw.name} failed to start; see {hostdir / 'console.log'}")
    init = Proc.of(int(children.read_text().split()[0]))
    if init is None:
        raise LabError(f"{gw.name}'s PID 1 exited at once; see {hostdir / 'console.log'}")
    (hostdir / "init.pid").write_text(f"{init.pid}\n")
    return {"unshare": unshare, "init": init}


def _wait_host_ready(topo: LabTopology, gw: LabGateway) -> None:
    hostdir = _hostdir(topo, gw)

    def _ready() -> bool:
        if (hostdir / "failed").exists():
            raise LabError(f"{gw.name} failed to boot: {(hostdir / 'failed').read_text().strip()}")
        return (hostdir / "ready").exists()

    wait_until(_ready, timeout=READY_TIMEOUT, what=f"{gw.name} to boot")


def _start_frontdoor(topo: LabTopology) -> Proc:
    state_dir = topo.state_dir
    config = {
        "port": topo.port,
        "hosts": [
            {"address": str(gw.mgmt_address), "hostdir": str(_hostdir(topo, gw))}
            for gw in topo.gateways
        ],
    }
    (state_dir / "frontdoor.json").write_text(json.dumps(config, indent=2) + "\n")
    (state_dir / "frontdoor.ready").unlink(missing_ok=True)
    with (state_dir / "frontdoor.log").open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "wgfleet.lab.frontdoor", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    proc = Proc.of(popen.pid)

    def _listening() -> bool:
        if popen.poll() is not None:
            raise LabError(f"the SSH front door exited; see {state_dir / 'frontdoor.log'}")
        return (state_dir / "frontdoor.ready").exists()

    wait_until(_listening, timeout=READY_TIMEOUT, what="the SSH front door")
    assert proc is not None
    return proc


def ssh_banner(address: str, port: int, timeout: float = 5.0) -> str | None:
    """The SSH identification line a gateway's sshd sends, or None when unreachable."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            data = b""
            while b"\n" not in data and len(data) < 512:
                chunk = conn.recv(512)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
    return line if line.startswith("SSH-2.0-") else None


def _wait_ssh_banner(topo: LabTopology, gw: LabGateway) -> None:
    wait_until(
        lambda: ssh_banner(str(gw.mgmt_address), topo.port, timeout=2.0) is not None,
        timeout=READY_TIMEOUT,
        what=f"sshd on {gw.name} ({gw.mgmt_address}:{topo.port})",
    )


def _write_client_files(topo: LabTopology) -> None:
    keys = {
        gw.name: " ".join((_hostdir(topo, gw) / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        for gw in topo.gateways
    }
    (topo.state_dir / "known_hosts").write_text("\n".join(known_hosts_lines(topo, keys)) + "\n")
    inv_dir = topo.state_dir / "inventory"
    inv_dir.mkdir(exist_ok=True)
    for name, content in lab_inventory(topo).items():
        (inv_dir / f"{name}.yaml").write_text(
            f"# Written by `wgfleet lab up` for lab {topo.name!r}.\n"
            + yaml.safe_dump(content, sort_keys=False)
        )


# --- down -----------------------------------------------------------------------------------


def down(name: str, state_root: Path = DEFAULT_STATE_ROOT) -> list[str]:
    """Remove everything a lab made, also after a partial or failed `up`; return what went."""
    check_root()
    state_dir = state_root / name
    prefix = f"wgl-{name}-"
    state = load_state(state_dir) if (state_dir / STATE_FILE).exists() else None
    removed: list[str] = []
    lab_netns = sorted(ns for ns in network.existing_netns() if ns.startswith(prefix))

    # Gateways first (their parent, the front door, reaps them), then the front door.
    hosts: list[Proc] = []
    for procs in (state.hosts or {}).values() if state else ():
        hosts.extend(p for p in (procs.get("init"), procs.get("unshare")) if p is not None)
    inodes = {inode for ns in lab_netns if (inode := netns_inode(ns)) is not None}
    hosts.extend(processes_in_netns(inodes))
    doors = _frontdoors_of(state_dir)
    if state and state.frontdoor:
        doors.append(state.frontdoor)
    count = 0
    for group in (hosts, doors):
        alive = [p for p in dict.fromkeys(group) if p.alive()]
        stop_processes(alive)
        count += len(alive)
    if count:
        removed.append(f"{count} processes")
    network.delete_netns(lab_netns)
    if lab_netns:
        removed.append(f"{len(lab_netns)} network namespaces")
    for key, value in (state.sysctl or {}).items() if state else ():
        write_sysctl(key, value)
        removed.append(f"sysctl {key} restored to {value}")
    holders = _mount_holders(state_dir)
    if holders:
        raise LabError(
            f"processes {holders} still hold mounts under {state_dir}; "
            "stop them and run `wgfleet lab down` again"
        )
    if state_dir.exists():
        shutil.rmtree(state_dir)
        removed.append(f"state directory {state_dir}")
    with contextlib.suppress(OSError):
        state_root.rmdir()  # only when no other lab is left
    return removed


def _frontdoors_of(state_dir: Path) -> list[Proc]:
    """Front doors serving this state directory whose PID record was lost."""
    found = []
    wanted = ["-m", "wgfleet.lab.frontdoor", str(state_dir)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")[:-1]
        except OSError:
            continue
        if argv[1:] == wanted and (proc := Proc.of(int(entry.name))):
            found.append(proc)
    return found


def _mount_holders(state_dir: Path) -> list[int]:
    holders = []
    # The path itself, not a longer name it prefixes (lab "t" vs lab "t2").
    needle = re.compile(re.escape(str(state_dir)) + r"(?=[/\s,]|$)")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "mountinfo").read_text()
        except OSError:
            continue
        if needle.search(text) and Proc.of(int(entry.name)):
            holders.append(int(entry.name))
    return holders


# --- reboot and status ----------------------------------------------------------------------


def reboot(name: str, gateway: str, state_root: Path = DEFAULT_STATE_ROOT) -> float:
    """Power-cycle one gateway: /run, tunnels and daemons gone, /etc kept; return seconds."""
    check_root()
    topo = running_topology(name, state_root)
    try:
        gw = topo.gateway(gateway)
    except KeyError:
        known = ", ".join(g.name for g in topo.gateways)
        raise LabError(f"no gateway {gateway!r} in lab {name!r} (known: {known})") from None
    state = load_state(topo.state_dir)
    assert state is not None and state.hosts is not None
    started = time.monotonic()
    procs = state.hosts.get(gw.name, {})
    stop_processes([p for p in (procs.get("init"), procs.get("unshare")) if p])
    inode = netns_inode(gw.netns)
    if inode is not None:
        # Sessions entered through the front door (nsenter parents) linger in the netns.
        stop_processes(processes_in_netns({inode}))
    network.plug_lan(topo, gw)
    state.hosts[gw.name] = _start_host(topo, gw)
    save_state(topo.state_dir, state)
    _wait_host_ready(topo, gw)
    _wait_ssh_banner(topo, gw)
    return time.monotonic() - started


def power_off(name: str, gateway: str, state_root: Path = DEFAULT_STATE_ROOT) -> None:
    """Stop a gateway without starting it again (its SSH becomes unreachable)."""
    check_root()
    topo = running_topology(name, state_root)
    gw = topo.gateway(gateway)
    state = load_state(topo.state_dir)
    assert state is not None and state.hosts is not None
    procs = state.hosts.get(gw.name, {})
    stop_processes([p for p in (procs.get("init"), procs.get("unshare")) if p])
    (topo.state_dir / "hosts" / gw.name / "ready").unlink(missing_ok=True)


def pid_of(name: str, gateway: str, state_root: Path = DEFAULT_STATE_ROOT) -> int | None:
    """The root-namespace PID of a gateway's PID 1, or None when it is off."""
    state = load_state(state_root / name)
    if state is None or not state.hosts or gateway not in state.hosts:
        return None
    init = state.hosts[gateway].get("init")
    return init.pid if init and init.alive() else None


def set_ssh(name: str, gateway: str, enabled: bool, state_root: Path = DEFAULT_STATE_ROOT) -> None:
    """Cut or restore SSH to one gateway (it keeps running: tunnels and BGP stay up)."""
    topo = running_topology(name, state_root)
    gw = topo.gateway(gateway)
    marker = topo.state_dir / "hosts" / gw.name / "ssh-off"
    if enabled:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text("SSH cut with `wgfleet lab ssh --off`\n")
