"""Notes and tags the office adds to calls for training: beside the evidence, never in it.

A sqlite file of its own (DATA/annotations.sqlite with `--data`, or `--annotations FILE` beside an
archive): adding a note or a tag never changes a recording, a sidecar, an index record or a hash.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, at_s REAL NOT NULL,
    text TEXT NOT NULL, by TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS notes_call ON notes (call_id);
CREATE TABLE IF NOT EXISTS tags (call_id TEXT NOT NULL, tag TEXT NOT NULL, by TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (call_id, tag));
CREATE INDEX IF NOT EXISTS tags_tag ON tags (tag);
"""


class Annotations:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_note(self, call_id: str, at_s: float, text: str, by: str) -> dict[str, Any]:
        with self._lock:
            cursor = self._db.execute("INSERT INTO notes (call_id, at_s, text, by, created) VALUES (?, ?, ?, ?, ?)",
                                      (call_id, at_s, text, by, time.time()))
        return {"id": cursor.lastrowid, "call_id": call_id, "at_s": at_s, "text": text, "by": by}

    def add_tag(self, call_id: str, tag: str, by: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO tags (call_id, tag, by, created) VALUES (?, ?, ?, ?)",
                             (call_id, tag, by, time.time()))

    def notes(self, call_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, at_s, text, by FROM notes WHERE call_id = ? ORDER BY at_s, id",
                                    (call_id,)).fetchall()
        return [{"id": r[0], "at_s": r[1], "text": r[2], "by": r[3]} for r in rows]

    def tags(self, call_id: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT tag FROM tags WHERE call_id = ? ORDER BY tag", (call_id,))]

    def calls_with_tag(self, tag: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT call_id FROM tags WHERE tag = ?", (tag,))}

    def calls_with_note_text(self, text: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT call_id FROM notes WHERE text LIKE ? ESCAPE '\\'",
                                                   ("%" + _escape_like(text) + "%",))}

    def all_tags(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute("SELECT tag, COUNT(*) FROM tags GROUP BY tag ORDER BY tag")]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
