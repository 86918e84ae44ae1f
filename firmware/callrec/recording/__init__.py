"""Recording: the writer and finisher threads, crash-safe part files, finalizing, recovery."""

from callrec.recording.files import day_dir, recordings_root
from callrec.recording.messages import (
    Archived,
    Audio,
    Begin,
    ClockCorrected,
    Finish,
    Gap,
    Mark,
    Note,
    RecordingFailed,
    RecordingOpened,
    StorageChanged,
)
from callrec.recording.recorder import Recorder
from callrec.recording.recover import Reconciled, list_quarantine, quarantine_dir, recover_all

__all__ = [
    "Archived", "ClockCorrected", "Audio", "Begin", "Finish", "Gap", "Mark", "Note", "Reconciled", "Recorder",
    "RecordingFailed", "RecordingOpened", "StorageChanged", "day_dir", "list_quarantine", "quarantine_dir",
    "recordings_root", "recover_all"
]
