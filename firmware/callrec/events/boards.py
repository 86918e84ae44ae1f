"""Boards: the current state of things, built from the event stream alone.

`LineBoard` keeps each line's last `line.state`, `AlarmBoard` the alarms raised and not cleared
(the core's, the recorder's, the store's, MQTT's). They are bus listeners, subscribed by the
wiring before anything emits, so front ends (MQTT's retained topics, the console's status, the
control socket) show what the events said and never reach into the parts that made them.
"""

from __future__ import annotations

import threading
from typing import Any

from callrec.events.model import StampedEvent, utc_iso

LINE_STATE_FIELDS = ("state", "call_id", "since", "direction", "caller_number", "last_caller_number")


class LineBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[int, dict[str, Any]] = {}

    def __call__(self, stamped: StampedEvent) -> None:
        event = stamped.event
        if event.type != "line.state" or event.line is None:
            return
        state = {"line": event.line, **{key: event.fields.get(key) for key in LINE_STATE_FIELDS}}
        state["call_id"] = event.call_id
        with self._lock:
            self._states[event.line] = state

    def states(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(self._states[line]) for line in sorted(self._states)]


class AlarmBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alarms: dict[str, dict[str, Any]] = {}

    def __call__(self, stamped: StampedEvent) -> None:
        event = stamped.event
        alarm_id = event.fields.get("id")
        if alarm_id is None or not event.type.startswith("alarm."):
            return
        with self._lock:
            if event.type == "alarm.raised":
                self._alarms.setdefault(alarm_id, {
                    "id": alarm_id, "line": event.line, "kind": event.fields.get("kind"),
                    "message": event.fields.get("message"), "since": utc_iso(event.wall)})
            elif event.type == "alarm.cleared":
                self._alarms.pop(alarm_id, None)

    def alarms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(alarm) for alarm in self._alarms.values()]
