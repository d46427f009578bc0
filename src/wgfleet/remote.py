"""Remote command lines: the one place values become shell words, with netns and sudo wrapping.

A command is either an argv (a sequence of words, each quoted with :func:`shlex.quote`)
or a shell script (a string the caller built here or from constants). Names and paths
that reach a shell are validated first. Then, in this order:

- inside a namespace: ``ip netns exec NS ARGV…``, or ``ip netns exec NS sh -c 'SCRIPT'``;
- as root through sudo: ``sudo -n -- sh -c 'LINE'`` (``-n``: sudo fails at once instead
  of prompting for a password, so a missing NOPASSWD rule is an error, never a hang).

Every line is finally bounded on the gateway by coreutils ``timeout`` (inside sudo, so
that root processes can be stopped): :func:`deadline_line`. The sudo scripts for files
(atomic install, read, exists) are built here too. Pure: no I/O, no paramiko.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from wgfleet.model import Become
from wgfleet.ssh_errors import UnsafeValueError

BECOME_MODES: tuple[Become, ...] = ("root", "sudo")
NAMESPACE_MAX = 64
INTERFACE_MAX = 15
KILL_AFTER = 5  # seconds between SIGTERM and SIGKILL when a command outlives its deadline
TIMEOUT_STATUSES = (124, 137)  # coreutils timeout: TERM sent (124), KILL sent (128 + 9)
MAX_TIMEOUT = 7 * 86400
ABSENT_STATUS = 44  # exit status of the sudo read script when the file does not exist
PREVIOUS_KEPT = "wgfleet-previous-kept"  # printed by the install script when it kept one
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_TOKEN = re.compile(r"[0-9a-f]{8,64}")
_SUDO_REFUSALS = (
    "a password is required",
    "a terminal is required",
    "no tty present",
    "is not in the sudoers file",
    "is not allowed to execute",
    "may not run sudo",
)

Command = str | Sequence[str]


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did.

    Attributes:
        command: The command line as built (inside its namespace, before sudo wrapping).
        exit_status: Its exit status.
        stdout: Standard output, decoded as UTF-8 (undecodable bytes replaced).
        stderr: Standard error, decoded likewise; a daemon's banner there is no failure.
        duration: Seconds from sending the command to its exit status.
    """

    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_status == 0


