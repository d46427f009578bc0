"""The lab's SSH front door and process parent: one listener per gateway, sshd run inside it.

For every accepted connection it enters the gateway's namespaces (PID 1 read at connect
time, so a rebooted gateway keeps working) and runs ``sshd -i`` on the socket. It also
starts the gateways themselves when the lab manager asks on ``STATE_DIR/control.sock``,
so that a long-lived parent reaps them when they power off (the machine's PID 1 may not).
Run as ``python -m wgfleet.lab.frontdoor STATE_DIR``; it reads ``STATE_DIR/frontdoor.json``.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def host_pid(hostdir: Path) -> int | None:
    """PID (in the root PID namespace) of the gateway's PID 1, or None when it is down."""
    try:
        pid = int((hostdir / "init.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if not (hostdir / "ready").exists() or (hostdir / "ssh-off").exists():
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def serve(state_dir: Path) -> int:
    """Listen on every gateway's management address until SIGTERM."""
    config = json.loads((state_dir / "frontdoor.json").read_text())
    selector = selectors.DefaultSelector()
    for entry in config["hosts"]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((entry["address"], config["port"]))
        listener.listen(64)
        selector.register(listener, selectors.EVENT_READ, Path(entry["hostdir"]))

    control_path = state_dir / "control.sock"
    control_path.unlink(missing_ok=True)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(control_path))
    control_path.chmod(0o600)
    control.listen(16)
    selector.register(control, selectors.EVENT_READ, None)

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sshd children are reaped by the kernel
    (state_dir / "frontdoor.ready").write_text(f"{os.getpid()}\n")
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            conn, _addr = sock.accept()
            if key.data is None:
                with conn:
                    _serve_control(conn)
                continue
            with conn:
                pid = host_pid(key.data)
                if pid is None:
                    continue  # the gateway is powered off: the client sees a closed connection
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                subprocess.Popen(
                    [
                        "nsenter",
                        "-t",
                        str(pid),
                        "-a",
                        SSHD,
                        "-i",
                        "-e",
                        "-f",
                        str(state_dir / "sshd_config"),
                        "-o",
                        f"HostKey={key.data / 'ssh_host_ed25519_key'}",
                    ],
                    stdin=conn.fileno(),
                    stdout=conn.fileno(),
                    close_fds=True,
                    start_new_session=True,
                )


def _serve_control(conn: socket.socket) -> None:
    """Start one process for the manager: ``{"argv": [...], "log": path}`` → ``{"pid": N}``."""
    conn.settimeout(10)
    request = json.loads(conn.makefile("r").readline())
    try:
        with Path(request["log"]).open("ab") as log:
            child = subprocess.Popen(
                request["argv"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,
            )
        reply: dict[str, object] = {"pid": child.pid}
    except OSError as exc:
        reply = {"error": str(exc)}
    conn.sendall((json.dumps(reply) + "\n").encode())


def spawn(state_dir: Path, argv: list[str], log: Path, timeout: float = 10.0) -> int:
    """Ask the front door of a lab to start ``argv`` as its child; return the PID."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(state_dir / "control.sock"))
        conn.sendall((json.dumps({"argv": argv, "log": str(log)}) + "\n").encode())
        reply = json.loads(conn.makefile("r").readline())
    if "pid" not in reply:
        raise OSError(f"front door could not start {argv[0]}: {reply.get('error')}")
    return int(reply["pid"])


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1])))
