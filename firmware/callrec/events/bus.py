"""The event bus: journal first, then every listener, in one order for everyone.

Any thread may emit (core, recorder, capture alarms). A lock makes "append to the journal, then tell
the listeners" one step, so listeners see events in `seq` order with no gaps. Listeners must be quick
(a print, a queue put); slow work such as network publishing runs on its own thread from the journal.

The journal can fail (a full disk, a damaged file). An event is never lost for that, and `emit`
never raises: the event is stamped with the next `seq` anyway, told to the listeners, logged, kept
in memory in order, and written to the journal (under the same `seq`) as soon as it takes writes
again, so MQTT publishes it then. A `journal` alarm says meanwhile that events are held in memory.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from callrec.events.model import Event, StampedEvent

if TYPE_CHECKING:   # the journal is the store's; it speaks events, so no import back at run time
    from callrec.store import Journal

log = logging.getLogger(__name__)

Listener = Callable[[StampedEvent], None]

HELD_MAX = 10_000   # events kept in memory while the journal cannot be written; the oldest go first
ALARM_JOURNAL = "journal"


class EventBus:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._held: deque[StampedEvent] = deque()
        self._held_dropped = 0
        self._last_seq = journal.last_seq()
        self._journal_error: str | None = None
        self._clock_trusted: Callable[[], bool | None] = lambda: None

    def use_clock(self, trusted: Callable[[], bool | None]) -> None:
        """Who says whether the wall clock is synchronised now: every event carries it (`clock_trusted`),
        so a dashboard or an auditor knows which timestamps to believe."""
        self._clock_trusted = trusted

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    @property
    def held(self) -> int:
        """Events stamped and told but not yet in the journal."""
        return len(self._held)

    def emit(self, event: Event) -> StampedEvent:
        if event.clock_trusted is None:
            event = replace(event, clock_trusted=self._trust())
        with self._lock:
            stamped = self._stamp(event)
            self._tell(stamped)
            if self._journal_error is not None and not self._held:
                self._journal_recovered()
        return stamped

    def retry(self) -> None:
        """Write held events to the journal if it takes them again (called periodically)."""
        with self._lock:
            if self._held and self._flush_held() and self._journal_error is not None:
                self._journal_recovered()

    def _stamp(self, event: Event) -> StampedEvent:
        if not self._held or self._flush_held():
            try:
                stamped = self.journal.append(event)
            except (sqlite3.Error, OSError) as error:
                self._journal_failed(error)
            else:
                self._last_seq = stamped.seq
                return stamped
        self._last_seq += 1
        stamped = StampedEvent(self._last_seq, event)
        self._hold(stamped)
        log.warning("event not journaled (held in memory): %s", stamped.to_json())
        return stamped

    def _flush_held(self) -> bool:
        """Journal the held events in order; True when none is left."""
        while self._held:
            stamped = self._held[0]
            try:
                self.journal.append(stamped.event, seq=stamped.seq)
            except sqlite3.IntegrityError:
                log.error("held event seq %d is already in the journal; dropped", stamped.seq)
            except (sqlite3.Error, OSError) as error:
                self._journal_failed(error)
                return False
            self._held.popleft()
        return True

    def _hold(self, stamped: StampedEvent) -> None:
        if len(self._held) >= HELD_MAX:
            self._held.popleft()
            self._held_dropped += 1
        self._held.append(stamped)

    def _tell(self, stamped: StampedEvent) -> None:
        for listener in self._listeners:
            try:
                listener(stamped)
            except Exception:  # a broken listener must not lose the event for the others
                log.exception("event listener failed on seq %d", stamped.seq)

    def _journal_failed(self, error: Exception) -> None:
        if self._journal_error is not None:
            return
        self._journal_error = str(error)
        log.error("the event journal %s cannot be written (%s); events are held in memory", self.journal.path,
                  error)
        self._last_seq = max(self._last_seq, self._safe_last_seq())
        self._last_seq += 1
        alarm = StampedEvent(self._last_seq, Event("alarm.raised", None, None, time.time(), {
            "id": ALARM_JOURNAL, "kind": "storage",
            "message": f"the event journal cannot be written ({error}); events are kept in memory "
                       f"(at most {HELD_MAX}) and published once it can"}, self._trust()))
        self._hold(alarm)
        self._tell(alarm)

    def _journal_recovered(self) -> None:
        dropped, self._held_dropped = self._held_dropped, 0
        self._journal_error = None
        log.info("the event journal takes writes again%s",
                 f"; {dropped} held event(s) were dropped meanwhile" if dropped else "")
        try:
            stamped = self.journal.append(Event("alarm.cleared", None, None, time.time(),
                                                {"id": ALARM_JOURNAL, "kind": "storage"}, self._trust()))
        except (sqlite3.Error, OSError) as error:
            self._journal_failed(error)
            return
        self._last_seq = stamped.seq
        self._tell(stamped)

    def _trust(self) -> bool | None:
        try:
            return self._clock_trusted()
        except Exception:  # the clock's verdict is a label: never a reason to lose the event
            log.exception("clock trust unavailable")
            return None

    def _safe_last_seq(self) -> int:
        try:
            return self.journal.last_seq()
        except (sqlite3.Error, OSError):
            return 0
