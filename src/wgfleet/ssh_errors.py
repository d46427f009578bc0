"""The errors of talking to a gateway: connecting, host keys, commands and remote files.

Every one carries structured fields (host, address, port, command, stderr …) and a
message that says what to do. Connection-level errors map to the ``UNREACHABLE`` exit
status, failed commands and files to ``FAILED``, bad settings to ``BAD_INPUT``. This
module imports no paramiko: the pure core may catch these errors by type.
"""

from __future__ import annotations

from wgfleet.errors import ExitStatus, WgfleetError

_STDERR_LINES = 6
_STDERR_CHARS = 600


def stderr_excerpt(stderr: str) -> str:
    """The last few lines of a command's stderr, short enough for an error message."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    text = "\n".join(lines[-_STDERR_LINES:])
    if len(text) > _STDERR_CHARS:
        text = "…" + text[-_STDERR_CHARS:]
    return text


def _name(host: str, address: str, port: int) -> str:
    """How ``wgfleet hosts trust`` can name the host: its inventory name, else ADDRESS:PORT."""
    return host if host != address else f"{address}:{port}"


class SshError(WgfleetError):
    """A gateway could not be reached, or not safely: nothing ran on it.

    Attributes:
        host: The inventory name of the gateway (its address when the name is unknown).
        address: The address connected to.
        port: The SSH port connected to.
    """

    exit_status = ExitStatus.UNREACHABLE

    def __init__(self, message: str, *, host: str, address: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.address = address
        self.port = port


class UnreachableError(SshError):
    """No SSH session could be set up: refused, timed out, no SSH banner."""


class AuthenticationError(SshError):
    """The gateway refused every credential offered for the user.

    Attributes:
        username: The user the session logs in as.
    """

    def __init__(self, message: str, *, host: str, address: str, port: int, username: str) -> None:
        super().__init__(message, host=host, address=address, port=port)
        self.username = username


class ConnectionLostError(SshError):
    """The SSH connection died while a command or a file transfer was in flight."""


class _HostKeyError(SshError):
    def __init__(
        self,
        message: str,
        *,
        host: str,
        address: str,
        port: int,
        known_hosts: str,
        key_type: str,
        fingerprint: str,
    ) -> None:
        super().__init__(message, host=host, address=address, port=port)
        self.known_hosts = known_hosts
        self.key_type = key_type
        self.fingerprint = fingerprint


class UnknownHostKeyError(_HostKeyError):
    """The gateway's host key is not in the known_hosts file: trusting it is an explicit step.

    Attributes:
        known_hosts: The known_hosts file that was searched.
        key_type: The type of the key the gateway presented (``ssh-ed25519``).
        fingerprint: Its ``SHA256:…`` fingerprint.
    """

    def __init__(
        self,
        *,
        host: str,
        address: str,
        port: int,
        known_hosts: str,
        key_type: str,
        fingerprint: str,
    ) -> None:
        where = f"{host} ({address}:{port})" if host != address else f"{address}:{port}"
        super().__init__(
            f"{where}: host key {key_type} {fingerprint} is not in {known_hosts}; "
            f"verify the fingerprint and run `wgfleet hosts trust {_name(host, address, port)}`",
            host=host,
            address=address,
            port=port,
            known_hosts=known_hosts,
            key_type=key_type,
            fingerprint=fingerprint,
        )


class HostKeyChangedError(_HostKeyError):
    """The gateway presented a different key than the one recorded: refuse, never overwrite.

    Attributes:
        known_hosts: The known_hosts file holding the recorded key.
        line: The line of the recorded key.
        key_type: The type of the key the gateway presented.
        fingerprint: Its ``SHA256:…`` fingerprint.
    """

    def __init__(
        self,
        *,
        host: str,
        address: str,
        port: int,
        known_hosts: str,
        line: int,
        key_type: str,
        fingerprint: str,
    ) -> None:
        where = f"{host} ({address}:{port})" if host != address else f"{address}:{port}"
        super().__init__(
            f"{where} presented a different key ({key_type} {fingerprint}) than "
            f"{known_hosts} line {line} — possible man-in-the-middle, or the gateway was "
            f"reinstalled; only once you have verified the new fingerprint out of band, "
            f"run `wgfleet hosts trust --replace {_name(host, address, port)}`",
            host=host,
            address=address,
            port=port,
            known_hosts=known_hosts,
            key_type=key_type,
            fingerprint=fingerprint,
        )
        self.line = line


class HostKeyRevokedError(_HostKeyError):
    """The gateway presented a key marked ``@revoked`` in the known_hosts file.

    Attributes:
        line: The ``@revoked`` line.
    """

    def __init__(
        self,
        *,
        host: str,
        address: str,
        port: int,
        known_hosts: str,
        line: int,
        key_type: str,
        fingerprint: str,
    ) -> None:
        where = f"{host} ({address}:{port})" if host != address else f"{address}:{port}"
        super().__init__(
            f"{where} presented host key {key_type} {fingerprint}, which {known_hosts} line "
            f"{line} marks @revoked; refusing to connect — find out why the gateway still "
            "uses a revoked key",
            host=host,
            address=address,
            port=port,
            known_hosts=known_hosts,
            key_type=key_type,
            fingerprint=fingerprint,
        )
        self.line = line


class ConnectionSettingsError(WgfleetError):
    """A ``connection_options.wgssh`` setting is invalid; nothing was contacted.

    Attributes:
        host: The host whose settings are wrong.
        field: The setting (``extras.command_timeout`` …).
    """

    exit_status = ExitStatus.BAD_INPUT

    def __init__(self, message: str, *, host: str, field: str) -> None:
        super().__init__(f"{host}: connection_options.wgssh.{field}: {message}")
        self.host = host
        self.field = field


class UnsafeValueError(WgfleetError, ValueError):
    """A value meant for a remote command line is not one wgfleet will put in a shell.

    Attributes:
        what: What the value is (``namespace name``, ``remote path`` …).
        value: The refused value.
    """

    exit_status = ExitStatus.BAD_INPUT

    def __init__(self, what: str, value: object, reason: str) -> None:
        super().__init__(f"{what} {value!r} {reason}")
        self.what = what
        self.value = value


class CommandError(WgfleetError):
    """A command on a gateway failed (non-zero exit, timeout, or sudo refused).

    The remote exit status is ``returncode``: ``exit_status`` stays wgfleet's own process
    exit status, as on every :class:`~wgfleet.errors.WgfleetError`.

    Attributes:
        host: The gateway.
        command: The command line as wgfleet built it (before any sudo wrapping).
        returncode: The remote exit status; None when the command did not finish.
        stdout: Its standard output (possibly partial).
        stderr: Its standard error (possibly partial).
    """

    def __init__(
        self,
        *,
        host: str,
        command: str,
        returncode: int | None,
        stderr: str,
        stdout: str = "",
        message: str | None = None,
    ) -> None:
        if message is None:
            said = stderr_excerpt(stderr)
            detail = f"; stderr:\n{said}" if said else " with nothing on stderr"
            message = f"{host}: `{command}` exited with status {returncode}{detail}"
        super().__init__(message)
        self.host = host
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class CommandTimeoutError(CommandError):
    """A command ran longer than its timeout and was stopped.

    On the gateway coreutils ``timeout`` sent its process group SIGTERM (SIGKILL a few
    seconds later); the client closed the channel.

    Attributes:
        timeout: The timeout in seconds.
    """

    def __init__(
        self, *, host: str, command: str, timeout: float, stdout: str = "", stderr: str = ""
    ) -> None:
        super().__init__(
            host=host,
            command=command,
            returncode=None,
            stdout=stdout,
            stderr=stderr,
            message=(
                f"{host}: `{command}` did not finish within {timeout:g} s and was stopped; "
                "check the gateway for a hung process, or raise the command's timeout "
                "(connection_options.wgssh.extras.command_timeout)"
            ),
        )
        self.timeout = timeout


class BecomeError(CommandError):
    """``sudo`` refused to run a command without a password (or is missing): nothing ran.

    Attributes:
        username: The login user that needs passwordless sudo.
    """

    def __init__(
        self, *, host: str, command: str, returncode: int, stderr: str, username: str
    ) -> None:
        super().__init__(
            host=host,
            command=command,
            returncode=returncode,
            stderr=stderr,
            message=(
                f"{host}: sudo would not run `{command}` as root for user {username!r} "
                f"without a password ({stderr_excerpt(stderr) or 'no message'}); wgfleet never "
                f"types passwords: allow it with a line `{username} ALL=(root) NOPASSWD: ALL` "
                "in /etc/sudoers.d/wgfleet (edit with `visudo -f`), or log in as root "
                "(data.gateway.become: root)"
            ),
        )
        self.username = username


class RemoteFileError(WgfleetError):
    """Reading, writing or renaming a file on a gateway failed; the target is unchanged.

    Attributes:
        host: The gateway.
        path: The remote path.
        operation: What was being done (``write``, ``read`` …).
        reason: What the SFTP server or the command said.
    """

    def __init__(self, *, host: str, path: str, operation: str, reason: str) -> None:
        unchanged = "; the file on the gateway is unchanged" if operation != "read" else ""
        super().__init__(f"{host}: cannot {operation} {path}: {reason}{unchanged}")
        self.host = host
        self.path = path
        self.operation = operation
        self.reason = reason
