"""Journal bookkeeping the Journal class does not offer: backlog size and bounded size.

The journal grows by one row per event and nothing else removes rows, so an appliance without a
broker (or with one gone for months) would fill its card. Pruning runs here, on a connection of its
own to the journal's sqlite file (WAL mode lets it work beside the writer), using only the documented
table `events(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, body TEXT, delivered INTEGER)`.
AUTOINCREMENT keeps `seq` increasing after the oldest rows are deleted, so consumers never see a
number reused.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_DAY_S = 86_400.0


@dataclass(frozen=True)
class PruneResult:
    """What one pruning pass removed; `undelivered` counts events MQTT never delivered (lost)."""

    dropped: int = 0
    undelivered: int = 0
    first_kept_seq: int | None = None


class JournalKeeper:
    """Counts and trims the journal's `events` table through its own sqlite connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._last_backlog = 0

    def backlog_size(self) -> int:
        """Events not yet acknowledged by the broker (the `delivered` index makes this cheap)."""
        with self._lock:
            try:
                row = self._db.execute("SELECT COUNT(*) FROM events WHERE delivered = 0").fetchone()
            except sqlite3.Error as error:   # a journal not there yet (a full disk): say what we knew
                log.debug("backlog size unknown: %s", error)
                return self._last_backlog
        self._last_backlog = int(row[0])
        return self._last_backlog

    def prune(self, *, max_events: int, max_days: float, now: float) -> PruneResult:
        """Drop events older than `max_days` and the oldest beyond `max_events`, delivered or not.

        Both bounds apply to every row: an outage longer than the bound must cost the oldest events,
        never the disk or the recorder. One transaction, so a crash leaves either all or none deleted.
        """
        cutoff_ts = now - max_days * _DAY_S
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
                excess = max(0, int(count) - max_events)
                # The newest seq that must go: either by age or by count, whichever reaches further.
                limit_seq = 0
                if excess:
                    row = self._db.execute(
                        "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET ?", (excess - 1,)
                    ).fetchone()
                    limit_seq = int(row[0])
                # By age only the old prefix goes: an event stamped 1970 by a Pi that booted without a
                # clock must not take every newer event with it.
                row = self._db.execute("SELECT MIN(seq) FROM events WHERE ts >= ?", (cutoff_ts,)).fetchone()
                if row[0] is not None:
                    limit_seq = max(limit_seq, int(row[0]) - 1)
                elif count:
                    (newest,) = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
                    limit_seq = max(limit_seq, int(newest))
                if not limit_seq:
                    self._db.execute("COMMIT")
                    return PruneResult()
                (undelivered,) = self._db.execute(
                    "SELECT COUNT(*) FROM events WHERE seq <= ? AND delivered = 0", (limit_seq,)
                ).fetchone()
                cursor = self._db.execute("DELETE FROM events WHERE seq <= ?", (limit_seq,))
                dropped = cursor.rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return PruneResult(dropped=dropped, undelivered=int(undelivered), first_kept_seq=limit_seq + 1)

    def close(self) -> None:
        with self._lock:
            self._db.close()
