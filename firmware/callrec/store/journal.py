"""The durable event journal: every event is written here before anyone is told about it.

The journal is the record; printers and publishers replay it. sqlite in WAL mode gives a committed
row per event that survives a kill, and an INTEGER PRIMARY KEY gives `seq` for free: it continues
from the last stored event after a restart, so `seq` increases by one per event per device.
Delivery bookkeeping (`delivered`) is here so the MQTT publisher can drain a backlog in order.

`seq` must never be handed out twice, even when the journal itself is lost (a damaged file moved
aside, a deleted one): `DATA/journal.seq` keeps a reservation ahead of the last `seq` used,
renewed every `SEQ_RESERVE` events, and a journal that starts empty continues after it. The gap
that leaves is the truth: events were lost with the old journal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from callrec.events import Event, StampedEvent
from callrec.store.damage import StoreDamaged, check_integrity, readonly_connection

log = logging.getLogger(__name__)

SEQ_RESERVE = 1000
REOPEN_EVERY_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    body TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_undelivered ON events(delivered, seq);
"""


class Journal:
    """Append-only event store with a gap-free, restart-proof sequence number.

    Raises StoreDamaged when the file is not a usable sqlite database (the caller moves it aside,
    see store.damage); `readonly=True` opens it for reading only (the console, a read-only disk).
    """

    def __init__(self, path: Path, *, readonly: bool = False, check: bool = False, lazy: bool = False) -> None:
        """`lazy`: when the file cannot be opened now (not damage: a full disk), start anyway; until
        it opens (tried again at most every few seconds) appends raise sqlite3.OperationalError,
        which the bus answers by holding events in memory, and reads find nothing."""
        self.path = path
        self.readonly = readonly
        self._lock = threading.Lock()
        self._seq_path = path.with_name(path.stem + ".seq")
        self._reserved = 0
        self._db: sqlite3.Connection | None = None
        self._next_attempt = 0.0
        self.unavailable: str | None = None
        if lazy:
            try:
                self._open(check)
            except (sqlite3.OperationalError, OSError) as error:
                self.unavailable = str(error)
                log.error("the event journal %s cannot be opened (%s); events are held in memory", path, error)
        else:
            self._open(check)

    def _open(self, check: bool) -> None:
        path, readonly = self.path, self.readonly
        try:
            if readonly:
                self._db = readonly_connection(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as error:
            raise StoreDamaged(path, str(error)) from None
        try:
            if not readonly:
                self._prepare(self._db, check)
            else:
                self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        except sqlite3.DatabaseError as error:
            self._db.close()
            self._db = None
            if isinstance(error, sqlite3.OperationalError) and not _damage_message(str(error)):
                raise   # locked, read-only, disk full: not damage, the caller says what it is
            raise StoreDamaged(path, str(error)) from None
        self.unavailable = None

    def _connection(self) -> sqlite3.Connection:
        """The open connection, opening it now if it could not be before (under the lock)."""
        if self._db is None:
            if time.monotonic() < self._next_attempt:
                raise sqlite3.OperationalError(f"the event journal is not available ({self.unavailable})")
            self._next_attempt = time.monotonic() + REOPEN_EVERY_S
            try:
                self._open(False)
            except (sqlite3.OperationalError, OSError, StoreDamaged) as error:
                self.unavailable = str(error)
                raise sqlite3.OperationalError(f"the event journal is not available ({error})") from None
            log.info("the event journal %s is available again", self.path)
        assert self._db is not None
        return self._db

    def _prepare(self, db: sqlite3.Connection, check: bool) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: an event may be published the moment it is committed; after a power cut its seq
        # must not be handed out again (consumers drop duplicates by seq).
        db.execute("PRAGMA synchronous=FULL")
        if check:
            check_integrity(db, self.path)
        db.executescript(_SCHEMA)
        last = _last_seq(db)
        floor = self._read_reservation()
        if last == 0 and floor > 0:
            # A new journal where an older one was lost: never hand out its numbers again.
            db.execute("INSERT OR REPLACE INTO sqlite_sequence(name, seq) VALUES ('events', ?)", (floor,))
            log.warning("event journal %s starts empty; seq continues after %d (the last one reserved)",
                        self.path, floor)
            last = floor
        self._reserve(last)

    def _read_reservation(self) -> int:
        try:
            return int(self._seq_path.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def _reserve(self, seq: int) -> None:
        """Reserve seq numbers up to seq + SEQ_RESERVE, durably (a small file, written rarely)."""
        reserved = seq + SEQ_RESERVE
        tmp = self._seq_path.with_name(self._seq_path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="ascii") as handle:
                handle.write(f"{reserved}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._seq_path)
        except OSError as error:
            log.warning("cannot write %s (%s); seq numbers stay unreserved until it can", self._seq_path, error)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._reserved = reserved

    def append(self, event: Event, seq: int | None = None) -> StampedEvent:
        """Store the event and return it with its sequence number; committed when this returns.

        `seq` is given only for an event stamped while the journal could not be written (the bus
        kept it in memory): it is stored under the number it was published with.
        """
        body = json.dumps(
            {"type": event.type, "line": event.line, "call_id": event.call_id, "fields": event.fields,
             "clock_trusted": event.clock_trusted},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        with self._lock:
            db = self._connection()
            if seq is None:
                cursor = db.execute("INSERT INTO events(ts, body) VALUES (?, ?)", (event.wall, body))
            else:
                cursor = db.execute("INSERT INTO events(seq, ts, body) VALUES (?, ?, ?)", (seq, event.wall, body))
            stored = int(cursor.lastrowid or 0)
            if stored >= self._reserved:
                self._reserve(stored)
        return StampedEvent(stored, event)

    def since(self, after_seq: int, limit: int = 1000) -> list[StampedEvent]:
        """Events with `seq > after_seq`, oldest first."""
        with self._lock:
            if self._db is None:
                return []
            rows = self._db.execute(
                "SELECT seq, ts, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [_row_to_event(row) for row in rows]

    def undelivered(self, limit: int = 1000) -> list[StampedEvent]:
        with self._lock:
            if self._db is None:
                return []
            rows = self._db.execute(
                "SELECT seq, ts, body FROM events WHERE delivered = 0 ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_event(row) for row in rows]

    def mark_delivered(self, seqs: list[int]) -> None:
        with self._lock:
            self._connection().executemany("UPDATE events SET delivered = 1 WHERE seq = ?", [(s,) for s in seqs])

    def last_seq(self) -> int:
        """The highest seq handed out (kept by sqlite even when the newest rows were pruned); while
        the journal is not available, the last one reserved."""
        with self._lock:
            if self._db is None:
                return self._read_reservation()
            return _last_seq(self._db)

    def __iter__(self) -> Iterator[StampedEvent]:
        return iter(self.since(0, limit=2**62))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _last_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    try:
        kept = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    except sqlite3.OperationalError:   # no AUTOINCREMENT table yet (a read-only old file)
        kept = None
    return max(int(row[0]), int(kept[0]) if kept else 0)


def _damage_message(text: str) -> bool:
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _row_to_event(row: tuple[int, float, str]) -> StampedEvent:
    seq, ts, body = row
    data = json.loads(body)
    return StampedEvent(seq, Event(data["type"], data["line"], data["call_id"], ts, data["fields"],
                                   data.get("clock_trusted")))   # journals from before clock trust: unknown
