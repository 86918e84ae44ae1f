"""The durable event journal: every event is written here before anyone is told about it.

The journal is the record; printers and publishers replay it. sqlite in WAL mode gives a committed
row per event that survives a kill, and an INTEGER PRIMARY KEY gives `seq` for free: it continues
from the last stored event after a restart, so `seq` increases by one per event per device.
Delivery bookkeeping (`delivered`) is here so the MQTT publisher can drain a backlog in order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from callrec.events import Event, StampedEvent

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
    """Append-only event store with a gap-free, restart-proof sequence number."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an event may be published the moment it is committed; after a power cut its seq
        # must not be handed out again (consumers drop duplicates by seq).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def append(self, event: Event) -> StampedEvent:
        """Store the event and return it with its sequence number; committed when this returns."""
        body = json.dumps(
            {"type": event.type, "line": event.line, "call_id": event.call_id, "fields": event.fields},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        with self._lock:
            cursor = self._db.execute("INSERT INTO events(ts, body) VALUES (?, ?)", (event.wall, body))
            seq = int(cursor.lastrowid or 0)
        return StampedEvent(seq, event)

    def since(self, after_seq: int, limit: int = 1000) -> list[StampedEvent]:
        """Events with `seq > after_seq`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ts, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [_row_to_event(row) for row in rows]

    def undelivered(self, limit: int = 1000) -> list[StampedEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ts, body FROM events WHERE delivered = 0 ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_event(row) for row in rows]

    def mark_delivered(self, seqs: list[int]) -> None:
        with self._lock:
            self._db.executemany("UPDATE events SET delivered = 1 WHERE seq = ?", [(s,) for s in seqs])

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    def __iter__(self) -> Iterator[StampedEvent]:
        return iter(self.since(0, limit=2**62))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row_to_event(row: tuple[int, float, str]) -> StampedEvent:
    seq, ts, body = row
    data = json.loads(body)
    return StampedEvent(seq, Event(data["type"], data["line"], data["call_id"], ts, data["fields"]))
