"""The durable event journal: every event is written here before anyone is told about it.

The journal is the record; printers and publishers replay it. sqlite in WAL mode gives a committed
row per event that survives a kill, and an INTEGER PRIMARY KEY gives `seq` for free: it continues
from the last stored event after a restart, so `seq` increases by one per event per device.
Delivery bookkeeping (`delivered`) is here so the MQTT publisher can drain a backlog in order.

`seq` must never be handed out twice, even when the journal itself is lost (a damaged file moved
aside, a deleted one): `DATA/journal.seq` keeps a reservation ahead of the last `seq` used,
renewed every `SEQ_RESERVE // 2` events, and a journal that starts empty continues after it. The
gap that leaves is the truth: events were lost with the old journal.

Nor when the journal cannot be written (a full disk): the bus then stamps events in memory with the
numbers after the last one journaled (events/bus.py), and they are told (stdout, the boards) before
they are stored; if the process ends first they never are. So every failed append marks the
reservation `held` ("numbers up to it may have been handed out outside the journal") and keeps it
ahead of what the bus can have stamped: at most two numbers per failed append (the event and, once
per outage, the `journal` alarm). The next journal opened over a `held` reservation continues after
it. `journal.seq` is allocated once and rewritten in place (store/slots.py), so marking it needs no
free block: it works on the full disk that caused the trouble. A successful append of a new event
ends the outage: the bus appends new events only once it holds none. That journal also notes the
span it skipped (`unjournaled`): a number in it that the journal does not hold was never stored,
which recovery needs to tell a lost `call.ended` from a pruned one (recording/recover.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from callrec.events import Event, StampedEvent
from callrec.store.damage import StoreDamaged, check_integrity, readonly_connection
from callrec.store.slots import SlotFile, SlotTooSmall

log = logging.getLogger(__name__)

SEQ_RESERVE = 1000
SEQ_SLOT_BYTES = 512          # journal.seq: two slots, one disk sector each
STAMPS_PER_FAILED_APPEND = 2  # what the bus can stamp in memory per append the journal refused
REOPEN_EVERY_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    body TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_undelivered ON events(delivered, seq);
CREATE TABLE IF NOT EXISTS unjournaled (
    first INTEGER NOT NULL,
    last INTEGER NOT NULL
);
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
        self._seq_file = SlotFile(self._seq_path, SEQ_SLOT_BYTES)
        self._reserved = 0           # durably reserved: no number up to it is handed out again
        self._stored = 0             # the highest seq the journal holds
        self._outage_base: int | None = None   # while appends fail: the bus stamps numbers above this
        self._failed_appends = 0
        self._reserve_failing = False   # journal.seq could not be written: said once, until it can
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
        floor, held = self._floor(last)
        if floor > last:   # sqlite_sequence has no key: an INSERT beside the old row would not count
            if db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (floor,)).rowcount == 0:
                db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('events', ?)", (floor,))
            if held:
                db.execute("INSERT INTO unjournaled(first, last) VALUES (?, ?)", (last + 1, floor))
            last = floor
        self._stored = last
        self._reserve(max(self._reserved, last + SEQ_RESERVE))

    def _floor(self, last: int) -> tuple[int, bool]:
        """Where this journal's numbers continue: after `last`, or after every number an earlier
        journal or process may have handed out (the module docstring); and whether the numbers
        skipped were handed out while this journal could not be written (`held`)."""
        reserved, held, known = self._read_reservation()
        self._reserved = max(self._reserved, reserved)
        if reserved > last and (held or last == 0):
            why = "numbers up to it were handed out while the journal could not be written" if held else \
                  "the journal starts empty"
            log.warning("event journal %s: seq continues after %d, the last one reserved (%s)", self.path, reserved,
                        why)
            return reserved, held
        if not known and last > 0:
            log.warning("event journal %s: %s is missing; seq continues after %d, in case numbers were handed out "
                        "that the journal never took", self.path, self._seq_path.name, last + SEQ_RESERVE)
            return last + SEQ_RESERVE, False
        return last, False

    def _read_reservation(self) -> tuple[int, bool, bool]:
        """(reserved, held, known): `journal.seq` as written in place, or as the firmware before it wrote
        it (one number); `known` is False when there is no readable reservation at all."""
        payload = self._seq_file.read()
        try:
            if payload is not None:
                number, state = payload.decode("ascii").split()
                return int(number), state == "held", True
            return int(self._seq_path.read_text(encoding="ascii").strip()), False, True
        except (OSError, ValueError, UnicodeDecodeError):
            return 0, False, False

    def _reserve(self, reserved: int) -> None:
        """Reserve seq numbers up to `reserved` durably, marked `held` while appends fail. In place in
        the allocated `journal.seq` (allocated on the first call that finds room)."""
        held = self._outage_base is not None
        payload = f"{reserved} {'held' if held else 'clean'}".encode("ascii")
        try:
            if not self._seq_file.allocated():
                self._seq_file.allocate()
            self._seq_file.write(payload)
        except (OSError, SlotTooSmall) as error:
            # Said once per streak: on a full disk every retry of a held event comes here, and a
            # line each time floods the log (and the journald on that same disk).
            if not self._reserve_failing:
                log.warning("cannot write %s (%s); seq numbers beyond %d stay unreserved until it can",
                            self._seq_path, error, self._reserved)
            self._reserve_failing = True
            return
        if self._reserve_failing:
            log.info("%s written again: seq numbers up to %d reserved", self._seq_path, reserved)
            self._reserve_failing = False
        self._reserved = reserved

    def _append_failed(self) -> None:
        """The bus is about to stamp events in memory, above the last number journaled: reserve (in
        place, it works on a full disk) past every number it can have stamped, marked `held`."""
        if self._outage_base is None:
            self._outage_base = max(self._stored, self._reserved if self._db is None else 0)
            self._failed_appends = 0
        self._failed_appends += 1
        handed = self._outage_base + STAMPS_PER_FAILED_APPEND * self._failed_appends
        if self._failed_appends == 1 or handed + SEQ_RESERVE // 2 > self._reserved:
            self._reserve(max(self._reserved, handed + SEQ_RESERVE))

    def _appended(self, stored: int, fresh: bool) -> None:
        self._stored = max(self._stored, stored)
        if fresh and self._outage_base is not None:   # the bus held nothing back: every number is journaled
            self._outage_base = None
            self._reserve(max(self._reserved, self._stored + SEQ_RESERVE))
        elif self._stored + SEQ_RESERVE // 2 > self._reserved:
            self._reserve(self._stored + SEQ_RESERVE)

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
            try:
                db = self._connection()
                if seq is None:
                    cursor = db.execute("INSERT INTO events(ts, body) VALUES (?, ?)", (event.wall, body))
                else:
                    cursor = db.execute("INSERT INTO events(seq, ts, body) VALUES (?, ?, ?)",
                                        (seq, event.wall, body))
            except sqlite3.IntegrityError:
                raise   # a held event already stored: not a failure to write
            except (sqlite3.Error, OSError):
                if not self.readonly:
                    self._append_failed()
                raise
            stored = int(cursor.lastrowid or 0)
            self._appended(stored, fresh=seq is None)
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

    def never_stored(self, seq: int) -> bool:
        """Whether `seq` lies in a span this journal skipped because its numbers were handed out
        while it could not be written: if it does not hold that row, the row never reached it
        (not pruned, not lost with an older journal)."""
        with self._lock:
            if self._db is None:
                return False
            try:
                row = self._db.execute("SELECT 1 FROM unjournaled WHERE first <= ? AND ? <= last LIMIT 1",
                                       (seq, seq)).fetchone()
            except sqlite3.OperationalError:   # a read-only journal from before the table
                return False
        return row is not None

    def latest(self, event_type: str, page: int = 1000) -> StampedEvent | None:
        """The newest event of `event_type`, read backwards a page at a time (`seq` may jump: the
        pages follow the rows, not the numbers); rows that are not events are passed over."""
        before = (1 << 62)
        while True:
            with self._lock:
                if self._db is None:
                    return None
                rows = self._db.execute("SELECT seq, ts, body FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                                        (before, page)).fetchall()
            if not rows:
                return None
            for row in rows:
                try:
                    stamped = _row_to_event(row)
                except (ValueError, RecursionError, KeyError, TypeError):
                    continue
                if stamped.event.type == event_type:
                    return stamped
            before = rows[-1][0]

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
        the journal is not available, the last one reserved: the bus stamps numbers above it, so
        the reservation moves on (marked `held`) before this returns."""
        with self._lock:
            if self._db is not None:
                return _last_seq(self._db)
            reserved = max(self._reserved, self._read_reservation()[0])
            if self.readonly:
                return reserved
            self._reserved = reserved
            if self._outage_base is None:
                self._outage_base = reserved
                self._failed_appends = 0
                self._reserve(reserved + SEQ_RESERVE)
            return self._outage_base

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
