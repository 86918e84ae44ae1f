"""The archive port: where recordings go to be safe, as one small protocol with a backend per kind
of server (file.py for a mounted share, sftp.py, s3.py), like the line and audio ports.

Every backend keeps the same promises, which the uploader and `verify --archive` rely on:
- `put` is verified before it returns (a re-read of size and SHA-256, or the S3 ETag), and
  write-once: an object that exists with the same bytes is success (a retried upload after a
  kill is idempotent), one with other bytes is `ArchiveConflict`, never a replacement;
- every failure is an `ArchiveError` whose message says what was refused and what to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from callrec.errors import CallrecError


class ArchiveError(CallrecError, OSError):
    """The archive cannot be reached or refused an operation; the message says which and why."""


class ArchiveRefused(ArchiveError):
    """Refused for a reason that does not go away by itself: credentials, a host key, permissions."""


class ArchiveConflict(ArchiveError):
    """An object exists in the archive under this name with other content: never overwritten."""


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str | None          # None where the backend cannot say without reading (S3 without our metadata)
    retain_until: str | None = None   # S3 Object Lock (COMPLIANCE) retention, ISO 8601


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArchiveTarget(Protocol):
    """One archive; keys are `/`-separated paths below its root (`<device_id>/recordings/…`)."""

    url: str

    def put(self, key: str, data: bytes, *, retain_until: float | None = None) -> Stored:
        """Store `data` under `key`, verified and write-once (see the module docstring)."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ArchiveError when it is not there."""
        ...

    def head(self, key: str) -> Stored | None:
        """What is stored under `key` (size, SHA-256 where known, retention), or None."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key below `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object (retention applied to the archive); missing is fine."""
        ...

    def close(self) -> None:
        ...
