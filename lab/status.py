"""What `wgfleet lab status` shows: each gateway's power state and SSH reachability."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import paramiko

from wgfleet.lab.manager import load_state, running_topology
from wgfleet.lab.topology import DEFAULT_STATE_ROOT, LabGateway, LabTopology


@dataclass(frozen=True)
class GatewayStatus:
    """One row of the status table."""

    gateway: str
    address: str
    port: int
    powered: bool
    reachable: bool
    hostname: str
    latency_ms: float | None
    error: str

    def to_json(self) -> dict[str, object]:
        """Serialise."""
        return asdict(self)


def lab_client(topo: LabTopology, gw: LabGateway, timeout: float = 5.0) -> paramiko.SSHClient:
    """An SSH client to a lab gateway with strict host-key checking against the lab's file."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(topo.state_dir / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        str(gw.mgmt_address),
        port=topo.port,
        username="root",
        key_filename=str(topo.state_dir / "id_ed25519"),
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    transport = client.get_transport()
    if transport is not None and isinstance(transport.sock, socket.socket):
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see LAB.md
    return client


def _probe(topo: LabTopology, gw: LabGateway, powered: bool) -> GatewayStatus:
    started = time.monotonic()
    hostname, error, reachable = "", "", False
    try:
        client = lab_client(topo, gw)
        try:
            _, stdout, _ = client.exec_command("hostname", timeout=5)
            hostname = stdout.read().decode().strip()
            reachable = stdout.channel.recv_exit_status() == 0
        finally:
            client.close()
    except (OSError, paramiko.SSHException) as exc:
        error = str(exc) or type(exc).__name__
    latency = (time.monotonic() - started) * 1000 if reachable else None
    return GatewayStatus(
        gateway=gw.name,
        address=str(gw.mgmt_address),
        port=topo.port,
        powered=powered,
        reachable=reachable,
        hostname=hostname,
        latency_ms=latency,
        error=error,
    )


def lab_status(name: str, state_root: Path = DEFAULT_STATE_ROOT) -> list[GatewayStatus]:
    """Probe every gateway of a running lab over SSH, in parallel."""
    topo = running_topology(name, state_root)
    state = load_state(topo.state_dir)
    hosts = (state.hosts if state else None) or {}

    def powered(gw: LabGateway) -> bool:
        init = hosts.get(gw.name, {}).get("init")
        return bool(init and init.alive())

    with ThreadPoolExecutor(max_workers=min(16, len(topo.gateways))) as pool:
        return list(pool.map(lambda gw: _probe(topo, gw, powered(gw)), topo.gateways))
