"""The event window: which journal events are on the wire, and which the broker has acknowledged.

Events leave in `seq` order, at most `max_inflight` unacknowledged at a time, and are marked delivered
only when their PUBACK arrives. Nothing of a connection survives it: after a reconnect the window
restarts at the oldest undelivered event, so the stream a subscriber sees is the journal order again
(with at most one window of duplicates, which `seq` identifies).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from callrec.events import StampedEvent
from callrec.store import Journal

log = logging.getLogger(__name__)


class EventWindow:
    """In-flight bookkeeping for one connection at a time; touched by one thread only."""

    def __init__(self, journal: Journal, max_inflight: int) -> None:
        self._journal = journal
        self._max_inflight = max_inflight
        self._inflight: dict[int, int] = {}  # MQTT message id -> seq
        self._sent_upto = 0

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def reset(self) -> None:
        """Forget the wire: the next batch starts again at the oldest undelivered event."""
        self._inflight.clear()
        self._sent_upto = 0

    def next_batch(self) -> list[StampedEvent]:
        """The next events to publish, in order, as many as the window has room for."""
        room = self._max_inflight - len(self._inflight)
        if room <= 0:
            return []
        # In-flight events are still undelivered and are the oldest such rows, so asking for
        # inflight + room rows always reaches past them.
        rows = self._journal.undelivered(limit=len(self._inflight) + room)
        return [event for event in rows if event.seq > self._sent_upto][:room]

    def sent(self, mid: int, seq: int) -> None:
        self._inflight[mid] = seq
        self._sent_upto = seq

    def acknowledged(self, mids: Iterable[int]) -> list[int]:
        """Mark the events behind these PUBACKs delivered; ids of other messages are ignored."""
        seqs = [self._inflight.pop(mid) for mid in mids if mid in self._inflight]
        if seqs:
            self._journal.mark_delivered(seqs)
        return seqs