def _name(value: object, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise UnsafeValueError(
            what, value, "may only use letters, digits, '_', '.' and '-', not starting with '.'"
        )
    if len(value) > max_length:
        raise UnsafeValueError(what, value, f"is longer than {max_length} characters")
    return value


def namespace_name(value: object) -> str:
    """Validate a network namespace name (``ip netns`` names become files in /run/netns)."""
    return _name(value, "namespace name", NAMESPACE_MAX)


def interface_name(value: object) -> str:
    """Validate a Linux interface name (at most 15 characters)."""
    return _name(value, "interface name", INTERFACE_MAX)


def remote_path(value: object) -> str:
    """Validate an absolute, normalised remote path without control characters."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise UnsafeValueError("remote path", value, "must be an absolute path")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UnsafeValueError("remote path", value, "may not contain control characters")
    if posixpath.normpath(value) != value.rstrip("/") or value == "/" or value.endswith("/"):
        raise UnsafeValueError(
            "remote path", value, "must name a file, without '.', '..', '//' or a trailing '/'"
        )
    return value


def file_mode(value: object) -> int:
    """Validate a permission mode (``0o600``)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o7777:
        raise UnsafeValueError("file mode", value, "must be an integer from 0 to 0o7777")
    return value


def _id(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32 - 1:
        raise UnsafeValueError(what, value, "must be a numeric id from 0 to 4294967294")
    return value


def argv_line(argv: Sequence[str]) -> str:
    """Join an argv into one shell line, each word quoted.

    Raises:
        UnsafeValueError: When the argv is empty, or a word is not a string or holds NUL.
    """
    if isinstance(argv, str) or not argv:
        raise UnsafeValueError("argv", argv, "must be a non-empty sequence of words")
    for word in argv:
        if not isinstance(word, str) or "\0" in word:
            raise UnsafeValueError("argv word", word, "must be a string without NUL")
    return shlex.join(argv)


def command_line(command: Command, *, namespace: str | None = None) -> str:
    """The shell line for an argv or a script, optionally inside a network namespace.

    Args:
        command: An argv (quoted word by word) or a shell script (kept as it is).
        namespace: Run it in this network namespace with ``ip netns exec``.

    Returns:
        The line to run as the login user (wrap it with :func:`become_line`).
    """
    if isinstance(command, str):
        if not command.strip() or "\0" in command:
            raise UnsafeValueError("script", command, "must be non-empty and without NUL")
        if namespace is None:
            return command
        return argv_line(["ip", "netns", "exec", namespace_name(namespace), "sh", "-c", command])
    if namespace is None:
        return argv_line(command)
    return argv_line(["ip", "netns", "exec", namespace_name(namespace), *command])


def timeout_seconds(value: object) -> float:
    """Validate a command timeout in seconds (above 0, at most a week)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT  # also refuses NaN
    ):
        raise UnsafeValueError("timeout", value, f"must be seconds above 0, at most {MAX_TIMEOUT}")
    return float(value)


def deadline_line(command: Command, seconds: float, *, namespace: str | None = None) -> str:
    """The command line bounded on the gateway itself by coreutils ``timeout``.

    The client stops waiting at the deadline too, but closing an SSH channel does not
    stop a remote process (and sshd may refuse ``signal`` requests; a sudo session's
    root processes could not be signalled by the user anyway). ``timeout`` runs the
    command in its own process group, sends SIGTERM to the group at the deadline and
    SIGKILL :data:`KILL_AFTER` seconds later, and exits 124 (or 137) then. An argv is
    run by ``timeout`` directly; a script through ``sh -c``.
    """
    line = command_line(command, namespace=namespace)
    if isinstance(command, str) and namespace is None:
        line = argv_line(["sh", "-c", line])
    return f"timeout -k {KILL_AFTER} {timeout_seconds(seconds):g} {line}"


def build(
    command: Command, *, namespace: str | None = None, seconds: float, become: Become
) -> tuple[str, str]:
    """Build a command for the wire: ``(shown, wire)``.

    ``shown`` is the command as results and errors report it (inside its namespace);
    ``wire`` is what sshd runs: ``shown`` bounded by :func:`deadline_line`, then wrapped
    by :func:`become_line`.
    """
    shown = command_line(command, namespace=namespace)
    return shown, become_line(deadline_line(command, seconds, namespace=namespace), become)


def become_line(line: str, become: Become) -> str:
    """Wrap a line so that it runs as root: unchanged for ``root``, through ``sudo -n`` else."""
    if become == "root":
        return line
    if become == "sudo":
        return "sudo -n -- sh -c " + shlex.quote(line)
    raise UnsafeValueError("become", become, f"must be one of {', '.join(BECOME_MODES)}")


def sudo_refusal(exit_status: int, stderr: str) -> bool:
    """Whether a command wrapped by :func:`become_line` failed because sudo refused it.

    ``sudo -n`` exits 1 with ``sudo: a password is required`` (or a sudoers refusal)
    before running anything; a shell without sudo exits 127.
    """
    lines = stderr.strip().splitlines()
    if exit_status == 127 and any("sudo: not found" in line for line in lines):
        return True
    return exit_status == 1 and any(
        line.startswith("sudo: ") and any(text in line for text in _SUDO_REFUSALS) for line in lines
    )


def temp_sibling(path: str, token: str, kind: str = "tmp") -> str:
    """A hidden name beside ``path`` for a temporary file: ``DIR/.NAME.wgfleet-KIND-TOKEN``."""
    if not _TOKEN.fullmatch(token) or not _NAME.fullmatch(kind):
        raise UnsafeValueError("temporary name token", token, "must be lower-case hex")
    directory, name = posixpath.split(remote_path(path))
    return posixpath.join(directory, f".{name[:180]}.wgfleet-{kind}-{token}")


def sudo_install_script(
    staged: str,
    target: str,
    *,
    mode: int,
    owner: int | None = None,
    group: int | None = None,
    previous: str | None = None,
) -> str:
    """A script (to run as root) moving a staged upload over ``target`` atomically.

    The staged file was written and fsynced by the login user. As root: copy it into a
    ``mktemp`` file (0600, exclusive, random name) in the target's directory under
    ``umask 077``, set owner and mode, fsync, hard-link the current target to
    ``previous`` (when asked and it exists; then it prints :data:`PREVIOUS_KEPT`), and
    ``mv -T`` (rename(2)) over the target. The staged file and any temp are removed
    whatever happens.
    """
    staged, target = remote_path(staged), remote_path(target)
    directory, name = posixpath.split(target)
    template = posixpath.join(directory, f".{name[:180]}.wgfleet-tmp-XXXXXXXXXX")
    q = shlex.quote
    lines = [
        "set -eu",
        "umask 077",
        "t=",
        "trap " + q('rm -f -- "$t" ' + q(staged)) + " EXIT",
        f"t=$(mktemp -- {q(template)})",
        f'cat -- {q(staged)} >"$t"',
    ]
    uid, gid = _id(owner, "owner uid"), _id(group, "group gid")
    if uid is not None or gid is not None:
        spec = f"{'' if uid is None else uid}{'' if gid is None else f':{gid}'}"
        lines.append(f'chown -- {spec} "$t"')
    lines += [f'chmod -- {file_mode(mode):04o} "$t"', 'sync -- "$t"']
    if previous is not None:
        prev = q(remote_path(previous))
        lines.append(
            f"if [ -e {q(target)} ]; then ln -fT -- {q(target)} {prev}; echo {PREVIOUS_KEPT}; fi"
        )
    lines.append(f'mv -fT -- "$t" {q(target)}')
    return "\n".join(lines)


def read_script(path: str) -> str:
    """A script printing a file, exiting :data:`ABSENT_STATUS` when it does not exist."""
    p = shlex.quote(remote_path(path))
    return f"if [ -e {p} ]; then exec cat -- {p}; else exit {ABSENT_STATUS}; fi"


def exists_argv(path: str) -> list[str]:
    """``test -e PATH``: exit 0 when the path exists."""
    return ["test", "-e", remote_path(path)]
