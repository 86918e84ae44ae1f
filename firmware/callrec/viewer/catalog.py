"""The viewer's search: every call record in an in-memory sqlite table, indexed for the searches
the office makes (either party's number by prefix, date range, line, direction, status), joined
with the annotations for tags and note text. Loaded at start, topped up with newer calls before a
search when it is older than `REFRESH_S`; fast at 100,000 calls (bench/bench_viewer.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from callrec.viewer.annotations import Annotations
from callrec.viewer.source import CallSource

REFRESH_S = 5.0
SCHEMA = """
CREATE TABLE calls (call_id TEXT PRIMARY KEY, started_at TEXT, day TEXT, line INTEGER, direction TEXT,
    status TEXT, caller TEXT, dialed TEXT, duration REAL, body TEXT NOT NULL);
CREATE INDEX calls_started ON calls (started_at);
CREATE INDEX calls_caller ON calls (caller);
CREATE INDEX calls_dialed ON calls (dialed);
CREATE INDEX calls_line ON calls (line, call_id);
CREATE INDEX calls_day_line ON calls (day, line);
"""


@dataclass
class Query:
    number: str | None = None
    since: str | None = None
    until: str | None = None
    line: int | None = None
    direction: str | None = None
    status: str | None = None
    tag: str | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass
class Found:
    total: int
    calls: list[dict[str, Any]]
    per_day: list[dict[str, Any]] = field(default_factory=list)


class Catalog:
    def __init__(self, source: CallSource, annotations: Annotations) -> None:
        self.source = source
        self.annotations = annotations
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._last = ""
        self._loaded = 0.0
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        every = float(getattr(self.source, "refresh_s", REFRESH_S))   # an archive is listed less often
        if not force and time.monotonic() - self._loaded < every:
            return
        rows = []
        last = self._last
        for record in self.source.records(self._last):
            call_id = str(record["call_id"])
            started = str(record.get("started_at") or "")
            rows.append((call_id, started, started[:10], record.get("line"), record.get("direction"),
                         record.get("status"), record.get("caller_number"), record.get("dialed_number"),
                         record.get("duration_s"), json.dumps(record, ensure_ascii=False)))
            last = max(last, call_id)
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if len(rows) > 1000:
                self._db.execute("ANALYZE")   # the planner picks the right index for each search
            self._db.commit()
            self._last = last
            self._loaded = time.monotonic()

    def reload(self, call_id: str) -> None:
        """One call read again from its source (its record changed: a hold)."""
        record = self.source.get(call_id)
        if record is not None:
            with self._lock:
                self._db.execute("UPDATE calls SET status = ?, body = ? WHERE call_id = ?",
                                 (record.get("status"), json.dumps(record, ensure_ascii=False), call_id))
                self._db.commit()

    def get(self, call_id: str) -> dict[str, Any] | None:
        self.refresh()
        with self._lock:
            row = self._db.execute("SELECT body FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def search(self, query: Query) -> Found:
        self.refresh()
        where, params = ["1"], []
        if query.number:   # a prefix as a range, so the indexes serve it (numbers are digits, * # + A-D)
            low, high = query.number, query.number + "~"
            where.append("((caller >= ? AND caller < ?) OR (dialed >= ? AND dialed < ?))")
            params += [low, high, low, high]
        if query.since:
            where.append("started_at >= ?")
            params.append(query.since)
        if query.until:
            where.append("started_at < ?")
            params.append(query.until)
        for column in ("line", "direction", "status"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        for ids in ([self.annotations.calls_with_tag(query.tag)] if query.tag else []) + \
                   ([self.annotations.calls_with_note_text(query.text)] if query.text else []):
            where.append(f"call_id IN ({','.join('?' * len(ids))})" if ids else "0")
            params += sorted(ids)
        clause = " AND ".join(where)
        with self._lock:
            total = int(self._db.execute(f"SELECT COUNT(*) FROM calls WHERE {clause}", params).fetchone()[0])
            rows = self._db.execute(f"SELECT body FROM calls WHERE {clause} ORDER BY call_id DESC LIMIT ? OFFSET ?",
                                    [*params, query.limit, query.offset]).fetchall()
            days = self._db.execute(f"SELECT day, line, COUNT(*) FROM calls WHERE {clause} GROUP BY day, line "
                                    "ORDER BY day, line", params).fetchall()
        calls = [json.loads(row[0]) for row in rows]
        return Found(total, calls, [{"day": d, "line": line, "count": n} for d, line, n in days])
