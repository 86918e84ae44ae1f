"""Damaged store files: how they are told apart from other trouble, opened read-only, set aside.

A power cut on a cheap SD card, a card read in another machine, a stray `dd`: the index or the
journal can end up as something sqlite cannot read. The service must still record, so a damaged
file is moved aside (never deleted: it may still hold something worth a look) under a name that
says when, a new one takes its place, and an alarm names the file. The index is then rebuilt from
the sidecars next to the recordings (`recording/reconcile.py`); the journal continues its `seq`.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path

from callrec.errors import CallrecError

log = logging.getLogger(__name__)

SIDE_FILES = ("-wal", "-shm")


class StoreDamaged(CallrecError, ValueError):
    """An index or journal file is not a usable sqlite database; `path` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path} is damaged ({reason})")


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """sqlite's own structural check of every page; raises StoreDamaged naming what it found."""
    rows = db.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        found = "; ".join(str(row[0]) for row in rows[:3])
        raise StoreDamaged(path, f"integrity check failed: {found}")


def move_aside(path: Path) -> Path:
    """Rename a damaged file (and its WAL side files) to `<name>.damaged-<UTC time>`; returns it."""
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    if path.exists():
        path.rename(target)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    log.error("moved the damaged %s aside to %s", path, target)
    return target


def readonly_connection(path: Path) -> sqlite3.Connection:
    """A connection that never writes, also on a read-only disk.

    sqlite's `mode=ro` still needs the WAL index (`-shm`) beside the file, which a read-only
    directory (or a full disk) cannot give it; then `immutable=1` reads the main file alone. What a `-wal` file still
    holds (a service killed before its checkpoint) is not seen that way, and the log says so.
    """
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError as error:
        # no -shm possible: a read-only directory ("unable to open"), a full disk ("disk I/O error")
        log.debug("%s: read-only open needs the main file alone (%s)", path, error)
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        log.warning("%s is on a read-only disk with an unmerged %s: the newest entries may be missing",
                    path, wal.name)
    return sqlite3.connect(f"file:{path}?immutable=1", uri=True, check_same_thread=False, isolation_level=None)
