"""The ``wgfleet hosts`` commands: enrolling gateways' SSH host keys and checking every gateway.

Trusting a gateway is an explicit step: ``hosts trust`` shows the key's fingerprint and
records it only with ``--yes`` or after a typed confirmation, and never replaces a
recorded key without ``--replace``. ``hosts check`` connects to every host the way
every other command will (strict host keys, authentication) and says which would fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wgfleet.cli.options import add_inventory
from wgfleet.errors import BadInputError, ExitStatus, Problem, WgfleetError

if TYPE_CHECKING:
    from nornir.core.inventory import Host

    from wgfleet.ssh import SshSettings

MAX_WORKERS = 16


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``wgfleet hosts trust`` and ``wgfleet hosts check``."""
    parser = subparsers.add_parser(
        "hosts",
        help="enrol gateways' SSH host keys and check that every gateway can be reached",
        description=(
            "wgfleet checks every gateway's SSH host key against the known_hosts file named "
            "by connection_options.wgssh.extras.known_hosts (default ~/.ssh/known_hosts). "
            "These commands add keys to it and report which gateways are reachable."
        ),
    )
    commands = parser.add_subparsers(dest="hosts_command", metavar="COMMAND", required=True)

    trust = commands.add_parser(
        "trust",
        help="fetch gateways' host keys, show their fingerprints and record them",
        description=(
            "Fetch each gateway's SSH host key (without logging in), print its SHA256 "
            "fingerprint and append it to the known_hosts file as '[address]:port type key'. "
            "Compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` "
            "run on the gateway's console before you confirm. Exit 0 when every key is "
            "trusted, 3 when a gateway cannot be reached, 4 when a key was not recorded."
        ),
    )
    trust.add_argument(
        "hosts",
        nargs="*",
        metavar="HOST",
        help="gateways to trust: inventory names, or addresses (ADDRESS or ADDRESS:PORT)",
    )
    trust.add_argument("--all", action="store_true", help="every host of the inventory")
    trust.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="record the keys without asking (only after checking the fingerprints)",
    )
    trust.add_argument(
        "--replace",
        action="store_true",
        help="replace a recorded key that differs (after a verified reinstall); without it "
        "a changed key is refused",
    )
    add_inventory(trust)
    trust.set_defaults(handler=run_trust)

    check = commands.add_parser(
        "check",
        help="connect to every gateway: ok, unknown key, key changed or unreachable",
        description=(
            "Connect to each gateway with strict host-key checking and log in, in parallel, "
            "and report per host: ok, unknown key, key changed, key revoked, auth failed or "
            "unreachable. Exit 0 when every host is ok, 3 otherwise."
        ),
    )
    check.add_argument(
        "hosts", nargs="*", metavar="HOST", help="only these hosts (default: every host)"
    )
    check.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_inventory(check)
    check.set_defaults(handler=run_check)


def _select(inventory: Path, names: list[str], every: bool) -> list[Host]:
    from wgfleet.inventory import load_nornir

    nornir = load_nornir(inventory)
    hosts = nornir.inventory.hosts
    if every or not names:
        return list(hosts.values())
    chosen: dict[str, Host] = {}
    unknown: list[str] = []
    for name in names:
        # A name, or the address (ADDRESS or ADDRESS:PORT) an error message showed.
        found = (
            [hosts[name]]
            if name in hosts
            else [
                host
                for host in hosts.values()
                if name in (str(host.hostname), f"{host.hostname}:{host.port or 22}")
            ]
        )
        chosen.update((host.name, host) for host in found)
        if not found:
            unknown.append(name)
    if unknown:
        known = ", ".join(hosts) or "(none)"
        raise BadInputError(
            [Problem("hosts.yaml", name, "", f"no such host (known: {known})") for name in unknown]
        )
    return list(chosen.values())


