"""What a line shows: its state on the dashboards (`line.state` events) and its LED.

A line shows what it is doing (idle, ringing, offhook, recording), or `fault` while it cannot
record (its capture card is away, recordings cannot be written, or this call's recording could not
start); the LED is on while a call is being recorded and blinks while the line cannot record. Every
change goes out as a `line.state` event, so dashboards, MQTT's retained state and the console
build the state from the event stream: nobody asks the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callrec.core.alarms import Emit
from callrec.core.state import LineState
from callrec.events import utc_iso
from callrec.line import LedState


class LineDisplay:
    def __init__(self, set_led: Callable[[int, LedState], None], emit: Emit,
                 wall_of: Callable[[float], float]) -> None:
        self._set_led = set_led
        self._emit = emit
        self._wall_of = wall_of
        self._shown: dict[int, dict[str, Any]] = {}
        self.storage_problem: str | None = None   # the recorder says recordings cannot be written

    def set_activity(self, line: LineState, activity: str, t: float) -> None:
        line.activity = activity
        self.refresh(line, t)

    def refresh(self, line: LineState, t: float) -> None:
        call = line.call
        cannot_record = (line.fault or self.storage_problem is not None
                         or (call is not None and call.recording == "failed"))
        state = "fault" if cannot_record else line.activity
        led: LedState = "blink" if cannot_record else (
            "on" if call is not None and call.recording == "open" else "off")
        if led != line.led:
            line.led = led
            self._set_led(line.id, led)
        if state != line.state:
            line.state = state
            line.since_wall = self._wall_of(t)
        caller = (call.caller if call else line.caller) or {}
        if caller.get("number"):
            line.last_caller_number = caller["number"]
        shown = {
            "state": line.state,
            "call_id": call.call_id if call else None,
            "since": utc_iso(line.since_wall),
            "direction": call.direction if call else None,
            "caller_number": caller.get("number"),
            "last_caller_number": line.last_caller_number,
        }
        if self._shown.get(line.id) != shown:
            self._shown[line.id] = shown
            fields = {key: value for key, value in shown.items() if key != "call_id"}   # call_id: the envelope's
            self._emit("line.state", line.id, shown["call_id"], t, **fields)
