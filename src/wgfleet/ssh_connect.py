"""Reaching a gateway over SSH: TCP with TCP_NODELAY, strict host keys, then authentication.

The host key is checked against a known_hosts file (read by :mod:`wgfleet.known_hosts`)
before any credential is offered: an unknown key and a changed key are two distinct
errors, never a prompt and never an automatic acceptance (RejectPolicy semantics).
Without ``TCP_NODELAY`` every command on an open connection pays Nagle + delayed ACK
(~40 ms instead of ~2-5 ms).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from wgfleet.known_hosts import DEFAULT_KNOWN_HOSTS, HostKey, KnownHosts, host_name
from wgfleet.model import Become
from wgfleet.ssh_errors import (
    AuthenticationError,
    ConnectionSettingsError,
    HostKeyChangedError,
    HostKeyRevokedError,
    UnknownHostKeyError,
    UnreachableError,
)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_COMMAND_TIMEOUT = 60.0
DEFAULT_KEEPALIVE = 15
DEFAULT_KEY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
LINK_ERRORS = (OSError, EOFError, paramiko.SSHException)
# Key types as negotiated (the RSA key type is offered as its signature algorithms).
_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


@dataclass(frozen=True)
class SshSettings:
    """Everything needed to reach one gateway (from the host and ``extras``).

    Attributes:
        address: The management address (Nornir ``hostname``).
        port: The SSH port.
        username: The login user.
        password: A password (tried after keys) or the passphrase of ``key_file``.
        host: The inventory name, for messages (defaults to the address).
        known_hosts: The file host keys are checked against.
        key_file: The private key to offer; without it the agent's and ~/.ssh's keys.
        connect_timeout: Seconds for TCP connect, SSH banner and key exchange.
        auth_timeout: Seconds for authentication (default: ``connect_timeout``).
        command_timeout: Default seconds a command may run.
        keepalive: Seconds between SSH keepalives (0: none).
        become: ``root`` (log in as root) or ``sudo`` (every command through ``sudo -n``).
    """

    address: str
    port: int = 22
    username: str = "root"
    password: str | None = None
    host: str = ""
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    key_file: Path | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    auth_timeout: float | None = None
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    keepalive: int = DEFAULT_KEEPALIVE
    become: Become = "root"

    @property
    def label(self) -> str:
        """The name errors use: the inventory name, else the address."""
        return self.host or self.address

    @property
    def where(self) -> dict[str, Any]:
        """The keyword arguments locating an :class:`~wgfleet.ssh_errors.SshError`."""
        return {"host": self.label, "address": self.address, "port": self.port}


def _open_transport(
    settings: SshSettings, known_types: list[str]
) -> tuple[paramiko.Transport, HostKey]:
    """TCP connect (TCP_NODELAY) and key exchange, preferring the host key types we know."""
    timeout = settings.connect_timeout
    endpoint = f"{settings.address}:{settings.port}"
    try:
        sock = socket.create_connection((settings.address, settings.port), timeout=timeout)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise UnreachableError(
            f"{settings.label}: cannot connect to {endpoint} ({reason} after at most "
            f"{timeout:g} s); check that the gateway is up and that sshd listens on that "
            "address and port",
            **settings.where,
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = settings.auth_timeout or timeout
    options = transport.get_security_options()
    offered = list(options.key_types)
    wanted = [alg for kt in known_types for alg in _KEY_ALGORITHMS.get(kt, (kt,))]
    first = [alg for alg in dict.fromkeys(wanted) if alg in offered]
    options.key_types = first + [alg for alg in offered if alg not in first]
    try:
        # start_client returns quietly when its timeout expires: the key must be there.
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except LINK_ERRORS as exc:
        transport.close()
        raise UnreachableError(
            f"{settings.label}: {endpoint} accepted TCP but no SSH session could be set up "
            f"within {timeout:g} s ({exc or type(exc).__name__}); is it an SSH server, and "
            "is it overloaded?",
            **settings.where,
        ) from exc
    return transport, HostKey(key.get_name(), key.asbytes())


def fetch_host_key(settings: SshSettings, prefer: str = "ssh-ed25519") -> HostKey:
    """The host key a gateway presents, without authenticating (for ``hosts trust``)."""
    transport, key = _open_transport(settings, [prefer])
    transport.close()
    return key


def check_host_key(settings: SshSettings, key: HostKey, known: KnownHosts) -> None:
    """Raise unless ``known`` records ``key`` for this gateway (and does not revoke it)."""
    verdict = known.check(host_name(settings.address, settings.port), key)
    details = {
        **settings.where,
        "known_hosts": known.path,
        "key_type": key.key_type,
        "fingerprint": key.fingerprint,
    }
    if verdict.status == "unknown":
        raise UnknownHostKeyError(**details)
    if verdict.status == "changed":
        raise HostKeyChangedError(line=verdict.line or 0, **details)
    if verdict.status == "revoked":
        raise HostKeyRevokedError(line=verdict.line or 0, **details)


def _client_keys(settings: SshSettings) -> list[tuple[str, paramiko.PKey]]:
    """The keys to offer: ``key_file`` alone, else the agent's and the default files."""
    if settings.key_file is not None:
        path = settings.key_file.expanduser()
        try:
            return [(str(path), paramiko.PKey.from_path(path, settings.password))]
        except paramiko.PasswordRequiredException as exc:
            reason = "is encrypted: load it into ssh-agent and drop key_file, or set a password"
            raise ConnectionSettingsError(
                f"{path} {reason}", host=settings.label, field="extras.key_file"
            ) from exc
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ConnectionSettingsError(
                f"cannot read private key {path}: {exc}",
                host=settings.label,
                field="extras.key_file",
            ) from exc
    keys: list[tuple[str, paramiko.PKey]] = [
        (f"agent key {key.fingerprint}", key) for key in paramiko.Agent().get_keys()
    ]
    for name in DEFAULT_KEY_FILES:
        path = Path(name).expanduser()
        if path.exists():
            try:
                keys.append((str(path), paramiko.PKey.from_path(path, settings.password)))
            except (OSError, paramiko.SSHException, ValueError):
                continue  # as ssh does: an unusable default key is skipped
    return keys


