"""Small, careful wrappers around the machine: commands, processes by PID, sysctls, tools."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wgfleet.errors import EnvironmentProblemError, WgfleetError

# Tools the lab needs on the control machine, with the Debian package that ships each.
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "mountpoint": "util-linux",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "wg": "wireguard-tools",
    "wireguard-go": "wireguard-go",
    "bird": "bird2",
    "birdc": "bird2",
    "fping": "fping",
    "ping": "iputils-ping",
    "nft": "nftables",
}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class LabError(WgfleetError):
    """A lab operation failed; the message says what to do."""


@dataclass(frozen=True)
class Proc:
    """A process we started, identified by PID and kernel start time (guards PID reuse)."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> Proc | None:
        """Snapshot a running process, or None if it is gone."""
        start = _start_time(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        """True while this very process runs (a zombie or a reused PID counts as gone)."""
        return _start_time(self.pid) == self.start

    def signal(self, signum: int) -> None:
        """Send a signal if the process is still the one we started."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def to_json(self) -> list[int]:
        """Serialise for the lab state file."""
        return [self.pid, self.start]


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def which(tool: str) -> str | None:
    """Find a tool on PATH or in the sbin directories (root's PATH may lack them)."""
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(_SBIN)
    return shutil.which(tool, path=path)


def check_tools(tools: dict[str, str] = REQUIRED_TOOLS) -> None:
    """Raise EnvironmentProblemError listing every missing tool and the package to install."""
    missing = {tool: pkg for tool, pkg in tools.items() if which(tool) is None}
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise EnvironmentProblemError(
            f"missing tools: {', '.join(sorted(missing))}; "
            f"install them with `apt-get install {packages}` (or run `make deps`)"
        )


def check_root() -> None:
    """The lab creates namespaces and mounts: it must run as root."""
    if os.geteuid() != 0:
        raise EnvironmentProblemError(
            "the lab needs root (network namespaces, mounts): run it with sudo or as root"
        )


def run(args: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    """Run a command, return stdout; raise LabError with stderr when it fails."""
    proc = subprocess.run(list(args), input=input, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed (exit {proc.returncode}): {' '.join(args)}\n{proc.stderr.strip()}"
        )
    return proc.stdout


def ip_batch(netns: str | None, commands: Sequence[str]) -> None:
    """Run several `ip` commands in one process, optionally inside a namespace."""
    if not commands:
        return
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    run([*prefix, "-batch", "-"], input="\n".join(commands) + "\n")


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``condition`` until it holds or the deadline passes (then LabError)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def stop_processes(procs: Sequence[Proc], *, grace: float = 3.0) -> None:
    """SIGTERM our processes, SIGKILL those still alive after ``grace`` seconds."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    try:
        wait_until(
            lambda: not any(p.alive() for p in procs), timeout=grace, what="processes to exit"
        )
    except LabError:
        for proc in procs:
            proc.signal(signal.SIGKILL)
        wait_until(lambda: not any(p.alive() for p in procs), timeout=5.0, what="killed processes")


def netns_inode(name: str) -> int | None:
    """Inode of a named network namespace, or None if it does not exist."""
    try:
        return Path("/run/netns", name).stat().st_ino
    except OSError:
        return None


def processes_in_netns(inodes: set[int]) -> list[Proc]:
    """Every process whose network namespace is one of ``inodes``."""
    found: list[Proc] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            inode = (entry / "ns" / "net").stat().st_ino
        except OSError:
            continue
        if inode in inodes:
            proc = Proc.of(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def read_sysctl(key: str) -> str:
    """Read a sysctl value (``fs.inotify.max_user_instances``)."""
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    """Write one sysctl the lab owns (never ``sysctl --system``)."""
    Path("/proc/sys", *key.split(".")).write_text(f"{value}\n")
