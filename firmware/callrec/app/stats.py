"""The stats probe: the figures a dashboard shows (uptime, disk, calls, overruns, temperature).

Owned by the wiring and reading only what it owns or what is public: the clock, the file system,
/sys, its own read-only connection to the call index, the capture groups' counters and the event
stream (discarded calls). Front ends ask it; it reaches into no other part.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec.events import StampedEvent
from callrec.store import CallIndex, StoreDamaged

log = logging.getLogger(__name__)

CPU_TEMP = Path("/sys/class/thermal/thermal_zone0/temp")


class StatsProbe:
    def __init__(self, data_dir: Path, overruns: Callable[[], int], *, purpose: str | None = None,
                 encrypted: bool = False, backlog: Callable[[], Any] | None = None) -> None:
        self._backlog = backlog
        self.purpose = purpose
        self.encrypted = encrypted
        self.data_dir = data_dir
        self._overruns = overruns
        self._started = time.monotonic()
        self._discarded = 0
        self._lock = threading.Lock()
        self._index: CallIndex | None = None

    def __call__(self, stamped: StampedEvent) -> None:
        """Bus listener: counts the calls discarded as too short."""
        event = stamped.event
        if event.type == "call.ended" and event.fields.get("status") == "discarded":
            self._discarded += 1

    def read(self) -> dict[str, Any]:
        try:
            free: int | None = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = None
        today = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
        calls_today = stored = None
        with self._lock:
            try:
                index = self._open()
                calls_today, stored = index.calls_since(today), index.count()
            except (sqlite3.Error, OSError, StoreDamaged) as error:
                log.debug("stats: the call index cannot be read now: %s", error)
                self._close()
        return {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "disk_free_bytes": free,
            "calls_today": calls_today,
            "recordings_stored": stored,
            "calls_discarded": self._discarded,
            "capture_overruns": self._overruns(),
            "cpu_temp_c": cpu_temp(),
            "purpose": self.purpose,
            "encrypted": self.encrypted,
            "archive_backlog": self._archive_backlog(),
        }

    def _archive_backlog(self) -> dict[str, Any] | None:
        """count, bytes, oldest (call id) of what waits for the archive; None without one."""
        if self._backlog is None:
            return None
        try:
            return dict(self._backlog().fields())
        except Exception as error:   # the queue's database is busy or gone: the stats still go out
            log.debug("stats: the archive backlog cannot be read now: %s", error)
            return None

    def _open(self) -> CallIndex:
        if self._index is None:
            self._index = CallIndex(self.data_dir / "index.sqlite", readonly=True)
        return self._index

    def _close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def close(self) -> None:
        with self._lock:
            self._close()


def cpu_temp() -> float | None:
    try:
        return round(int(CPU_TEMP.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None
