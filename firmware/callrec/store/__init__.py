"""The store: the call index (TinyDB on sqlite3), the event journal, the data directory's lock, damage."""

from callrec.store.damage import StoreDamaged, move_aside
from callrec.store.index import STATUSES, CallIndex, validate_record
from callrec.store.journal import Journal
from callrec.store.lock import DataDirBusy, DataLock

__all__ = ["CallIndex", "DataDirBusy", "DataLock", "Journal", "STATUSES", "StoreDamaged", "move_aside",
           "validate_record"]