def _settings(host: Host) -> SshSettings:
    from wgfleet.connection import CONNECTION_NAME, HOST_EXTRA, settings_from

    params = host.get_connection_parameters(CONNECTION_NAME)
    extras = {**(params.extras or {}), HOST_EXTRA: host.name}
    return settings_from(params.hostname, params.username, params.password, params.port, extras)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print("  not recorded: stdin is not a terminal; pass --yes once you have checked it")
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_trust(args: argparse.Namespace) -> int:
    """Fetch, show and (when confirmed) record the host keys of the selected gateways."""
    from wgfleet.known_hosts import KnownHosts, host_name, record_host_key
    from wgfleet.ssh import fetch_host_key
    from wgfleet.ssh_errors import SshError

    if not args.hosts and not args.all:
        raise BadInputError([Problem("", "", "HOST", "name at least one host, or pass --all")])
    worst = ExitStatus.OK
    for host in _select(args.inventory, args.hosts, args.all):
        settings = _settings(host)
        name = host_name(settings.address, settings.port)
        try:
            key = fetch_host_key(settings)
        except SshError as exc:
            print(f"{host.name}: {exc}")
            worst = max(worst, ExitStatus.UNREACHABLE)
            continue
        path = settings.known_hosts
        known = KnownHosts.load(path)
        verdict = known.check(name, key)
        print(f"{host.name} ({settings.address}:{settings.port}): {key.key_type} {key.fingerprint}")
        if verdict.status == "ok":
            print(f"  already trusted: {path} line {verdict.line}")
            continue
        if verdict.status == "revoked":
            print(f"  REFUSED: this key is marked @revoked in {path} line {verdict.line}")
            worst = max(worst, ExitStatus.FAILED)
            continue
        replace = verdict.status == "changed"
        if replace:
            print(
                f"  WARNING: {path} line {verdict.line} records a DIFFERENT key for {name} — "
                "possible man-in-the-middle, or the gateway was reinstalled"
            )
            if not args.replace:
                print("  not recorded: verify the new fingerprint, then rerun with --replace")
                worst = max(worst, ExitStatus.FAILED)
                continue
        verb = "Replace the recorded key with this one" if replace else "Trust this key"
        if not (args.yes or _confirm(f"  {verb} for {host.name}?")):
            worst = max(worst, ExitStatus.FAILED)
            continue
        record_host_key(path, name, key, replace=replace)
        print(f"  {'replaced in' if replace else 'added to'} {path} as {name}")
    return int(worst)


@dataclass(frozen=True)
class HostCheck:
    """One row of ``hosts check``."""

    host: str
    address: str
    port: int
    status: str
    detail: str


def check_host(host: Host) -> HostCheck:
    """Connect to one host as every command will, and classify the outcome."""
    from wgfleet.ssh import SshSession
    from wgfleet.ssh_errors import (
        AuthenticationError,
        HostKeyChangedError,
        HostKeyRevokedError,
        UnknownHostKeyError,
    )

    statuses: list[tuple[type[WgfleetError], str]] = [
        (UnknownHostKeyError, "unknown key"),
        (HostKeyChangedError, "key changed"),
        (HostKeyRevokedError, "key revoked"),
        (AuthenticationError, "auth failed"),
    ]
    address, port = str(host.hostname), int(host.port or 22)
    try:
        settings = _settings(host)
        address, port = settings.address, settings.port
        session = SshSession(settings)
        session.connect()
        session.close()
    except WgfleetError as exc:
        status = next((text for kind, text in statuses if isinstance(exc, kind)), "unreachable")
        if exc.exit_status == ExitStatus.BAD_INPUT:
            status = "bad settings"
        return HostCheck(host.name, address, port, status, str(exc))
    return HostCheck(host.name, address, port, "ok", "")


def run_check(args: argparse.Namespace) -> int:
    """Connect to every selected host in parallel and print one row per host."""
    hosts = _select(args.inventory, args.hosts, False)
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(hosts)))) as pool:
        rows = list(pool.map(check_host, hosts))
    if args.format == "json":
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        width = max([len(row.host) for row in rows] + [4])
        print(f"{'HOST':<{width}}  {'ADDRESS':<21}  {'STATUS':<12}  DETAIL")
        for row in rows:
            endpoint = f"{row.address}:{row.port}"
            print(f"{row.host:<{width}}  {endpoint:<21}  {row.status:<12}  {row.detail}")
    failed = sum(row.status != "ok" for row in rows)
    if failed:
        print(f"{failed} of {len(rows)} hosts not ok", file=sys.stderr)
        return int(ExitStatus.UNREACHABLE)
    return int(ExitStatus.OK)
