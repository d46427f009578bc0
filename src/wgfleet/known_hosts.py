"""OpenSSH known_hosts files: parsing, matching a gateway's host key, and enrolling new keys.

Read as OpenSSH reads them, without paramiko (whose loader fails on a whole file when a
line carries ``@revoked`` or ``@cert-authority``): comma-separated host patterns with
``*``/``?`` wildcards and ``!`` negation, hashed names (``|1|salt|hmac``), ``[host]:port``
for non-standard ports, ``@revoked`` keys refused, ``@cert-authority`` lines skipped
(wgfleet does not use host certificates). Unparsable lines are skipped, as ssh does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"
_HASH_MAGIC = "|1|"

Status = Literal["ok", "unknown", "changed", "revoked"]


def host_name(address: str, port: int) -> str:
    """The name a host is recorded under: ``address``, or ``[address]:port`` off port 22."""
    address = address.lower()
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class HostKey:
    """A public host key: its type and its wire-format blob."""

    key_type: str
    blob: bytes

    @classmethod
    def from_base64(cls, key_type: str, text: str) -> HostKey:
        """Decode the base64 field of a known_hosts line.

        Raises:
            ValueError: When the text is not base64 or the blob names another key type.
        """
        try:
            blob = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"key is not valid base64: {exc}") from exc
        if len(blob) < 4:
            raise ValueError("key blob is too short")
        (length,) = struct.unpack(">I", blob[:4])
        if blob[4 : 4 + length] != key_type.encode():
            raise ValueError(f"key blob is not a {key_type} key")
        return cls(key_type, blob)

    @property
    def base64(self) -> str:
        """The blob as it appears in known_hosts and authorized_keys."""
        return base64.b64encode(self.blob).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def line(self, name: str) -> str:
        """The known_hosts line recording this key for ``name``."""
        return f"{name} {self.key_type} {self.base64}"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _hashed_match(field: str, name: str) -> bool:
    try:
        salt_text, digest_text = field[len(_HASH_MAGIC) :].split("|", 1)
        salt = base64.b64decode(salt_text, validate=True)
        digest = base64.b64decode(digest_text, validate=True)
    except (ValueError, binascii.Error):
        return False
    mine = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(mine, digest)


def hosts_field_matches(field: str, name: str) -> bool:
    """Whether a known_hosts host field (patterns or one hashed name) matches ``name``.

    As OpenSSH's ``match_hostname``: a negated pattern that matches wins over every
    positive one.
    """
    name = name.lower()
    if field.startswith(_HASH_MAGIC):
        return _hashed_match(field, name)
    positive = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern and _pattern_regex(pattern).fullmatch(name):
            if negated:
                return False
            positive = True
    return positive


@dataclass(frozen=True)
class KnownHostEntry:
    """One usable line of a known_hosts file."""

    line: int
    marker: str | None
    hosts: str
    key: HostKey

    def matches(self, name: str) -> bool:
        """Whether this line applies to the host recorded as ``name``."""
        return hosts_field_matches(self.hosts, name)


@dataclass(frozen=True)
class Verdict:
    """How a presented host key compares with a known_hosts file.

    Attributes:
        status: ``ok``, ``unknown`` (no key for the host), ``changed`` (other keys
            recorded) or ``revoked``.
        line: The matching line (ok, revoked) or the recorded key that differs (changed).
    """

    status: Status
    line: int | None = None


@dataclass(frozen=True)
class KnownHosts:
    """A parsed known_hosts file.

    Attributes:
        path: Where it was read from (for messages).
        entries: Its usable lines, in file order.
        skipped: Line numbers that could not be parsed (ignored, as ssh does).
    """

    path: str
    entries: tuple[KnownHostEntry, ...] = ()
    skipped: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str, path: str = "known_hosts") -> KnownHosts:
        """Parse the text of a known_hosts file."""
        entries: list[KnownHostEntry] = []
        skipped: list[int] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = fields[0] if fields[0].startswith("@") else None
            fields = fields[1:] if marker else fields
            if marker not in (None, REVOKED, CERT_AUTHORITY) or len(fields) < 3:
                skipped.append(number)
                continue
            try:
                key = HostKey.from_base64(fields[1], fields[2])
            except ValueError:
                skipped.append(number)
                continue
            entries.append(KnownHostEntry(number, marker, fields[0], key))
        return cls(path, tuple(entries), tuple(skipped))

    @classmethod
    def load(cls, path: Path) -> KnownHosts:
        """Read a known_hosts file; a missing file knows no host.

        Raises:
            OSError: When the file exists but cannot be read.
        """
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return cls(str(path))
        return cls.parse(text, str(path))

    def keys_for(self, name: str) -> list[KnownHostEntry]:
        """The plain (unmarked) lines recording a key for ``name``."""
        return [e for e in self.entries if e.marker is None and e.matches(name)]

    @cached_property
    def _revoked(self) -> dict[bytes, int]:
        return {e.key.blob: e.line for e in self.entries if e.marker == REVOKED}

    def key_types(self, name: str) -> list[str]:
        """The key types recorded for ``name``, in file order, without repeats."""
        return list(dict.fromkeys(e.key.key_type for e in self.keys_for(name)))

    def check(self, name: str, key: HostKey) -> Verdict:
        """Compare the key a host presented with what is recorded for it.

        A revoked key is refused whatever else is recorded; a key recorded for the host
        is ok; otherwise ``changed`` when any key is recorded for it (the line of one of
        the same type if there is one), else ``unknown``.
        """
        revoked = self._revoked.get(key.blob)
        if revoked is not None:
            return Verdict("revoked", revoked)
        recorded = self.keys_for(name)
        for entry in recorded:
            if entry.key == key:
                return Verdict("ok", entry.line)
        if not recorded:
            return Verdict("unknown")
        same_type = [e for e in recorded if e.key.key_type == key.key_type]
        return Verdict("changed", (same_type or recorded)[0].line)


def record_host_key(path: Path, name: str, key: HostKey, *, replace: bool = False) -> None:
    """Add ``key`` for ``name`` to a known_hosts file, atomically.

    Args:
        path: The known_hosts file (created 0644, its directory 0700, when missing).
        name: The recorded name, from :func:`host_name`.
        key: The key to record.
        replace: Drop every plain line that matches ``name`` first (hashed ones too);
            marker lines (``@revoked`` …) are always kept.
    """
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text, mode = "", 0o644
    lines = text.splitlines()
    if replace:
        drop = {e.line for e in KnownHosts.parse(text).keys_for(name)}
        lines = [line for number, line in enumerate(lines, start=1) if number not in drop]
    lines.append(key.line(name))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
