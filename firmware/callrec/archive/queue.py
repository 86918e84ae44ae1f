"""The archive's durable queue (DATA/archive.sqlite): what is finalized and not yet confirmed in the
archive survives restarts, crashes and power cuts.

`pending` holds calls to upload (with their attempts and last error), `archived` what the archive
has confirmed (key, SHA-256, when), `ledgers` how far the chain and the audit log have been
shipped. Every change is one committed sqlite transaction (WAL, synchronous FULL), so a kill at
any moment leaves either the old or the new state, and the uploads themselves are idempotent.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    call_id TEXT PRIMARY KEY, queued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS archived (
    call_id TEXT PRIMARY KEY, archived_at REAL NOT NULL, recording_key TEXT, sha256 TEXT, bytes INTEGER);
CREATE TABLE IF NOT EXISTS ledgers (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_hashes (name TEXT PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deletions (key TEXT PRIMARY KEY, queued_at REAL NOT NULL);
"""


@dataclass(frozen=True)
class Pending:
    call_id: str
    queued_at: float
    attempts: int
    next_try: float
    last_error: str | None


class ArchiveQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, call_id: str, now: float | None = None) -> bool:
        """Queue a call unless it is queued or archived already; True when it was added."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM archived WHERE call_id = ?", (call_id,)).fetchone():
                return False
            cursor = self._db.execute("INSERT OR IGNORE INTO pending (call_id, queued_at) VALUES (?, ?)",
                                      (call_id, time.time() if now is None else now))
            return cursor.rowcount > 0

    def due(self, now: float, limit: int = 50) -> list[Pending]:
        with self._lock:
            rows = self._db.execute(
                "SELECT call_id, queued_at, attempts, next_try, last_error FROM pending WHERE next_try <= ? "
                "ORDER BY call_id LIMIT ?", (now, limit)).fetchall()
        return [Pending(*row) for row in rows]

    def pending(self) -> list[Pending]:
        with self._lock:
            rows = self._db.execute("SELECT call_id, queued_at, attempts, next_try, last_error FROM pending "
                                    "ORDER BY call_id").fetchall()
        return [Pending(*row) for row in rows]

    def failed(self, call_id: str, error: str, next_try: float) -> None:
        with self._lock:
            self._db.execute("UPDATE pending SET attempts = attempts + 1, next_try = ?, last_error = ? "
                             "WHERE call_id = ?", (next_try, error[:500], call_id))

    def done(self, call_id: str, key: str | None, sha256: str | None, size: int | None, at: float) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO archived (call_id, archived_at, recording_key, sha256, bytes) "
                             "VALUES (?, ?, ?, ?, ?)", (call_id, at, key, sha256, size))
            self._db.execute("DELETE FROM pending WHERE call_id = ?", (call_id,))
            self._db.execute("COMMIT")

    def drop(self, call_id: str) -> None:
        """A queued call that no longer exists locally (deleted by policy before it was shipped)."""
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE call_id = ?", (call_id,))

    def archived(self, call_id: str) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT archived_at FROM archived WHERE call_id = ?", (call_id,)).fetchone()
        return float(row[0]) if row else None

    def archived_ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT call_id FROM archived")}

    def ledger_seq(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM ledgers WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_ledger_seq(self, name: str, seq: int) -> None:
        """`seq` without its hash: a hash kept for an earlier seq no longer applies and goes."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO ledgers (name, seq) VALUES (?, ?)", (name, seq))
            self._db.execute("DELETE FROM ledger_hashes WHERE name = ?", (name,))

    def ledger_hash(self, name: str) -> str | None:
        """The hash of the last entry of `name` shipped (None: not known, e.g. shipped by an older firmware)."""
        with self._lock:
            row = self._db.execute("SELECT hash FROM ledger_hashes WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_ledger_head(self, name: str, seq: int, digest: str) -> None:
        """How far `name` was shipped: its last entry's seq and hash, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO ledgers (name, seq) VALUES (?, ?)", (name, seq))
                self._db.execute("INSERT OR REPLACE INTO ledger_hashes (name, hash) VALUES (?, ?)", (name, digest))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete_later(self, keys: list[str], now: float | None = None) -> None:
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO deletions (key, queued_at) VALUES (?, ?)",
                                 [(key, time.time() if now is None else now) for key in keys])

    def deletions(self, limit: int = 100) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT key FROM deletions ORDER BY key LIMIT ?", (limit,))]

    def deleted(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM deletions WHERE key = ?", (key,))
