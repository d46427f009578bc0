"""Files on a gateway over SFTP: atomic replacement with the mode set at birth, reads, renames.

paramiko's ``SFTPClient.open`` creates files 0644 and has no mode argument, and a chmod
afterwards is too late for a reader that opened the file in between (FACTS.md,
CVE-2020-1736). So the OPEN request is sent here with the permissions in its attributes
and ``O_EXCL``, on a random hidden name in the target's directory (a rename across
filesystems would fail). Data goes in pipelined WRITE requests whose every status is
checked (paramiko's pipelined mode can drop write errors), then ``fsync@openssh.com``,
owner and mode on the handle, the current target hard-linked to ``TARGET.prev``, and
``posix-rename@openssh.com`` over the target. Until that rename the target is untouched;
a transfer cut off before it leaves at most a hidden ``.NAME.wgfleet-tmp-…`` file.
"""

from __future__ import annotations

import errno
import posixpath
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import paramiko
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_WRITE,
    int64,
)

from wgfleet import remote
from wgfleet.paths import PREVIOUS_SUFFIX
from wgfleet.ssh import SshSession
from wgfleet.ssh_errors import RemoteFileError

CHUNK = 32768  # paramiko's MAX_REQUEST_SIZE; OpenSSH accepts up to 256 KiB
WINDOW = 64  # outstanding WRITE requests (2 MiB in flight)
_LINK_ERRORS = (EOFError, paramiko.SSHException, TimeoutError)
_REASONS = {
    errno.ENOENT: "no such file or directory (does its directory exist?)",
    errno.EACCES: "permission denied",
}


@dataclass(frozen=True)
class WrittenFile:
    """A file replaced on a gateway.

    Attributes:
        path: The target path.
        size: Bytes written.
        previous: Where the version it replaced was kept, None if there was none.
    """

    path: str
    size: int
    previous: str | None


def _request(sftp: paramiko.SFTPClient, kind: int, *args: object) -> tuple[int, Any]:
    """Send one SFTP request and wait for its answer (a status error raises OSError)."""
    result: tuple[int, Any] = cast(Any, sftp)._request(kind, *args)
    return result


def failure(session: SshSession, exc: BaseException, operation: str, path: str) -> Exception:
    """The wgfleet error for an SFTP failure: a lost connection, or the server's refusal."""
    if isinstance(exc, _LINK_ERRORS) or not session.active:
        return session.lost(f"trying to {operation} {path}", exc)
    code = exc.errno if isinstance(exc, OSError) else None
    reason = _REASONS.get(code or 0) or str(exc) or type(exc).__name__
    return RemoteFileError(
        host=session.settings.label, path=path, operation=operation, reason=reason
    )


