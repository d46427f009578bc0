"""The ``wgssh`` Nornir connection plugin: one SSH session per gateway for commands and files.

Registered under ``nornir.plugins.connections`` as ``wgssh``. From a plain Nornir script::

    def uptime(task: Task) -> Result:
        ssh: WgSsh = task.host.get_connection("wgssh", task.nornir.config)
        return Result(host=task.host, result=ssh.run(["uptime"]).stdout)

Settings come from the host (``hostname``, ``port``, ``username``, ``password``) and
``connection_options.wgssh.extras``: ``known_hosts`` (default ``~/.ssh/known_hosts``),
``key_file``, ``connect_timeout``, ``auth_timeout``, ``command_timeout``, ``keepalive``
and ``become`` (``root`` | ``sudo``). wgfleet's own tasks open it with
:func:`gateway_connection`, which takes ``become`` from ``data.gateway.become`` and names
errors after the inventory host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from wgfleet import remote, sftp
from wgfleet.known_hosts import DEFAULT_KNOWN_HOSTS
from wgfleet.model import Become
from wgfleet.paths import PREVIOUS_SUFFIX
from wgfleet.remote import CommandResult
from wgfleet.ssh import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE,
    RawOutput,
    SshSession,
    SshSettings,
)
from wgfleet.ssh_errors import (
    BecomeError,
    CommandError,
    CommandTimeoutError,
    ConnectionSettingsError,
    RemoteFileError,
)

if TYPE_CHECKING:
    from nornir.core.configuration import Config
    from nornir.core.inventory import Host

__all__ = ["CONNECTION_NAME", "CommandResult", "WgSsh", "gateway_connection", "settings_from"]

CONNECTION_NAME = "wgssh"
DEADLINE_GRACE = 2.0  # seconds the client waits beyond a timeout for the gateway to enforce it
HOST_EXTRA = "host"  # set by gateway_connection: the inventory name errors are reported under


def _seconds(extras: dict[str, Any], key: str, default: float | None, host: str) -> float | None:
    value = extras.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise ConnectionSettingsError(
            f"must be a number of seconds above 0, got {value!r}", host=host, field=f"extras.{key}"
        )
    return float(value)


def settings_from(
    hostname: str | None,
    username: str | None,
    password: str | None,
    port: int | None,
    extras: dict[str, Any] | None,
) -> SshSettings:
    """Validate what Nornir passes to ``open`` into :class:`~wgfleet.ssh.SshSettings`.

    Raises:
        ConnectionSettingsError: A missing hostname or an invalid extras value.
    """
    extras = dict(extras or {})
    label = str(extras.get(HOST_EXTRA) or hostname or "?")
    if not hostname:
        raise ConnectionSettingsError("no address to connect to", host=label, field="hostname")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ConnectionSettingsError(
            f"must be a port number, got {port!r}", host=label, field="port"
        )
    become = extras.get("become", "root")
    if become not in remote.BECOME_MODES:
        raise ConnectionSettingsError(
            f"must be 'root' or 'sudo', got {become!r}", host=label, field="extras.become"
        )
    paths: dict[str, Path | None] = {}
    for key in ("known_hosts", "key_file"):
        value = extras.get(key)
        if value is not None and (not isinstance(value, str | os.PathLike) or not str(value)):
            raise ConnectionSettingsError(
                f"must be a file path, got {value!r}", host=label, field=f"extras.{key}"
            )
        paths[key] = Path(value).expanduser() if value is not None else None
    keepalive = extras.get("keepalive", DEFAULT_KEEPALIVE)
    if isinstance(keepalive, bool) or not isinstance(keepalive, int) or keepalive < 0:
        raise ConnectionSettingsError(
            f"must be whole seconds (0: off), got {keepalive!r}",
            host=label,
            field="extras.keepalive",
        )
    connect_timeout = _seconds(extras, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, label)
    command_timeout = _seconds(extras, "command_timeout", DEFAULT_COMMAND_TIMEOUT, label)
    assert connect_timeout is not None and command_timeout is not None
    return SshSettings(
        address=hostname,
        port=port or 22,
        username=username or "root",
        password=password,
        host=label,
        known_hosts=paths["known_hosts"] or DEFAULT_KNOWN_HOSTS.expanduser(),
        key_file=paths["key_file"],
        connect_timeout=connect_timeout,
        auth_timeout=_seconds(extras, "auth_timeout", None, label),
        command_timeout=command_timeout,
        keepalive=keepalive,
        become=become,
    )


class WgSsh:
    """Nornir connection plugin ``wgssh``: one paramiko SSH connection per gateway.

    ``connection`` is the plugin itself, so ``host.get_connection("wgssh", config)``
    returns an object with :meth:`run`, :meth:`write_file`, :meth:`read_file` … A dead
    connection is replaced before the next command; a command in flight when it dies
    raises :class:`~wgfleet.ssh_errors.ConnectionLostError` and is not retried.
    """

    def __init__(self) -> None:
        self._session: SshSession | None = None

    # --- the Nornir ConnectionPlugin protocol -------------------------------------------

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Config | None = None,
    ) -> None:
        """Connect, check the host key, authenticate (Nornir calls this once per host).

        Raises:
            ConnectionSettingsError: Invalid settings; nothing was contacted.
            SshError: One of its subclasses when the gateway cannot be reached safely.
        """
        session = SshSession(settings_from(hostname, username, password, port, extras))
        session.connect()
        self._session = session

    def close(self) -> None:
        """Close the SSH connection."""
        if self._session is not None:
            self._session.close()

    @property
    def connection(self) -> WgSsh:
        """The plugin itself: what ``host.get_connection("wgssh", …)`` returns."""
        return self

    # --- state -----------------------------------------------------------------------------

    @property
    def session(self) -> SshSession:
        """The underlying session (RuntimeError before ``open``)."""
        if self._session is None:
            raise RuntimeError("the wgssh connection is not open")
        return self._session

    @property
    def host(self) -> str:
        """The name errors are reported under."""
        return self.session.settings.label

    @property
    def become(self) -> Become:
        """How commands get root: ``root`` (logged in as root) or ``sudo``."""
        return self.session.settings.become

    @property
    def transport(self) -> paramiko.Transport | None:
        """The live paramiko transport (one per gateway)."""
        return self.session.transport

    # --- commands --------------------------------------------------------------------------

    def run(
        self,
        command: remote.Command,
        *,
        namespace: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        stdin: bytes | str = b"",
    ) -> CommandResult:
        """Run a command as root on the gateway and return what it did.

        Args:
            command: An argv (each word quoted) or a shell script string built by the
                caller from constants and values validated by :mod:`wgfleet.remote`.
            namespace: Run it inside this network namespace (``ip netns exec``).
            timeout: Seconds it may take (default: ``extras.command_timeout``, 60).
            check: Raise :class:`CommandError` on a non-zero exit status.
            stdin: Fed to its standard input, then EOF.

        Returns:
            The command line, exit status, stdout, stderr and duration.

        Raises:
            CommandError: ``check`` is set and the command exited non-zero.
            BecomeError: sudo refused to run it without a password (whatever ``check``).
            CommandTimeoutError: It outlived ``timeout``.
            ConnectionLostError: The connection died before it finished.
        """
        line, raw = self._execute(command, namespace=namespace, timeout=timeout, stdin=stdin)
        result = CommandResult(
            command=line,
            exit_status=raw.exit_status,
            stdout=raw.stdout.decode("utf-8", errors="replace"),
            stderr=raw.stderr.decode("utf-8", errors="replace"),
            duration=raw.duration,
        )
        if check and not result.ok:
            raise CommandError(
                host=self.host,
                command=line,
                returncode=result.exit_status,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        return result

    def _execute(
        self,
        command: remote.Command,
        *,
        namespace: str | None = None,
        timeout: float | None = None,
        stdin: bytes | str = b"",
    ) -> tuple[str, RawOutput]:
        """Run a command as root, bounded by its timeout on the gateway and here."""
        session = self.session
        seconds = session.settings.command_timeout if timeout is None else timeout
        line, wire = remote.build(command, namespace=namespace, seconds=seconds, become=self.become)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        raw = session.execute(wire, timeout=seconds, stdin=data, shown=line, grace=DEADLINE_GRACE)
        stderr = raw.stderr.decode("utf-8", errors="replace")
        if raw.exit_status in remote.TIMEOUT_STATUSES and raw.duration >= seconds:
            raise CommandTimeoutError(
                host=self.host,
                command=line,
                timeout=seconds,
                stdout=raw.stdout.decode("utf-8", errors="replace"),
                stderr=stderr,
            )
        if self.become == "sudo" and remote.sudo_refusal(raw.exit_status, stderr):
            raise BecomeError(
                host=self.host,
                command=line,
                returncode=raw.exit_status,
                stderr=stderr,
                username=session.settings.username,
            )
        return line, raw

    # --- files -----------------------------------------------------------------------------

    def atomic_writer(
        self,
        path: str,
        *,
        mode: int = 0o600,
        owner: int | None = None,
        group: int | None = None,
        keep_previous: bool = True,
    ) -> sftp.AtomicWriter:
        """A context manager that replaces ``path`` atomically with what is written to it.

        As root the temp file is created over SFTP in the target's directory; with sudo
        it is uploaded to the login user's home and installed by one ``sudo`` command
        (:func:`wgfleet.remote.sudo_install_script`). Either way the target changes only
        by a rename at the end, and its previous version is kept as ``PATH.prev``.
        """
        if self.become == "root":
            return sftp.direct_writer(
                self.session, path, mode=mode, owner=owner, group=group, keep_previous=keep_previous
            )
        target = remote.remote_path(path)
        previous = target + PREVIOUS_SUFFIX if keep_previous else None

        def install(staged: str) -> str | None:
            result = self.run(
                remote.sudo_install_script(
                    staged, target, mode=mode, owner=owner, group=group, previous=previous
                ),
                check=False,
            )
            if not result.ok:
                raise RemoteFileError(
                    host=self.host, path=target, operation="write", reason=result.stderr.strip()
                )
            return previous if remote.PREVIOUS_KEPT in result.stdout.split() else None

        return sftp.staged_writer(self.session, target, install=install)

    def write_file(
        self,
        path: str,
        content: bytes | str,
        *,
        mode: int = 0o600,
        owner: int | None = None,
        group: int | None = None,
        keep_previous: bool = True,
    ) -> sftp.WrittenFile:
        """Replace a file atomically: mode set at creation, fsync, owner/mode, rename.

        Args:
            path: Absolute path of the target on the gateway.
            content: Its new content (str is encoded as UTF-8).
            mode: Its permissions; the temp is never more open than ``mode & 0o700``.
            owner: Numeric uid to give it (default: the writing user, root).
            group: Numeric gid to give it (default: the writing user's group).
            keep_previous: Keep the version it replaces as ``PATH.prev``.

        Returns:
            The path, size and where the previous version was kept.

        Raises:
            RemoteFileError: The gateway refused (missing directory, permissions …).
            ConnectionLostError: The connection died; the target is unchanged.
        """
        with self.atomic_writer(
            path, mode=mode, owner=owner, group=group, keep_previous=keep_previous
        ) as writer:
            writer.write(content)
        assert writer.result is not None
        return writer.result

    def read_file(self, path: str) -> bytes | None:
        """The content of a file on the gateway, None when it does not exist."""
        if self.become == "root":
            return sftp.read_file(self.session, path)
        _, raw = self._execute(remote.read_script(path))
        if raw.exit_status == remote.ABSENT_STATUS:
            return None
        if raw.exit_status != 0:
            reason = raw.stderr.decode(errors="replace").strip()
            raise RemoteFileError(host=self.host, path=path, operation="read", reason=reason)
        data: bytes = raw.stdout
        return data

    def file_exists(self, path: str) -> bool:
        """Whether a path exists on the gateway (symbolic links followed)."""
        if self.become == "root":
            return sftp.file_exists(self.session, path)
        return self.run(remote.exists_argv(path), check=False).ok

    def rename_file(self, source: str, target: str, *, keep_previous: bool = True) -> str | None:
        """Rename ``source`` over ``target`` atomically; return where the old target was kept."""
        if self.become == "root":
            return sftp.rename_file(self.session, source, target, keep_previous=keep_previous)
        target = remote.remote_path(target)
        existed = keep_previous and self.file_exists(target)
        argv = ["mv", "-fT", "--", remote.remote_path(source), target]
        if existed:
            self.run(["ln", "-fT", "--", target, target + PREVIOUS_SUFFIX])
        self.run(argv)
        return target + PREVIOUS_SUFFIX if existed else None


def gateway_connection(host: Host, configuration: Config) -> WgSsh:
    """The host's ``wgssh`` connection, opened the wgfleet way on first use.

    ``become`` comes from the host's ``data.gateway.become`` (inherited as Nornir does)
    and errors name the inventory host rather than its address.
    """
    if CONNECTION_NAME not in host.connections:
        params = host.get_connection_parameters(CONNECTION_NAME)
        extras = dict(params.extras or {})
        gateway = host.get("gateway")
        if isinstance(gateway, dict) and gateway.get("become") is not None:
            extras["become"] = gateway["become"]
        extras[HOST_EXTRA] = host.name
        host.open_connection(CONNECTION_NAME, configuration, extras=extras)
    plugin = host.connections[CONNECTION_NAME]
    assert isinstance(plugin, WgSsh)
    return plugin
