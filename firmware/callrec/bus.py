"""The event bus: journal first, then every listener, in one order for everyone.

Any thread may emit (core, recorder, capture alarms). A lock makes "append to the journal, then tell
the listeners" one step, so listeners see events in `seq` order with no gaps. Listeners must be quick
(a print, a queue put); slow work such as network publishing runs on its own thread from the journal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from callrec.events import Event, StampedEvent
from callrec.store.journal import Journal

log = logging.getLogger(__name__)

Listener = Callable[[StampedEvent], None]


class EventBus:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, event: Event) -> StampedEvent:
        with self._lock:
            stamped = self.journal.append(event)
            for listener in self._listeners:
                try:
                    listener(stamped)
                except Exception:  # a broken listener must not lose the event for the others
                    log.exception("event listener failed on seq %d", stamped.seq)
        return stamped