def open_exclusive(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """Create ``path`` with O_EXCL and permissions ``mode`` carried in the OPEN request."""
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = mode
    kind, msg = _request(
        sftp, CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, attrs
    )
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError(f"expected a handle in answer to OPEN, got message {kind}")
    return paramiko.SFTPFile(sftp, msg.get_binary(), "wb")


def fsync(file: paramiko.SFTPFile) -> None:
    """Flush a remote file to disk (``fsync@openssh.com``)."""
    _request(file.sftp, CMD_EXTENDED, "fsync@openssh.com", file.handle)


def hardlink(sftp: paramiko.SFTPClient, existing: str, new: str) -> None:
    """Make ``new`` a hard link to ``existing`` (``hardlink@openssh.com``)."""
    _request(sftp, CMD_EXTENDED, "hardlink@openssh.com", existing, new)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _keep_previous(sftp: paramiko.SFTPClient, target: str) -> str | None:
    """Hard-link the current ``target`` to ``TARGET.prev`` (atomically replaced); its path."""
    if not _exists(sftp, target):
        return None
    previous = target + PREVIOUS_SUFFIX
    link = remote.temp_sibling(target, secrets.token_hex(8), "prev")
    hardlink(sftp, target, link)
    try:
        sftp.posix_rename(link, previous)
    except BaseException:
        sftp.remove(link)
        raise
    return previous


class _WriteAcks:
    """The WRITE answers that a wait for another SFTP request read first.

    paramiko hands such answers to the object the request was registered with; with
    ``type(None)`` (what its own pipelined writes use) it drops them, error statuses
    included. Registering with this object keeps them for :meth:`AtomicWriter._ack`.
    """

    def __init__(self) -> None:
        self.answers: dict[int, tuple[int, Any]] = {}

    def _async_response(self, kind: int, msg: Any, number: int) -> None:
        self.answers[number] = (kind, msg)


class AtomicWriter:
    """A new version of a remote file, written to a temp and put in place on success.

    Use it as a context manager and call :meth:`write`; leaving the block normally
    commits (fsync, owner/mode, keep previous, rename), an exception aborts: the temp is
    removed if the connection still allows and the target is unchanged. Build one with
    :func:`direct_writer` or :func:`staged_writer`.

    Attributes:
        target: The path being replaced.
        temp_path: The file actually written over SFTP (0600 or tighter from its creation).
        size: Bytes written so far.
        result: What the commit did (None until committed).
    """

    def __init__(
        self,
        session: SshSession,
        *,
        target: str,
        temp_path: str,
        birth_mode: int,
        finish: Callable[[paramiko.SFTPFile], str | None],
    ) -> None:
        self.target = target
        self.temp_path = temp_path
        self.size = 0
        self.result: WrittenFile | None = None
        self._session = session
        self._birth_mode = birth_mode
        self._finish = finish
        self._sftp: paramiko.SFTPClient | None = None
        self._file: paramiko.SFTPFile | None = None
        self._pending: deque[int] = deque()
        self._acks = _WriteAcks()

    def __enter__(self) -> AtomicWriter:
        self._sftp = self._session.sftp()
        try:
            self._file = open_exclusive(self._sftp, self.temp_path, self._birth_mode)
        except (OSError, *_LINK_ERRORS) as exc:
            raise failure(self._session, exc, "write", self.target) from exc
        return self

    def _ack(self) -> None:
        """Wait for the oldest outstanding WRITE's status; an error status raises OSError."""
        sftp = cast(Any, self._sftp)
        number = self._pending.popleft()
        if number in self._acks.answers:
            kind, msg = self._acks.answers.pop(number)
            if kind == CMD_STATUS:
                sftp._convert_status(msg)
        else:
            kind, _ = sftp._read_response(number)
        if kind != CMD_STATUS:
            raise paramiko.SFTPError(f"expected a status in answer to WRITE, got {kind}")

    def write(self, data: bytes | str) -> None:
        """Send more content (pipelined; errors surface here or at commit)."""
        if self._file is None or self._sftp is None:
            raise RuntimeError("AtomicWriter.write outside its `with` block")
        view = memoryview(data.encode() if isinstance(data, str) else data)
        try:
            for start in range(0, len(view), CHUNK):
                chunk = bytes(view[start : start + CHUNK])
                number = cast(Any, self._sftp)._async_request(
                    self._acks, CMD_WRITE, self._file.handle, int64(self.size), chunk
                )
                self._pending.append(number)
                self.size += len(chunk)
                while len(self._pending) > WINDOW:
                    self._ack()
        except (OSError, *_LINK_ERRORS) as exc:
            raise failure(self._session, exc, "write", self.target) from exc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                while self._pending:
                    self._ack()
                assert self._file is not None
                fsync(self._file)
                previous = self._finish(self._file)
            except (OSError, *_LINK_ERRORS) as error:
                self._abort()
                raise failure(self._session, error, "write", self.target) from error
            except BaseException:
                self._abort()
                raise
            self.result = WrittenFile(self.target, self.size, previous)
        else:
            self._abort()

    def _abort(self) -> None:
        """Best effort: close the handle and remove the temp (impossible on a dead link)."""
        if self._sftp is None or not self._session.active:
            return
        try:
            if self._file is not None:
                self._file.close()
            self._sftp.remove(self.temp_path)
        except (OSError, *_LINK_ERRORS):
            pass


def direct_writer(
    session: SshSession,
    target: str,
    *,
    mode: int = 0o600,
    owner: int | None = None,
    group: int | None = None,
    keep_previous: bool = True,
) -> AtomicWriter:
    """An atomic writer for a login user that may write the target's directory (root).

    The temp is created in the target's directory with ``mode & 0o700`` in its OPEN
    request, so it is never readable by anyone but its owner before it is complete; the
    exact ``mode`` (and owner/group when given) are set on the handle before the rename.
    """
    target, mode = remote.remote_path(target), remote.file_mode(mode)
    temp = remote.temp_sibling(target, secrets.token_hex(8))

    def finish(file: paramiko.SFTPFile) -> str | None:
        if owner is not None or group is not None:
            now = file.stat()
            uid = owner if owner is not None else now.st_uid
            gid = group if group is not None else now.st_gid
            assert uid is not None and gid is not None  # an SFTP stat always has them
            file.chown(uid, gid)
        file.chmod(mode)
        file.close()
        sftp = file.sftp
        previous = _keep_previous(sftp, target) if keep_previous else None
        sftp.posix_rename(temp, target)
        return previous

    return AtomicWriter(
        session, target=target, temp_path=temp, birth_mode=mode & 0o700, finish=finish
    )


def staged_writer(
    session: SshSession, target: str, *, install: Callable[[str], str | None]
) -> AtomicWriter:
    """An atomic writer for a login user that needs sudo to write the target.

    The content is uploaded (0600, exclusive, fsynced) to ``~/.wgfleet-stage-TOKEN`` of
    the login user; ``install(staged_path)`` then moves it into place as root (see
    :func:`wgfleet.remote.sudo_install_script`) and returns where the previous version
    was kept.
    """
    target = remote.remote_path(target)
    try:
        home = session.sftp().normalize(".")
    except (OSError, *_LINK_ERRORS) as exc:
        raise failure(session, exc, "write", target) from exc
    staged = posixpath.join(home, f".wgfleet-stage-{secrets.token_hex(8)}")

    def finish(file: paramiko.SFTPFile) -> str | None:
        file.close()
        return install(staged)

    return AtomicWriter(session, target=target, temp_path=staged, birth_mode=0o600, finish=finish)


def read_file(session: SshSession, path: str) -> bytes | None:
    """The content of a remote file, None when it does not exist."""
    path = remote.remote_path(path)
    try:
        with session.sftp().open(path, "rb") as file:
            file.prefetch()
            return file.read()
    except FileNotFoundError:
        return None
    except (OSError, *_LINK_ERRORS) as exc:
        raise failure(session, exc, "read", path) from exc


def file_exists(session: SshSession, path: str) -> bool:
    """Whether a remote path exists (symbolic links followed, as ``test -e``)."""
    path = remote.remote_path(path)
    try:
        session.sftp().stat(path)
    except FileNotFoundError:
        return False
    except (OSError, *_LINK_ERRORS) as exc:
        raise failure(session, exc, "stat", path) from exc
    return True


def rename_file(
    session: SshSession, source: str, target: str, *, keep_previous: bool = True
) -> str | None:
    """Rename ``source`` over ``target`` atomically, keeping the old target as ``.prev``."""
    source, target = remote.remote_path(source), remote.remote_path(target)
    sftp = session.sftp()
    try:
        previous = _keep_previous(sftp, target) if keep_previous else None
        sftp.posix_rename(source, target)
    except (OSError, *_LINK_ERRORS) as exc:
        raise failure(session, exc, "rename", f"{source} to {target}") from exc
    return previous
