"""The alarms the core raises itself (capture, playback, announcement path): each once until cleared.

The core keeps only its own; the board of every active alarm (the core's, the recorder's, MQTT's)
is built from the event stream by the wiring (events/boards.py), not reached into here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Emit = Callable[..., None]   # emit(type, line, call_id, t, **fields): an event at core time t


class CoreAlarms:
    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._raised: dict[str, tuple[int | None, str]] = {}   # id -> (line, kind)

    def raise_(self, alarm_id: str, line: int | None, kind: str, message: str, t: float) -> None:
        if alarm_id in self._raised:
            return
        self._raised[alarm_id] = (line, kind)
        self._emit("alarm.raised", line, None, t, id=alarm_id, kind=kind, message=message)

    def clear(self, alarm_id: str, t: float) -> None:
        raised = self._raised.pop(alarm_id, None)
        if raised is not None:
            line, kind = raised
            self._emit("alarm.cleared", line, None, t, id=alarm_id, kind=kind)

    def active(self, alarm_id: str) -> bool:
        return alarm_id in self._raised

    def __contains__(self, alarm_id: Any) -> bool:
        return alarm_id in self._raised