def _authenticate(transport: paramiko.Transport, settings: SshSettings) -> None:
    tried: list[str] = []
    reasons: list[str] = []
    for label, key in _client_keys(settings):
        tried.append(label)
        try:
            transport.auth_publickey(settings.username, key)
        except paramiko.BadAuthenticationType as exc:
            reasons.append(f"the server only allows {', '.join(exc.allowed_types)}")
            break
        except paramiko.AuthenticationException:
            continue
        if transport.is_authenticated():
            return
    if settings.password is not None and settings.key_file is None:
        tried.append("a password")
        try:
            transport.auth_password(settings.username, settings.password)
        except paramiko.AuthenticationException as exc:
            reasons.append(str(exc))
        if transport.is_authenticated():
            return
    offered = ", ".join(tried) or "no key (none in ssh-agent or ~/.ssh, no key_file set)"
    why = f" ({'; '.join(reasons)})" if reasons else ""
    raise AuthenticationError(
        f"{settings.label}: user {settings.username!r} was refused with {offered}{why}; add "
        "the public key to that user's authorized_keys on the gateway, or point "
        "connection_options.wgssh.extras.key_file at the right key",
        username=settings.username,
        **settings.where,
    )


def connect_transport(settings: SshSettings) -> paramiko.Transport:
    """An authenticated transport to the gateway, its host key checked first.

    Raises:
        UnreachableError: TCP, banner or key exchange failed or timed out, or the link
            dropped during authentication.
        UnknownHostKeyError: The host key is not in the known_hosts file.
        HostKeyChangedError: Another key is recorded for the gateway.
        HostKeyRevokedError: The key is marked ``@revoked``.
        AuthenticationError: Every credential was refused.
        ConnectionSettingsError: ``key_file`` cannot be read.
    """
    known = KnownHosts.load(settings.known_hosts.expanduser())
    name = host_name(settings.address, settings.port)
    transport, key = _open_transport(settings, known.key_types(name))
    try:
        check_host_key(settings, key, known)
        _authenticate(transport, settings)
    except LINK_ERRORS as exc:
        transport.close()
        raise UnreachableError(
            f"{settings.label}: the connection dropped during authentication ({exc}); "
            "check the gateway's sshd log",
            **settings.where,
        ) from exc
    except BaseException:
        transport.close()
        raise
    if settings.keepalive:
        transport.set_keepalive(settings.keepalive)
    return transport
