"""Storage errors as an operator reads them, and kept where a library would hide them.

A full disk must be reported as a full disk, naming the file: not libsndfile's "problem with
initialization of the flac decoder", not sqlite's "database or disk is full", not "[Errno 28]"
without a path. `DiskWrites` is the file libsndfile encodes into, written by Python so that the
errno of a refused write survives; `describe_error` says what an error means.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def describe_error(error: BaseException, where: Path | None = None) -> str:
    """A storage error as an operator reads it: "the disk is full (<path>)", not "[Errno 28]" nor
    sqlite's "database or disk is full"; `where` names the file when the error does not."""
    path = error.filename if isinstance(error, OSError) and error.filename else where
    at = f" ({path})" if path else ""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "the disk is full" + at
    if isinstance(error, sqlite3.Error) and (getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                                             or "database or disk is full" in str(error)):
        return "the disk is full" + at
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + at
    return str(error) or type(error).__name__


def with_path(error: OSError, path: Path) -> OSError:
    """`error` naming the file it is about: a write on an open file (and libsndfile) says only
    "No space left on device", and an operator needs to know which disk."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or os.strerror(error.errno), str(path))


class DiskWrites:
    """The file libsndfile encodes into, written by Python so that a refused write keeps its errno.

    Given a path, libsndfile hides ENOSPC behind its own words ("problem with initialization of the
    flac decoder"); through these callbacks the OSError is kept (`error`) and the library only sees
    a short write. Nothing may raise out of a callback: it would be printed as a traceback.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: OSError | None = None
        self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()

    def write(self, data: bytes) -> int:
        view, done = memoryview(data), 0
        try:
            while done < len(view):   # a short write is retried: the next one says why (ENOSPC)
                done += self._file.write(view[done:]) or 0
        except OSError as error:
            self.error = self.error or error
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._file.seek(offset, whence)
        except OSError as error:
            self.error = self.error or error
            return -1

    def tell(self) -> int:
        try:
            return self._file.tell()
        except OSError as error:
            self.error = self.error or error
            return -1

    def read(self, count: int = -1) -> bytes:
        try:
            return self._file.read(count) or b""
        except OSError as error:
            self.error = self.error or error
            return b""

    def sync(self) -> None:
        if self.error is not None:
            raise self.error
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


@contextlib.contextmanager
def disk_errors(target: Any) -> Iterator[None]:
    """The OSError behind a libsndfile failure (or a short write it did not notice), not its words."""
    try:
        yield
    except RuntimeError:   # soundfile.LibsndfileError and its kin
        if isinstance(target, DiskWrites) and target.error is not None:
            raise target.error from None
        raise
    if isinstance(target, DiskWrites) and target.error is not None:
        raise target.error
