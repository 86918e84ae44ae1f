"""A TinyDB storage on sqlite3 that keeps one row per document, so a big table stays fast.

TinyDB's `Storage` API hands over the whole database on every read and every write: at 100,000
calls that is a multi-megabyte JSON round trip per insert, and a crash in the middle of a rewrite
loses everything. Here each document is one row (`tbl`, `doc_id`, JSON `body`) in a WAL-mode
sqlite file, so a write touches one row, a `kill -9` leaves the last committed transaction, and
other processes (the CLI while the service runs) read and write through the same file.

The call fields we look things up by (`call_id`, `line`, `started_at`, `status`, `caller_number`,
`dialed_number`) are indexed columns that sqlite extracts from the JSON body (json_extract) in the
very statement that writes the body: the body stays the single truth, and every write goes through
the three statements below (`INSERT_DOCUMENT`, `UPSERT_DOCUMENT`, `SET_BODY`). They are plain
columns, not generated ones, because sqlite 3.40 never treats an index on a table with generated
columns as covering: a number search would then read every document instead of only the index.

Three layers use this, fastest last:
- `read()` / `write()`: the stock whole-database contract, so any TinyDB code works (slowly).
- `SQLiteTable` (`SQLiteTinyDB.table_class`): TinyDB's table API with per-table reads, row-level
  inserts, counts and `doc_id` lookups in SQL, and a query cache that notices other writers.
- `transaction()` / `query()`: plain SQL for callers that know the schema (the call index).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from callrec.store.damage import StoreDamaged, check_integrity, readonly_connection

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# The lookup columns, each filled from the body's top-level field of the same name.
INDEXED_FIELDS = ("call_id", "line", "started_at", "status", "caller_number", "dialed_number")
_COLUMNS = ", ".join(INDEXED_FIELDS)
_EXTRACTED = ", ".join(f"json_extract(:body, '$.{name}')" for name in INDEXED_FIELDS)

# The only ways a body is written (named parameters :tbl, :doc_id, :body).
INSERT_DOCUMENT = f"INSERT INTO documents(tbl, doc_id, body, {_COLUMNS}) VALUES (:tbl, :doc_id, :body, {_EXTRACTED})"
UPSERT_DOCUMENT = f"{INSERT_DOCUMENT} ON CONFLICT(tbl, doc_id) DO UPDATE SET body = excluded.body, " + ", ".join(
    f"{name} = excluded.{name}" for name in INDEXED_FIELDS
)
# Append the WHERE clause: SET_BODY + " WHERE tbl = :tbl AND call_id = :call_id".
SET_BODY = "UPDATE documents SET body = :body, " + ", ".join(
    f"{name} = json_extract(:body, '$.{name}')" for name in INDEXED_FIELDS
)

_COUNT_NEW = """INSERT INTO document_counts(tbl, status, n) VALUES (NEW.tbl, COALESCE(NEW.status, ''), 1)
    ON CONFLICT(tbl, status) DO UPDATE SET n = n + 1;"""
_COUNT_OLD = "UPDATE document_counts SET n = n - 1 WHERE tbl = OLD.tbl AND status = COALESCE(OLD.status, '');"

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS tinydb_tables (name TEXT PRIMARY KEY) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS documents (
        tbl TEXT NOT NULL,
        doc_id INTEGER NOT NULL,
        body TEXT NOT NULL,
        call_id TEXT, line INTEGER, started_at TEXT, status TEXT, caller_number TEXT, dialed_number TEXT,
        PRIMARY KEY (tbl, doc_id))""",
    "CREATE INDEX IF NOT EXISTS documents_call_id ON documents(tbl, call_id)",
    "CREATE INDEX IF NOT EXISTS documents_line ON documents(tbl, line, call_id)",
    "CREATE INDEX IF NOT EXISTS documents_started_at ON documents(tbl, started_at)",
    "CREATE INDEX IF NOT EXISTS documents_caller ON documents(tbl, caller_number, call_id)",
    "CREATE INDEX IF NOT EXISTS documents_dialed ON documents(tbl, dialed_number, call_id)",
    # Counts per table and status kept by triggers: counting 100,000 index entries takes ~15 ms on
    # every front-page refresh, reading one row takes microseconds. NULL status is kept as ''.
    """CREATE TABLE IF NOT EXISTS document_counts (
        tbl TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tbl, status)
    ) WITHOUT ROWID""",
    f"CREATE TRIGGER IF NOT EXISTS documents_counted_in AFTER INSERT ON documents BEGIN {_COUNT_NEW} END",
    f"CREATE TRIGGER IF NOT EXISTS documents_counted_out AFTER DELETE ON documents BEGIN {_COUNT_OLD} END",
    f"""CREATE TRIGGER IF NOT EXISTS documents_recounted AFTER UPDATE ON documents
        WHEN OLD.tbl IS NOT NEW.tbl OR COALESCE(OLD.status, '') IS NOT COALESCE(NEW.status, '')
        BEGIN {_COUNT_OLD} {_COUNT_NEW} END""",
]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def dump_document(document: Mapping[str, Any]) -> str:
    """The one JSON form of a stored body: compact, UTF-8, no NaN (sqlite's JSON rejects it).

    Being deterministic matters: table rewrites compare these strings to skip unchanged rows.
    """
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class SQLiteStorage(Storage):
    """TinyDB storage backed by one sqlite file in WAL mode, one row per document.

    `synchronous="FULL"` (the default) fsyncs the WAL at every commit, so a committed call record
    also survives a power cut; a few milliseconds per write is nothing at call rates.
    `busy_timeout_s` is how long a writer waits for another process's transaction to finish.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0, synchronous: str = "FULL",
                 readonly: bool = False, check: bool = False) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, not {synchronous!r}")
        self.path = Path(path)
        self.readonly = readonly
        # One connection shared by every thread of this process, serialised by this lock; the
        # RLock lets a transaction call the read helpers below.
        self.lock = threading.RLock()
        self._local_commits = 0
        try:
            if readonly:
                self._db = readonly_connection(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                           check_same_thread=False)
        except sqlite3.DatabaseError as error:
            raise StoreDamaged(self.path, str(error)) from None
        try:
            if readonly:
                self._check_version(self._db.execute("PRAGMA user_version").fetchone()[0])
                self._db.execute("SELECT COUNT(*) FROM documents").fetchone()
            else:
                if check:
                    check_integrity(self._db, self.path)
                self._prepare(synchronous.upper())
        except sqlite3.DatabaseError as error:
            self._db.close()
            text = str(error)
            if isinstance(error, sqlite3.OperationalError) and not any(
                    word in text for word in ("malformed", "not a database", "no such table", "corrupt")):
                raise   # locked, read-only, disk full: not damage, the caller says what it is
            raise StoreDamaged(self.path, text) from None
        except BaseException:
            self._db.close()
            raise
        log.debug("opened TinyDB sqlite storage %s", self.path)

    def _check_version(self, version: int) -> None:
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: index schema version {version}, this firmware knows {SCHEMA_VERSION}")

    def _prepare(self, synchronous: str) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: sqlite refused WAL mode (got {mode!r})")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        with self.transaction() as db:
            self._check_version(db.execute("PRAGMA user_version").fetchone()[0])
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- plumbing shared by every layer ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock of the file (BEGIN IMMEDIATE) for a read-modify-write; commit on exit.

        Immediate, not deferred: a deferred transaction that reads then writes can fail with
        SQLITE_BUSY when another process wrote in between, instead of waiting its turn. Nested use
        in the same thread joins the outer transaction.
        """
        with self.lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._local_commits += 1

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several statements see one state, and no other writer waits for it."""
        with self.lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement: a single statement is its own consistent snapshot."""
        with self.lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def generation(self) -> tuple[int, int]:
        """Changes whenever anyone committed: sqlite's data_version counts the other connections'
        commits, our own counter the rest. A cache keyed on this is never stale."""
        with self.lock:
            return (self._db.execute("PRAGMA data_version").fetchone()[0], self._local_commits)

    # -- the stock TinyDB contract: whole database at once -----------------------------------------

    def read(self) -> dict[str, dict[str, Any]] | None:
        """All tables as TinyDB expects them: {table: {str(doc_id): document}}; None when empty."""
        with self.snapshot():
            names = self.table_names()
            if not names:
                return None
            data: dict[str, dict[str, Any]] = {name: {} for name in names}
            for tbl, doc_id, body in self._db.execute("SELECT tbl, doc_id, body FROM documents ORDER BY tbl, doc_id"):
                data[tbl][str(doc_id)] = json.loads(body)
        return data

    def write(self, data: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> None:
        """Make the file hold exactly `data`, touching only the rows that differ."""
        with self.transaction() as db:
            for name in self.table_names() - set(data):
                db.execute("DELETE FROM documents WHERE tbl = ?", (name,))
            db.execute("DELETE FROM tinydb_tables")
            db.executemany("INSERT INTO tinydb_tables(name) VALUES (?)", [(name,) for name in data])
            for name, table in data.items():
                self.replace_table(name, table, self.table_bodies(name))

    def close(self) -> None:
        with self.lock:
            self._db.close()

    # -- per-table operations used by SQLiteTable --------------------------------------------------

    def table_names(self) -> set[str]:
        """Tables with documents plus empty ones TinyDB asked to keep (`persist_empty`)."""
        rows = self.query("SELECT name FROM tinydb_tables UNION SELECT DISTINCT tbl FROM documents")
        return {row[0] for row in rows}

    def table_bodies(self, name: str) -> dict[int, str]:
        """Raw JSON bodies of one table, by doc_id: what a rewrite compares against."""
        return dict(self.query("SELECT doc_id, body FROM documents WHERE tbl = ? ORDER BY doc_id", (name,)))

    def replace_table(self, name: str, table: Mapping[Any, Mapping[str, Any]], old: Mapping[int, str]) -> None:
        """Store `table` as the whole content of `name`, given its current bodies `old`.

        Only rows whose JSON changed are written, so TinyDB's read-modify-write of one document
        in a big table costs one row of I/O (plus the Python work of comparing).
        """
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO tinydb_tables(name) VALUES (?)", (name,))
            new_ids = set()
            changed = []
            for raw_id, document in table.items():
                doc_id = int(raw_id)
                new_ids.add(doc_id)
                body = dump_document(document)
                if old.get(doc_id) != body:
                    changed.append({"tbl": name, "doc_id": doc_id, "body": body})
            db.executemany(UPSERT_DOCUMENT, changed)
            db.executemany(
                "DELETE FROM documents WHERE tbl = ? AND doc_id = ?",
                [(name, doc_id) for doc_id in old.keys() - new_ids],
            )

    def insert_documents(self, name: str, documents: Iterable[tuple[int | None, Mapping[str, Any]]]) -> list[int]:
        """Insert documents, each with a chosen doc_id or None for the next free one.

        The next id is taken inside the write transaction, so two processes never pick the same.
        """
        ids = []
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO tinydb_tables(name) VALUES (?)", (name,))
            next_id = self.next_doc_id(name)
            for chosen, document in documents:
                doc_id = next_id if chosen is None else int(chosen)
                try:
                    db.execute(INSERT_DOCUMENT, {"tbl": name, "doc_id": doc_id, "body": dump_document(document)})
                except sqlite3.IntegrityError as error:
                    raise ValueError(f"Document with ID {doc_id} already exists in {name!r}") from error
                next_id = max(next_id, doc_id + 1)
                ids.append(doc_id)
        return ids

    def status_counts(self, name: str) -> dict[str | None, int]:
        """Documents of the table per `status` value (None: no status), from the trigger-kept counts."""
        rows = self.query("SELECT status, n FROM document_counts WHERE tbl = ? AND n > 0", (name,))
        return {(status if status != "" else None): n for status, n in rows}

    def next_doc_id(self, name: str) -> int:
        """One past the largest doc_id of the table (the primary key makes this a single seek)."""
        rows = self.query("SELECT COALESCE(MAX(doc_id), 0) + 1 FROM documents WHERE tbl = ?", (name,))
        return int(rows[0][0])


class SQLiteTable(Table):
    """TinyDB's Table with the operations that matter at scale done by sqlite, row by row.

    Queries (`search`, `get(cond)`) still scan the table in Python as stock TinyDB does, but read
    only this table's rows; their cache is dropped whenever anyone (another thread, another
    process, or a fast-path writer) committed, so a search always sees the latest documents.
    """

    _storage: SQLiteStorage

    def __init__(self, storage: Storage, name: str, **kwargs: Any) -> None:
        if not isinstance(storage, SQLiteStorage):
            raise TypeError(f"SQLiteTable needs a SQLiteStorage, got {type(storage).__name__}")
        self._cache_generation: tuple[int, int] | None = None
        super().__init__(storage, name, **kwargs)

    def search(self, cond: Any) -> list[Document]:
        generation = self._storage.generation()
        if generation != self._cache_generation:
            self.clear_cache()
            self._cache_generation = generation
        return super().search(cond)

    def insert(self, document: Mapping[str, Any]) -> int:
        return self.insert_multiple([document])[0]

    def insert_multiple(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        pending: list[tuple[int | None, Mapping[str, Any]]] = []
        for document in documents:
            if not isinstance(document, Mapping):
                raise ValueError("Document is not a Mapping")
            chosen = document.doc_id if isinstance(document, self.document_class) else None
            pending.append((chosen, dict(document)))
        ids = self._storage.insert_documents(self.name, pending)
        self.clear_cache()
        return ids

    def get(self, cond: Any = None, doc_id: int | None = None, doc_ids: list[int] | None = None) -> Any:
        if doc_id is None:
            return super().get(cond, doc_id, doc_ids)
        rows = self._storage.query("SELECT body FROM documents WHERE tbl = ? AND doc_id = ?", (self.name, int(doc_id)))
        return self.document_class(json.loads(rows[0][0]), doc_id) if rows else None

    def __len__(self) -> int:
        return sum(self._storage.status_counts(self.name).values())

    def _get_next_id(self) -> int:
        return self._storage.next_doc_id(self.name)

    def _read_table(self) -> dict[str, Mapping[str, Any]]:
        return {str(doc_id): json.loads(body) for doc_id, body in self._storage.table_bodies(self.name).items()}

    def _update_table(self, updater: Callable[[dict[int, Mapping[str, Any]]], None]) -> None:
        """TinyDB's read-modify-write, made atomic across processes and written back row by row."""
        with self._storage.transaction():
            old = self._storage.table_bodies(self.name)
            table: dict[int, Mapping[str, Any]] = {doc_id: json.loads(body) for doc_id, body in old.items()}
            updater(table)
            self._storage.replace_table(self.name, table, old)
        self.clear_cache()


class SQLiteTinyDB(TinyDB):
    """TinyDB wired to the sqlite storage and table: `SQLiteTinyDB(path)` is all it takes."""

    # TinyDB types these from its defaults: SQLiteStorage is no JSONStorage, and SQLiteTable takes
    # Table's optional arguments by keyword only, so both overrides are narrower than declared.
    table_class = SQLiteTable  # type: ignore[assignment]
    default_storage_class = SQLiteStorage  # type: ignore[assignment]

    def tables(self) -> set[str]:
        return cast(SQLiteStorage, self.storage).table_names()
