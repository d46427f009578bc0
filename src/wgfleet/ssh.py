"""One SSH session per gateway on paramiko: strict host keys, timeouts, and running commands.

The session opens its own TCP socket (``TCP_NODELAY``: without it every command on an
open connection pays Nagle + delayed ACK, ~40 ms), checks the host key against a
known_hosts file before authenticating, and keeps one transport for every command and
the SFTP channel. Commands run on channels of that transport; stdout and stderr are
drained together, so a command writing megabytes to stderr cannot deadlock.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import paramiko

from wgfleet.known_hosts import DEFAULT_KNOWN_HOSTS, HostKey, KnownHosts, host_name
from wgfleet.model import Become
from wgfleet.ssh_errors import (
    AuthenticationError,
    CommandTimeoutError,
    ConnectionLostError,
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
_CHUNK = 65536
_LINK_ERRORS = (OSError, EOFError, paramiko.SSHException)
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


@dataclass(frozen=True)
class RawOutput:
    """A finished command, undecoded."""

    exit_status: int
    stdout: bytes
    stderr: bytes
    duration: float


class _Deadline(Exception):
    def __init__(self, stdout: bytes, stderr: bytes) -> None:
        super().__init__("deadline")
        self.stdout, self.stderr = stdout, stderr


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _open_transport(settings: SshSettings, known_types: list[str]) -> paramiko.Transport:
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
        transport.start_client(timeout=timeout)
    except _LINK_ERRORS as exc:
        transport.close()
        raise UnreachableError(
            f"{settings.label}: {endpoint} accepted TCP but no SSH session could be set up "
            f"({exc or type(exc).__name__}); is it an SSH server, and is it overloaded?",
            **settings.where,
        ) from exc
    return transport


def fetch_host_key(settings: SshSettings, prefer: str = "ssh-ed25519") -> HostKey:
    """The host key a gateway presents, without authenticating (for ``hosts trust``)."""
    transport = _open_transport(settings, [prefer])
    try:
        key = transport.get_remote_server_key()
        return HostKey(key.get_name(), key.asbytes())
    finally:
        transport.close()


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


def _send_signal(channel: paramiko.Channel, name: str) -> None:
    """Ask sshd to signal the command's process group (RFC 4254 §6.9), best effort."""
    transport = channel.get_transport()
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    cast(Any, transport)._send_user_message(message)


def _pump(channel: paramiko.Channel, deadline: float, stdin: bytes) -> tuple[bytes, bytes]:
    """Feed stdin and drain stdout and stderr together until EOF; raise _Deadline at the end."""
    out, err = bytearray(), bytearray()
    pending = memoryview(stdin)
    if not pending:
        channel.shutdown_write()
    while True:
        moved = False
        while channel.recv_ready():
            out += channel.recv(_CHUNK)
            moved = True
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(_CHUNK)
            moved = True
        if pending and channel.send_ready():
            pending = pending[channel.send(bytes(pending[:_CHUNK])) :]
            moved = True
            if not pending:
                channel.shutdown_write()
        if (channel.eof_received or channel.closed) and not (
            channel.recv_ready() or channel.recv_stderr_ready()
        ):
            return bytes(out), bytes(err)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Deadline(bytes(out), bytes(err))
        if not moved:
            select.select([channel], [], [], min(remaining, 0.01 if pending else 1.0))


