"""A `file:///path` archive: a directory, typically a NAS share mounted on the device.

A put writes and fsyncs the object under a temporary name (`.<name>.<uuid>.tmp`, counting the bytes
so that a full disk or quota says how far it got), re-reads that copy (size and SHA-256), and only
then links it to its final name: `link(2)` fails if the name exists, so nothing is overwritten. A
truncated copy under the final name (earlier firmware's unverified upload) is replaced by
`rename(2)`, atomic, once its inode, size and mtime are seen unchanged since it was hashed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import uuid
from pathlib import Path

from callrec.archive import port
from callrec.archive.port import ArchiveError, Held, Standing, Stored

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_FULL = {errno.ENOSPC: "disk is full (ENOSPC)", errno.EDQUOT: "quota is used up (EDQUOT)"}


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
        path = self._path(key)
        try:
            return self._put(key, path, data)
        except OSError as error:
            if isinstance(error, ArchiveError):
                raise
            if error.errno in _FULL:   # making the directory, before a byte of it was written
                raise port.full(self.url, key, 0, len(data), _FULL[error.errno]) from None
            raise ArchiveError(f"{self.url}: cannot write {key}: {error.strerror or error}") from None

    def _put(self, key: str, path: Path, data: bytes) -> Stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(path)
        found = _held(path)
        if found is not None and (held := found.standing(data)) is not Standing.PREFIX:   # a prefix is healed
            if held is Standing.SAME:
                return Stored(key, found.size, found.sha256)
            raise port.conflict(self.url, key, found.size, found.sha256)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            self._write(key, tmp, data)
            copy = _held(tmp)
            port.check_copy(self.url, key, data, copy.size if copy else 0, copy.sha256 if copy else None)
            if found is None:
                self._link(key, tmp, path, data)
            else:
                self._heal(key, tmp, path, found, len(data))
            _fsync_directory(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(key, len(data), port.sha256_of(data))

    def _write(self, key: str, tmp: Path, data: bytes) -> None:
        """`data` into a new file, fsynced; a full disk or quota is `ArchiveFull` saying how far it got."""
        written = 0
        view = memoryview(data)
        try:
            with open(tmp, "xb", buffering=0) as handle:
                while written < len(data):
                    written += handle.write(view[written:written + CHUNK]) or 0
                os.fsync(handle.fileno())   # a share reports a full disk here or at close, not at write
        except OSError as error:
            if error.errno in _FULL:
                raise port.full(self.url, key, written, len(data), _FULL[error.errno]) from None
            raise

    def _link(self, key: str, tmp: Path, path: Path, data: bytes) -> None:
        try:
            os.link(tmp, path)
        except FileExistsError:   # another put won the race: fine if it put the same bytes
            now = _held(path)
            if now is None or now.standing(data) is not Standing.SAME:
                raise port.conflict(self.url, key, now.size if now else 0, now.sha256 if now else None) from None

    def _heal(self, key: str, tmp: Path, path: Path, truncated: Held, total: int) -> None:
        """Replace the truncated copy, atomically, and only if it is still the file that was checked."""
        info = os.stat(path)
        if (info.st_ino, info.st_size, info.st_mtime_ns) != truncated.identity:
            raise ArchiveError(f"{self.url}: {key} changed while it was checked; not replaced, retried later")
        os.replace(tmp, path)
        log.warning("%s", port.healing(self.url, key, truncated.size, total))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as error:
            raise ArchiveError(f"{self.url}: cannot read {key}: {error.strerror or error}") from None

    def head(self, key: str) -> Stored | None:
        try:
            found = _held(self._path(key))
        except OSError as error:
            raise ArchiveError(f"{self.url}: cannot read {key}: {error.strerror or error}") from None
        return None if found is None else Stored(key, found.size, found.sha256)

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


def _held(path: Path) -> Held | None:
    """The file's size, SHA-256 and identity, read in chunks; None when there is none."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            digest = hashlib.file_digest(handle, "sha256")
    except FileNotFoundError:
        return None
    return Held(info.st_size, digest.hexdigest(), (info.st_ino, info.st_size, info.st_mtime_ns))   # inode, size, mtime


def _remove_temporaries(path: Path) -> None:
    """Temporaries of this object that a kill left: they hold nothing the device does not still have,
    and on a full disk they take the room the next put needs."""
    start, end = f".{path.name}.", ".tmp"
    for stale in path.parent.iterdir():
        if stale.name.startswith(start) and stale.name.endswith(end):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _fsync_directory(directory: Path) -> None:
    """The new name survives a power cut of the archive's host."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF):   # some shares cannot fsync a directory
            raise
    finally:
        os.close(fd)
