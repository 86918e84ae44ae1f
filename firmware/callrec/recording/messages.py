"""The recorder's messages: what the core asks of it and what it reports back.

Kept apart from the threads that act on them so that the core, the writer (recorder.py) and the
finisher (finisher.py) share one vocabulary without importing each other.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# ---- what the core sends -----------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    call_id: str
    line: int
    directory: Path
    meta: dict[str, Any]
    initial: np.ndarray


@dataclass(frozen=True)
class Audio:
    call_id: str
    samples: np.ndarray


@dataclass(frozen=True)
class Gap:
    """The line was not heard for `frames` (the capture card was away): silence in the file."""

    call_id: str
    frames: int
    cause: str


@dataclass(frozen=True)
class Note:
    """Facts learnt during the call (answer, announcement proof), kept in the part's metadata."""

    call_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    call_id: str
    record: dict[str, Any]          # the index document, without `recording`/`status`
    frames: int | None              # keep this many frames of the line's timeline; None = all
    discard: bool
    wall: float


@dataclass(frozen=True)
class Mark:
    """Tag a call that has ended (the index is the finisher's); the result goes to `reply`."""

    call_id: str
    tag: str
    reply: Future[dict[str, Any]]


@dataclass(frozen=True)
class Archived:
    """The archive confirmed a call's recording and sidecar (the uploader's news for the index)."""

    call_id: str
    at: float
    key: str
    sha256: str | None
    bytes: int
    url: str


@dataclass(frozen=True)
class ClockCorrected:
    """A call recorded while the wall clock was not synchronised, now that it is: by how much its
    times were off (`offset_s`, add it to the recorded times) and its corrected start."""

    call_id: str
    offset_s: float
    corrected_started: float
    measured: float


# ---- what the recorder tells the core ----------------------------------------------------------


@dataclass(frozen=True)
class RecordingOpened:
    """The call's part file exists and holds its pre-roll: the call is being recorded."""

    call_id: str


@dataclass(frozen=True)
class RecordingFailed:
    """The call cannot be recorded at all (no part file could be made)."""

    call_id: str
    message: str


@dataclass(frozen=True)
class StorageChanged:
    """Recordings can (ok) or cannot be written; `message` says why not."""

    ok: bool
    message: str
