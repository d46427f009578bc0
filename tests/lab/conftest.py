"""One lab per test session, shared by every end-to-end test, torn down even on failure.

The lab is real: namespaced gateways, sshd, wireguard-go, BIRD and fping. Where it cannot
run (not root, a tool missing) the tests skip on a developer machine but FAIL under CI
(``CI`` set), so a CI run never passes without the end-to-end suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from wgfleet.errors import WgfleetError
from wgfleet.lab import manager
from wgfleet.lab.status import lab_client
from wgfleet.lab.system import check_root, check_tools
from wgfleet.lab.topology import LabGateway, LabTopology, build_topology

# Several test sessions may share a machine (two developers, or CI beside a demo lab):
# WGFLEET_TEST_LAB=N (a digit) gives a session its own lab names and ports.
_SLOT = os.environ.get("WGFLEET_TEST_LAB", "")
LAB_NAME = f"pytest{_SLOT}"
LAB_PORT = 2298 - 10 * int(_SLOT or 0)
SMALL_LAB_NAME = f"pytestb{_SLOT}"
SMALL_LAB_PORT = LAB_PORT - 1
STATE_ROOT = Path("/var/lib/wgfleet-lab")


# The lab is shared by the whole session and each module leaves it as a rollout would:
# bare-lab tests first, then the connection, then rollout, then verification (which
# starts from a converged fleet). Unit tests keep running before all of them.
_LAB_MODULE_ORDER = (
    "test_lab", "test_connection", "test_apply", "test_verify", "test_runbook", "test_psk",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order lab modules as a rollout happens; everything else keeps its place, first."""

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath))
        if path.parent.name != "lab" or path.parent.parent.name != "tests":
            return -1
        stem = path.stem
        return (
            _LAB_MODULE_ORDER.index(stem) if stem in _LAB_MODULE_ORDER else len(_LAB_MODULE_ORDER)
        )

    items.sort(key=rank)


def require_lab_environment() -> None:
    """Skip (developer machine) or fail (CI) when the lab cannot run here."""
    try:
        check_root()
        check_tools()
    except WgfleetError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"lab end-to-end tests cannot run under CI: {exc}", pytrace=False)
        pytest.skip(f"lab unavailable: {exc}")


def machine_snapshot() -> dict[str, str]:
    """What the lab must never change on the machine itself."""

    def listing(path: str) -> str:
        p = Path(path)
        if not p.exists():
            return "<absent>"
        return "\n".join(
            f"{f.relative_to(p)} {f.stat().st_mode:o} {f.stat().st_size} {f.stat().st_mtime_ns}"
            for f in sorted(p.rglob("*"))
        )

    def cmd(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    return {
        "/etc/ssh": listing("/etc/ssh"),
        "/root/.ssh": listing("/root/.ssh"),
        "addresses": cmd("ip", "-br", "addr"),
        "links": cmd("ip", "-br", "link"),
        "routes4": cmd("ip", "-4", "route"),
        "routes6": cmd("ip", "-6", "route"),
    }


@dataclass
class Lab:
    """Handle on the session's lab for tests."""

    topo: LabTopology
    clients: dict[str, paramiko.SSHClient]

    def client(self, name: str) -> paramiko.SSHClient:
        """A cached SSH client (strict host keys) to a gateway; reconnects after a reboot."""
        cached = self.clients.get(name)
        transport = cached.get_transport() if cached else None
        if cached is None or transport is None or not transport.is_active():
            self.clients[name] = lab_client(self.topo, self.topo.gateway(name))
        return self.clients[name]

    def sh(self, name: str, command: str, *, check: bool = True) -> tuple[int, str, str]:
        """Run a shell command on a gateway; return (exit status, stdout, stderr)."""
        _, stdout, stderr = self.client(name).exec_command(command, timeout=30)
        out, err = stdout.read().decode(), stderr.read().decode()
        status = stdout.channel.recv_exit_status()
        if check and status != 0:
            raise AssertionError(f"{name}: {command!r} exited {status}: {err}")
        return status, out, err

    def gateway(self, name: str) -> LabGateway:
        """The lab gateway with this name."""
        return self.topo.gateway(name)

    def drop_clients(self) -> None:
        """Close every cached connection (before a reboot or teardown)."""
        for client in self.clients.values():
            client.close()
        self.clients.clear()


def leftovers(name: str, state_root: Path = STATE_ROOT) -> list[str]:
    """Everything of lab ``name`` still on the machine (LAB.md's teardown checks)."""
    found: list[str] = []
    prefix = f"wgl-{name}-"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(prefix)]
    state_dir = state_root / name
    mine = re.compile(re.escape(str(state_dir)) + r"(?=[/\s,]|$)")
    if state_dir.exists():
        found.append(f"state dir {state_dir}")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            if "\nState:\tZ" in status:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            mountinfo = (entry / "mountinfo").read_text()
        except OSError:
            continue
        if mine.search(cmdline):
            found.append(f"process {entry.name}: {cmdline.strip()}")
        elif mine.search(mountinfo):
            found.append(f"mount held by process {entry.name}")
    lsns = subprocess.run(
        ["lsns", "-t", "net", "-J", "-o", "NS,NSFS"], capture_output=True, text=True
    ).stdout
    for ns in json.loads(lsns or '{"namespaces": []}')["namespaces"]:
        if ns.get("nsfs") and prefix in ns["nsfs"]:
            found.append(f"lsns {ns['nsfs']}")
    return found


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's 3 x 2 lab (the article's fleet), brought up once, torn down at the end."""
    require_lab_environment()
    topo = build_topology(3, 2, name=LAB_NAME, port=LAB_PORT, state_root=STATE_ROOT)
    manager.down(LAB_NAME, STATE_ROOT)  # a lab left by an interrupted run
    before = machine_snapshot()
    handle = Lab(topo=topo, clients={})
    try:
        manager.up(topo)
        yield handle
    finally:
        handle.drop_clients()
        manager.down(LAB_NAME, STATE_ROOT)
    assert leftovers(LAB_NAME) == []
    assert machine_snapshot() == before


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``wgfleet`` in-process: return (exit status, stdout, stderr)."""
    from wgfleet.cli import main

    def _run(*argv: str) -> tuple[int, str, str]:
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return _run


@pytest.fixture(scope="session")
def converged(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory for the whole lab (article numbering), applied and healthy."""
    import shutil

    from wgfleet.fleet import apply_fleet, load

    inventory = tmp_path_factory.mktemp("converged") / "inventory"
    shutil.copytree(lab.topo.state_dir / "inventory", inventory)
    report = apply_fleet(load(inventory, save_allocations_file=True), progress=None)
    assert report.exit_status == 0, report.outcomes
    wait_healthy(inventory)
    return inventory


def wait_healthy(inventory: Path, timeout: float = 90.0) -> object:
    """Poll `verify` until the fleet is healthy; return the healthy run."""
    import time

    from wgfleet.fleet import load
    from wgfleet.verify import verify_fleet

    loaded = load(inventory, save_allocations_file=False)
    deadline = time.monotonic() + timeout
    while True:
        run = verify_fleet(loaded)
        if run.verdict.severity == "ok" and not run.verdict.unreachable:
            return run
        if time.monotonic() > deadline:
            problems = "\n".join(f"  {f.severity} {f.gateway} {f.object}: {f.message}"
                                 for f in run.verdict.problems())  # fmt: skip
            raise AssertionError(f"fleet not healthy after {timeout:.0f} s:\n{problems}")
        time.sleep(1.0)
