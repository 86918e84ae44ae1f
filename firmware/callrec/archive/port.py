"""The archive port: where recordings go to be safe, as one small protocol with a backend per kind
of server (file.py for a mounted share, sftp.py, s3.py), like the line and audio ports.

Every backend keeps the same promises, which the uploader and `verify --archive` rely on:
- `put` never leaves anything but a whole, verified object under the final name. The bytes go to a
  temporary name first (a `.tmp`/`.part` file; on S3, the request or multipart upload itself) and
  what the server then holds there is checked by size and SHA-256 (S3: the server checks each
  request's Content-MD5 and refuses a body that does not match; size, ETag and SHA-256 are compared
  after) before it is renamed or linked into place. A write the server refused or cut short is an
  `ArchiveError` (`ArchiveFull` for a full disk or quota: retryable, nothing stored), and the
  temporary is removed; temporaries a kill left are removed at the next put of the same object;
- write-once: an object that exists with the same bytes is success (a retried upload after a kill
  is idempotent); one that holds a strict prefix of our bytes (an upload earlier firmware did not
  verify, cut short by a full disk) is replaced by the verified whole, as atomically as the server
  allows, with a warning; one with any other bytes is `ArchiveConflict`, never a replacement;
- every failure is an `ArchiveError` whose message says what was refused and what to do.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Protocol

from callrec.errors import CallrecError


class ArchiveError(CallrecError, OSError):
    """The archive cannot be reached or refused an operation; the message says which and why."""


class ArchiveRefused(ArchiveError):
    """Refused for a reason that does not go away by itself: credentials, a host key, permissions."""


class ArchiveFull(ArchiveError):
    """The archive's disk or quota has no room for an object: nothing was stored; retried later."""


class ArchiveConflict(ArchiveError):
    """An object exists in the archive under this name with other content: never overwritten."""


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str | None          # None where the backend cannot say without reading (S3 without our metadata)
    retain_until: str | None = None   # S3 Object Lock (COMPLIANCE) retention, ISO 8601


class Standing(enum.Enum):
    """How an object already under a key stands to the bytes about to be put there."""

    SAME = "the same bytes"
    PREFIX = "a truncated copy"     # our bytes cut short: an unverified upload of earlier firmware
    OTHER = "other content"


@dataclass(frozen=True)
class Held:
    """What a server holds under a name, as read back, and what identifies the file it was read from
    (so that replacing it can first check it is still that file)."""

    size: int
    sha256: str
    identity: tuple[int | None, ...] = ()

    def standing(self, data: bytes) -> Standing:
        return standing(self.size, self.sha256, data)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def standing(size: int, sha256: str | None, data: bytes) -> Standing:
    """Whether an object of `size` bytes hashing to `sha256` is `data`, a strict prefix of it, or other."""
    if size == len(data) and sha256 == sha256_of(data):
        return Standing.SAME
    if size < len(data) and sha256 == sha256_of(data[:size]):
        return Standing.PREFIX
    return Standing.OTHER


def full(where: str, key: str, written: int, total: int, why: str) -> ArchiveFull:
    """The refusal of a put that did not fit: how far it got, and that it is only a matter of time."""
    return ArchiveFull(f"{where}: the archive's {why}: {written:,} of {total:,} bytes of {key} written; "
                       "nothing is stored under its name, retried later (free space or raise the quota on the "
                       "archive's side)")


def check_copy(where: str, key: str, data: bytes, size: int, sha256: str | None) -> None:
    """What the server holds under a temporary name is `data`, or the put stops here (retryable)."""
    if size == len(data) and sha256 == sha256_of(data):
        return
    if size < len(data):
        raise ArchiveError(f"{where}: the temporary copy of {key} holds only {size:,} of {len(data):,} bytes "
                           "although no write was refused (is the archive's disk full?); it is not moved into "
                           "place, retried later")
    raise ArchiveError(f"{where}: the temporary copy of {key} arrived damaged ({size:,} bytes, SHA-256 "
                       f"{str(sha256)[:16]}…, expected {sha256_of(data)[:16]}…); it is not moved into place, "
                       "retried later")


def conflict(where: str, key: str, size: int, sha256: str | None) -> ArchiveConflict:
    return ArchiveConflict(f"{where}: {key} exists with other content ({size:,} bytes, SHA-256 "
                           f"{str(sha256)[:16]}…); it is not replaced")


def healing(where: str, key: str, size: int, total: int) -> str:
    """The warning for a truncated object replaced by the verified whole."""
    return (f"{where}: {key} held only the first {size:,} of {total:,} bytes (a truncated upload by earlier "
            "firmware); replaced by the verified whole object")


class ArchiveTarget(Protocol):
    """One archive; keys are `/`-separated paths below its root (`<device_id>/recordings/…`)."""

    url: str

    def put(self, key: str, data: bytes, *, retain_until: float | None = None) -> Stored:
        """Store `data` under `key`: verified under a temporary name before it takes the final one,
        write-once, a truncated copy healed (see the module docstring)."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ArchiveError when it is not there."""
        ...

    def head(self, key: str) -> Stored | None:
        """What is stored under `key` (size, SHA-256 where known, retention), or None."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key below `prefix`, sorted (temporaries excluded)."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object (retention applied to the archive); missing is fine."""
        ...

    def close(self) -> None:
        ...
