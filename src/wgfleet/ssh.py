"""One SSH session per gateway: a single transport reused for every command and for SFTP.

The session connects through :mod:`wgfleet.ssh_connect` (strict host keys, timeouts,
``TCP_NODELAY``), replaces a connection that died before the next command, and runs
each command on its own channel of the one transport. stdout and stderr are drained
together while stdin is fed, so a command writing megabytes to stderr cannot deadlock.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from dataclasses import dataclass

import paramiko

from wgfleet.ssh_connect import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE,
    LINK_ERRORS,
    SshSettings,
    check_host_key,
    connect_transport,
    fetch_host_key,
)
from wgfleet.ssh_errors import CommandTimeoutError, ConnectionLostError

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "RawOutput",
    "SshSession",
    "SshSettings",
    "check_host_key",
    "fetch_host_key",
]

_CHUNK = 65536


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
            try:
                pending = pending[channel.send(bytes(pending[:_CHUNK])) :]
            except OSError:  # the command exited without reading all of it
                pending = memoryview(b"")
            moved = True
            if not pending and not channel.closed:
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
            self._transport = connect_transport(self.settings)
            self.connections_opened += 1

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
            CommandTimeoutError: No exit status within ``timeout + grace``; the channel
                is closed (closing does not stop a remote process: the caller bounds the
                line on the gateway, see :func:`wgfleet.remote.deadline_line`).
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
        except LINK_ERRORS as exc:
            raise self.lost(f"opening a channel for `{shown}`", exc) from exc
        try:
            channel.exec_command(line)
            out, err = _pump(channel, deadline, stdin)
            if not channel.status_event.wait(max(deadline - time.monotonic(), 0.0)):
                raise _Deadline(out, err)
        except _Deadline as late:
            raise CommandTimeoutError(
                host=self.settings.label,
                command=shown,
                timeout=timeout,
                stdout=_text(late.stdout),
                stderr=_text(late.stderr),
            ) from None
        except LINK_ERRORS as exc:
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
                except LINK_ERRORS as exc:
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
                with contextlib.suppress(*LINK_ERRORS):
                    self._sftp.close()
                self._sftp = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None
