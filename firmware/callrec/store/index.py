"""The call index: one document per call, found fast by id, recency, line, number and date.

The index is what the CLI, the front end and the retention job ask "which calls were there?"; the
recording files and the event journal are the evidence, the index is the catalogue. It is a TinyDB
(table "calls") on the sqlite storage of `sqlite_storage`, so generic TinyDB queries work on it,
while the operations done on every call or every page view (add, latest, by number, counts) are
single indexed SQL statements that stay in milliseconds at 100,000 calls (see bench/bench_index.py).

A record is validated before it is stored, against the one model of a call record
(store/record.py): a wrong-typed field would otherwise sit in the index until someone's report
breaks months later. Fields the model does not name are stored and returned unchanged.

Thread and process safety: one sqlite connection per `CallIndex`, serialised by a lock, so the
recorder thread and front-end threads can share one instance; other processes (`callrec calls
list` while the service runs) open their own, and WAL plus a busy timeout lets them coexist.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from tinydb import TinyDB

from callrec.events import utc_iso
from callrec.store.record import STATUSES, validate_record
from callrec.store.sqlite_storage import INSERT_DOCUMENT, SET_BODY, SQLiteStorage, SQLiteTinyDB, dump_document

log = logging.getLogger(__name__)

TABLE = "calls"
REOPEN_EVERY_S = 5.0
NUMBER_MATCHES = ("exact", "suffix", "contains")
_SET_BODY_OF_CALL = SET_BODY + " WHERE tbl = :tbl AND call_id = :call_id"

def _dump_record(record: Mapping[str, Any]) -> str:
    """JSON body of a validated record; a value JSON cannot hold is reported by its field name."""
    try:
        return dump_document(record)
    except (TypeError, ValueError):
        for name, value in record.items():
            try:
                dump_document({name: value})
            except (TypeError, ValueError) as error:
                raise ValueError(f"call record field '{name}' cannot be stored as JSON: {error}") from None
        raise


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative int, not {limit!r}")


def _normalise_time(value: str, what: str) -> str:
    """Any ISO 8601 time, as the index stores times (events.utc_iso), so text order is time order."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an ISO 8601 time, not {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} {value!r} has no UTC offset; say 'Z' for UTC")
    return utc_iso(moment.timestamp())


