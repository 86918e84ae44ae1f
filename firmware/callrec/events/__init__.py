"""Events: the one format every part of callrec speaks, and the bus that journals and tells them."""

from callrec.events.bus import ALARM_JOURNAL, EventBus, Listener  # noqa: I001 - the model first (the bus needs it)
from callrec.events.boards import LINE_STATE_FIELDS, AlarmBoard, LineBoard
from callrec.events.model import EVENT_TYPES, SCHEMA_VERSION, Event, StampedEvent, utc_iso

__all__ = ["ALARM_JOURNAL", "AlarmBoard", "EVENT_TYPES", "Event", "EventBus", "LINE_STATE_FIELDS", "LineBoard",
           "Listener", "SCHEMA_VERSION", "StampedEvent", "utc_iso"]
