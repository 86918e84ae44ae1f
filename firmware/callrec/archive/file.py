"""A `file:///path` archive: a directory, typically a NAS share mounted on the device.

Write-once by `link(2)`: the object is written and fsynced under a temporary name, then linked to
its final name, which fails if that name exists; the copy is re-read before `put` returns.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from callrec.archive.port import ArchiveConflict, ArchiveError, Stored, sha256_of


class FileArchive:
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ArchiveError(f"archive key {key!r} leaves the archive")
        return path

    def put(self, key: str, data: bytes, *, retain_until: float | None = None) -> Stored:
        digest = sha256_of(data)
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            existing = self.head(key)
            if existing is None:
                tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
                try:
                    with open(tmp, "wb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                    with contextlib.suppress(FileExistsError):   # another upload of it won the race
                        os.link(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
                existing = self.head(key)
        except OSError as error:
            raise ArchiveError(f"{self.url}: cannot write {key}: {error.strerror or error}") from None
        if existing is None or existing.sha256 != digest:
            raise ArchiveConflict(f"{self.url}: {key} exists with other content; it is not replaced")
        return existing

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as error:
            raise ArchiveError(f"{self.url}: cannot read {key}: {error.strerror or error}") from None

    def head(self, key: str) -> Stored | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ArchiveError(f"{self.url}: cannot read {key}: {error.strerror or error}") from None
        return Stored(key, len(data), sha256_of(data))

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def close(self) -> None:
        pass
