"""Storage errors as an operator reads them, and kept where a library would hide them.

A full disk must be reported as a full disk, naming the file: not libsndfile's "problem with
initialization of the flac decoder", not sqlite's "database or disk is full", not "[Errno 28]"
without a path. That is why libsndfile never writes the disk itself (recording/files.py encodes in
memory, Python writes the result, and a refused write keeps its errno); `describe_error` says what
an error means, `with_path` names the file an error is about.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


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