class CallIndex:
    """The catalogue of calls, stored in one sqlite file (e.g. DATA/index.sqlite).

    Every write is committed (and, with the default `synchronous="FULL"`, fsynced) when the method
    returns. Ordering is by `call_id`, which the recorder makes time-sortable; `started_at` is only
    used by the date queries, compared as text after normalising the argument to the
    `events.utc_iso` form the recorder writes.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0, synchronous: str = "FULL",
                 readonly: bool = False, check: bool = False, lazy: bool = False) -> None:
        """Open (creating it if need be) the index at `path`.

        `lazy`: when the file cannot be opened now (not damage: a full disk, say), start anyway and
        open it at the first use that finds it possible; until then every use raises
        sqlite3.OperationalError, which its callers treat as "not now".

        `readonly` opens it for reading only, also on a read-only disk; `check` runs sqlite's
        integrity check first. StoreDamaged (store.damage) when the file is not a usable index.
        """
        self.path = Path(path)
        self._options = {"busy_timeout_s": busy_timeout_s, "synchronous": synchronous, "readonly": readonly}
        self._db: TinyDB | None = None
        self._next_attempt = 0.0
        self.unavailable: str | None = None
        if lazy:
            try:
                self._open(check)
            except (sqlite3.OperationalError, OSError) as error:
                # A full disk cannot even give sqlite its WAL index: the service starts anyway,
                # keeps what it cannot index for later, and opens the index once it can.
                self.unavailable = str(error)
                log.error("the call index %s cannot be opened (%s); trying again as calls end", self.path, error)
        else:
            self._open(check)

    def _open(self, check: bool = False) -> None:
        self._db = SQLiteTinyDB(self.path, check=check, **self._options)
        self.unavailable = None

    @property
    def db(self) -> TinyDB:
        if self._db is None:
            if time.monotonic() < self._next_attempt:
                raise sqlite3.OperationalError(f"the call index {self.path} is not available ({self.unavailable})")
            self._next_attempt = time.monotonic() + REOPEN_EVERY_S
            try:
                self._open()
            except (sqlite3.OperationalError, OSError) as error:
                self.unavailable = str(error)
                raise sqlite3.OperationalError(f"the call index {self.path} is not available ({error})") from None
            log.info("the call index %s is available again", self.path)
        assert self._db is not None  # set by _open()
        return self._db

    @property
    def _storage(self) -> SQLiteStorage:
        return cast(SQLiteStorage, self.db.storage)

    @property
    def table(self) -> Any:
        return self.db.table(TABLE)

    # -- writes -------------------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> None:
        """Store a call, replacing any earlier document with the same call_id (upsert)."""
        self.add_many([record])

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Upsert many calls in one transaction (imports, benchmarks); all or none are stored."""
        bodies = []
        for record in records:
            validate_record(record)
            bodies.append((record["call_id"], _dump_record(record)))
        with self._storage.transaction() as db:
            next_id = self._storage.next_doc_id(TABLE)
            for call_id, body in bodies:
                params = {"tbl": TABLE, "call_id": call_id, "body": body, "doc_id": next_id}
                if not db.execute(_SET_BODY_OF_CALL, params).rowcount:
                    db.execute(INSERT_DOCUMENT, params)
                    next_id += 1
        return len(bodies)

    def update(self, call_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `changes` into the call's top-level fields and return the stored result.

        Raises KeyError if the call is not in the index, ValueError if the result is not a valid
        record (the stored document is then left as it was).
        """
        if "call_id" in changes and changes["call_id"] != call_id:
            raise ValueError(f"call record field 'call_id' cannot change ({call_id!r} -> {changes['call_id']!r})")
        with self._storage.transaction() as db:
            row = db.execute(
                "SELECT doc_id, body FROM documents WHERE tbl = ? AND call_id = ? LIMIT 1", (TABLE, call_id)
            ).fetchone()
            stored = _record(row[1], call_id) if row is not None else None
            if stored is None:
                raise KeyError(call_id)
            merged = {**stored, **changes}
            validate_record(merged)
            db.execute(_SET_BODY_OF_CALL, {"tbl": TABLE, "call_id": call_id, "body": _dump_record(merged)})
        return merged

    def remove(self, call_id: str) -> bool:
        """Delete a call's document (retention, erasure on request); False if it was not there."""
        with self._storage.transaction() as db:
            return db.execute("DELETE FROM documents WHERE tbl = ? AND call_id = ?", (TABLE, call_id)).rowcount > 0

    # -- reads --------------------------------------------------------------------------------------

    def get(self, call_id: str) -> dict[str, Any] | None:
        rows = self._storage.query("SELECT body FROM documents WHERE tbl = ? AND call_id = ? LIMIT 1", (TABLE, call_id))
        return _record(rows[0][0], call_id) if rows else None

    def latest(self, limit: int = 20, line: int | None = None) -> list[dict[str, Any]]:
        """The newest calls (by call_id) first, optionally of one line."""
        _check_limit(limit)
        if line is None:
            return self._bodies(
                "SELECT body FROM documents WHERE tbl = ? ORDER BY call_id DESC LIMIT ?", (TABLE, limit)
            )
        return self._bodies(
            "SELECT body FROM documents WHERE tbl = ? AND line = ? ORDER BY call_id DESC LIMIT ?",
            (TABLE, line, limit),
        )

    def find_by_number(self, number: str, limit: int = 100, *, match: str = "exact") -> list[dict[str, Any]]:
        """Calls where `number` is the caller's or the dialed number, newest first.

        `match="exact"` uses the number indexes; "suffix" (the last digits, as people remember a
        number) and "contains" scan the number indexes, not the documents, so they stay usable.
        """
        _check_limit(limit)
        if not isinstance(number, str) or not number:
            raise ValueError(f"number must be a non-empty string, not {number!r}")
        if match == "exact":
            caller, dialed = "caller_number = ?2", "dialed_number = ?2"
        elif match in NUMBER_MATCHES:
            escaped = number.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            number = f"%{escaped}" if match == "suffix" else f"%{escaped}%"
            caller, dialed = "caller_number LIKE ?2 ESCAPE '\\'", "dialed_number LIKE ?2 ESCAPE '\\'"
        else:
            raise ValueError(f"match must be one of {NUMBER_MATCHES}, not {match!r}")
        # Newest `limit` of each number index, merged, then the newest `limit` of both: the sorting
        # happens on (rowid, call_id) pairs from the indexes, and only the winners' bodies are read.
        branch = (
            "SELECT * FROM (SELECT rowid, call_id FROM documents INDEXED BY documents_{}"
            " WHERE tbl = ?1 AND {} ORDER BY call_id DESC LIMIT ?3)"
        )
        return self._bodies(
            "SELECT body FROM documents WHERE rowid IN (SELECT rowid FROM ("
            f"{branch.format('caller', caller)} UNION {branch.format('dialed', dialed)}"
            ") ORDER BY call_id DESC LIMIT ?3) ORDER BY call_id DESC",
            (TABLE, number, limit),
        )

    def started_between(self, start_iso: str, end_iso: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Calls with start_iso <= started_at < end_iso, newest first (lookup by date)."""
        _check_limit(limit)
        return self._bodies(
            "SELECT body FROM documents WHERE tbl = ? AND started_at >= ? AND started_at < ?"
            " ORDER BY started_at DESC LIMIT ?",
            (TABLE, _normalise_time(start_iso, "start"), _normalise_time(end_iso, "end"), limit),
        )

    def call_ids(self) -> set[str]:
        """Every call id in the index (from the call_id index alone, no document is read)."""
        rows = self._storage.query("SELECT call_id FROM documents WHERE tbl = ?", (TABLE,))
        return {row[0] for row in rows}

    def recording_paths(self) -> list[tuple[str, str, str | None]]:
        """(call_id, recording path, missing_since) of every call that has a recording file."""
        rows = self._storage.query(
            "SELECT call_id, json_extract(body, '$.recording.path'), json_extract(body, '$.missing_since')"
            " FROM documents WHERE tbl = ? AND json_extract(body, '$.recording.path') IS NOT NULL",
            (TABLE,))
        return [(row[0], row[1], row[2]) for row in rows]

    def count(self, status: str | None = None) -> int:
        """All calls, or those of one status; constant time (counts are kept by sqlite triggers)."""
        if status is None:
            return len(self.table)
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        return self.count_by_status()[status]

    def count_by_status(self) -> dict[str, int]:
        """Calls per status, every known status present (0 if none)."""
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({s: n for s, n in self._storage.status_counts(TABLE).items() if s is not None})
        return counts

    def calls_since(self, started_at_iso: str) -> int:
        """How many calls started at or after the given time ("calls today" on the front page)."""
        since = _normalise_time(started_at_iso, "started_at_iso")
        rows = self._storage.query("SELECT COUNT(*) FROM documents WHERE tbl = ? AND started_at >= ?", (TABLE, since))
        return int(rows[0][0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every call, oldest call_id first, read in pages so writers are not held up meanwhile."""
        return self.after("")

    def after(self, call_id: str) -> Iterator[dict[str, Any]]:
        """The calls whose call_id sorts after `call_id` (newer ones), oldest first, in pages."""
        after = call_id
        while True:
            rows = self._storage.query(
                "SELECT call_id, body FROM documents WHERE tbl = ? AND call_id > ? ORDER BY call_id LIMIT 500",
                (TABLE, after),
            )
            if not rows:
                return
            for row_call_id, body in rows:
                record = _record(body, row_call_id)
                if record is not None:
                    yield record
            after = rows[-1][0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> CallIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bodies(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [r for r in (_record(row[0]) for row in self._storage.query(sql, params)) if r is not None]


def _record(body: str, call_id: str | None = None) -> dict[str, Any] | None:
    """A stored row as its call record, or None when it is not one (the row was edited behind the
    index's back: deep nesting, a number no float holds, not an object). Such a row reads as not
    indexed, so `callrec recover` indexes the call again from its sidecar and `verify` names it."""
    try:
        record = json.loads(body)
    except (ValueError, RecursionError):
        record = None
    if isinstance(record, dict) and isinstance(record.get("call_id"), str):
        return record
    log.error("index row of %s is not a call record (edited or damaged): skipped; `callrec recover` indexes "
              "the call again from its sidecar", call_id or "a call")
    return None
