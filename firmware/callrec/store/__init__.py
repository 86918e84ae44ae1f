"""The store: the call index (TinyDB on sqlite3), the event journal, the data directory's lock, damage,
and the in-place slot file (what must still be written on a full disk)."""

from callrec.store.damage import StoreDamaged, move_aside
from callrec.store.index import CallIndex
from callrec.store.journal import Journal
from callrec.store.lock import DataDirBusy, DataLock
from callrec.store.record import (
    STATUSES,
    AnnouncementProof,
    CallRecord,
    ChainLink,
    Gap,
    Hold,
    RecordingFile,
    validate_record,
)
from callrec.store.slots import SlotFile, SlotTooSmall, fsync_directory

__all__ = [
    "AnnouncementProof", "CallIndex", "CallRecord", "ChainLink", "DataDirBusy", "DataLock", "Gap", "Hold",
    "Journal", "RecordingFile", "STATUSES", "SlotFile", "SlotTooSmall", "StoreDamaged", "fsync_directory",
    "move_aside", "validate_record"
]