class SshSession:
    """One authenticated SSH connection to a gateway, reused for every command and file.

    Attributes:
        settings: How to reach the gateway.
        connections_opened: TCP connections made so far (1 unless the link was lost).
        commands_run: Commands executed so far.
    """

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self.connections_opened = 0
        self.commands_run = 0
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()

    @property
    def transport(self) -> paramiko.Transport | None:
        """The current transport (None before ``connect``)."""
        return self._transport

    @property
    def active(self) -> bool:
        """Whether the connection is up."""
        return self._transport is not None and self._transport.is_active()

    def connect(self) -> None:
        """Connect, check the host key, authenticate (replacing a dead connection).

        Raises:
            UnreachableError: TCP, banner or key exchange failed or timed out.
            UnknownHostKeyError: The host key is not in the known_hosts file.
            HostKeyChangedError: Another key is recorded for the gateway.
            HostKeyRevokedError: The key is marked ``@revoked``.
            AuthenticationError: Every credential was refused.
        """
        with self._lock:
            self.close()
            settings = self.settings
            known = KnownHosts.load(settings.known_hosts.expanduser())
            name = host_name(settings.address, settings.port)
            transport = _open_transport(settings, known.key_types(name))
            self.connections_opened += 1
            try:
                key = transport.get_remote_server_key()
                check_host_key(settings, HostKey(key.get_name(), key.asbytes()), known)
                _authenticate(transport, settings)
            except _LINK_ERRORS as exc:
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
            self._transport = transport

    def ensure_connected(self) -> paramiko.Transport:
        """The live transport, connecting first when there is none or it died."""
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self.connect()
            assert self._transport is not None
            return self._transport

    def lost(self, doing: str, exc: BaseException | None = None) -> ConnectionLostError:
        """The error for a connection that died while ``doing`` something."""
        cause = f" ({exc})" if exc and str(exc) else ""
        return ConnectionLostError(
            f"{self.settings.label}: the SSH connection was lost while {doing}{cause}; it may "
            "or may not have completed: check the gateway before retrying",
            **self.settings.where,
        )

    def execute(
        self,
        line: str,
        *,
        timeout: float | None = None,
        stdin: bytes = b"",
        shown: str = "",
        grace: float = 0.0,
    ) -> RawOutput:
        """Run one command line on its own channel of the shared transport.

        Args:
            line: The exact line sshd hands to the login shell.
            timeout: Seconds before the command is stopped (default: ``command_timeout``).
            stdin: Bytes fed to the command's standard input (then EOF).
            shown: The command as messages show it (default: ``line``).
            grace: Extra seconds to wait beyond ``timeout`` (when the gateway enforces
                the timeout itself and should be the one to stop the command).

        Raises:
            CommandTimeoutError: The command outlived its timeout; it was sent SIGTERM.
            ConnectionLostError: The connection died before the exit status arrived.
        """
        timeout = self.settings.command_timeout if timeout is None else timeout
        shown = shown or line
        transport = self.ensure_connected()
        started = time.monotonic()
        deadline = started + timeout + grace
        self.commands_run += 1
        try:
            channel = transport.open_session(timeout=timeout)
        except _LINK_ERRORS as exc:
            raise self.lost(f"opening a channel for `{shown}`", exc) from exc
        try:
            channel.exec_command(line)
            out, err = _pump(channel, deadline, stdin)
            if not channel.status_event.wait(max(deadline - time.monotonic(), 0.0)):
                raise _Deadline(out, err)
        except _Deadline as late:
            if transport.is_active():
                with contextlib.suppress(*_LINK_ERRORS):
                    _send_signal(channel, "TERM")
            raise CommandTimeoutError(
                host=self.settings.label,
                command=shown,
                timeout=timeout,
                stdout=_text(late.stdout),
                stderr=_text(late.stderr),
            ) from None
        except _LINK_ERRORS as exc:
            raise self.lost(f"running `{shown}`", exc) from exc
        finally:
            channel.close()
        status = channel.exit_status
        if status == -1 and not transport.is_active():
            raise self.lost(f"running `{shown}`")
        return RawOutput(status, out, err, time.monotonic() - started)

    def sftp(self) -> paramiko.SFTPClient:
        """The session's SFTP client, opened once on the shared transport."""
        with self._lock:
            transport = self.ensure_connected()
            channel = self._sftp.get_channel() if self._sftp is not None else None
            if self._sftp is None or channel is None or channel.closed:
                try:
                    client = paramiko.SFTPClient.from_transport(transport)
                except _LINK_ERRORS as exc:
                    raise self.lost("starting the SFTP subsystem", exc) from exc
                if client is None:  # pragma: no cover - paramiko returns None only on failure
                    raise self.lost("starting the SFTP subsystem")
                sftp_channel = client.get_channel()
                if sftp_channel is not None:
                    sftp_channel.settimeout(self.settings.command_timeout)
                self._sftp = client
            return self._sftp

    def close(self) -> None:
        """Close the SFTP channel and the connection (idempotent)."""
        with self._lock:
            if self._sftp is not None:
                with contextlib.suppress(*_LINK_ERRORS):
                    self._sftp.close()
                self._sftp = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None
