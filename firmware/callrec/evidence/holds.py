"""Which calls are under legal hold, as the signed chain says: the authority retention decides by.

The index's `hold` field is a convenience copy anyone with the card can edit; the chain's `hold` and
`release` entries are signed and linked. A call is held when its last hold/release entry is a hold
(a `deleted` entry ends it too: the call is gone). Retention asks every hour and after every call,
so the chain is read incrementally: only the bytes appended since the last question. A file that
got shorter, was replaced (another inode) or no longer ends with the line last read was rewritten:
then it is read again from the start.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from callrec.evidence.ledger import parse_line


class ChainHolds:
    """The chain's current holds, kept up to date by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, Any]] = {}
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self._last_line = b""
        self.bytes_read = 0   # what the reads cost, for the tests and the curious

    def held(self) -> dict[str, dict[str, Any]]:
        """call_id -> its hold (`reason`, `by`, `at`) as the chain says now."""
        with self._lock:
            try:
                with open(self.path, "rb") as handle:
                    self._catch_up(handle)
            except FileNotFoundError:
                self._reset(None)
            return dict(self._held)

    def _catch_up(self, handle: Any) -> None:
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset or not self._still_ends_as_read(handle):
            self._reset(identity)
        handle.seek(self._offset)
        data = handle.read()
        self.bytes_read += len(data)
        complete = data[: data.rfind(b"\n") + 1]   # a line being written (or torn) waits for its newline
        for raw in complete.splitlines(keepends=True):
            self._apply(raw)
            self._last_line = raw
        self._offset += len(complete)

    def _still_ends_as_read(self, handle: Any) -> bool:
        if not self._last_line:
            return self._offset == 0
        handle.seek(self._offset - len(self._last_line))
        return bool(handle.read(len(self._last_line)) == self._last_line)

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self._held.clear()
        self._offset = 0
        self._identity = identity
        self._last_line = b""

    def _apply(self, raw: bytes) -> None:
        with contextlib.suppress(ValueError):
            entry = parse_line(raw)
            call_id, kind = str(entry.get("call_id")), entry.get("kind")
            if kind == "hold":
                self._held[call_id] = {"reason": entry.get("reason"), "by": entry.get("by"), "at": entry.get("at")}
            elif kind in ("release", "deleted"):
                self._held.pop(call_id, None)
