"""PID 1 of a lab gateway: private /etc, /root, /run, /tmp, /var/log; reaps until stopped.

Started by the lab manager as
``ip netns exec NS unshare --mount --uts --pid --fork --mount-proc --kill-child
--propagation slave python -m wgfleet.lab.host_init HOSTDIR HOSTNAME``.
Killing this process powers the gateway off: the kernel ends its whole PID namespace.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RUN_DIRS = ("sshd", "netns", "wireguard", "bird", "lock")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _is_mountpoint(path: str) -> bool:
    return subprocess.run(["mountpoint", "-q", path], check=False).returncode == 0


def prepare(hostdir: Path, hostname: str) -> None:
    """Give this host its own view of the filesystem, then mark it ready."""
    socket.sethostname(hostname)
    # The overlay's /etc takes etc-upper's mode: 0755 like a real /etc (hostdir stays 0700).
    for sub, mode in (("etc-upper", 0o755), ("etc-work", 0o700), ("root", 0o700), ("log", 0o755)):
        (hostdir / sub).mkdir(mode=mode, exist_ok=True)
        (hostdir / sub).chmod(mode)
    _mount(
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir=/etc,upperdir={hostdir}/etc-upper,workdir={hostdir}/etc-work",
        "/etc",
    )
    _mount("--bind", str(hostdir / "root"), "/root")
    _mount("--bind", str(hostdir / "log"), "/var/log")
    # Copies of the machine's named namespaces would keep them alive after `ip netns del`.
    if _is_mountpoint("/run/netns"):
        subprocess.run(["umount", "--recursive", "--lazy", "/run/netns"], check=False)
    _mount("-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", "/run")
    for name in RUN_DIRS:
        Path("/run", name).mkdir(mode=0o755)
    _mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", "/tmp")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    (hostdir / "ready").write_text(f"{time.time()}\n")


def reap_forever() -> int:
    """Reap orphans until SIGTERM/SIGINT; returning ends every process of this host."""

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # SIGCHLD stays blocked and is collected synchronously: no lost wake-ups.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        signal.sigtimedwait({signal.SIGCHLD}, 30.0)


def main(argv: list[str]) -> int:
    """Entry point: ``host_init HOSTDIR HOSTNAME``."""
    hostdir, hostname = Path(argv[0]), argv[1]
    try:
        prepare(hostdir, hostname)
    except (OSError, subprocess.CalledProcessError) as exc:
        (hostdir / "failed").write_text(f"{exc}\n")
        return 1
    sys.stdout.flush()
    return reap_forever()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
