"""The one event type every part of callrec speaks.

An event is what the device says happened: the core says a line rang or a call ended, the recorder
says a file was saved, a capture thread's trouble becomes an alarm. The same JSON object is printed
by `callrec simulate`, stored in the journal and published on MQTT unchanged, so a consumer parses
one schema everywhere (documented in docs/events.md).

`seq` and `ts` are not chosen by the emitter: the event bus stamps them when the event is made
durable in the journal, so `seq` is gap-free per device and increases across restarts.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Every event type the firmware emits. docs/events.md documents each; a test keeps them equal.
EVENT_TYPES = (
    "line.ring",
    "line.hook",
    "line.flash",
    "line.isdn",
    "line.dtmf",
    "line.tone",
    "line.state",
    "call.started",
    "call.answered",
    "call.caller_id",
    "call.far_end_answered",
    "call.far_end_hangup",
    "call.ended",
    "announcement.played",
    "recording.saved",
    "recording.deleted",
    "recording.archived",
    "alarm.raised",
    "alarm.cleared",
    "evidence.head",
)


def utc_iso(timestamp: float) -> str:
    """UTC ISO 8601 with millisecond precision and a `Z` suffix, as every event and record uses."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """An event before it is stamped: what happened, on which line, for which call.

    `wall` is the wall-clock time the event describes (seconds since the epoch); it becomes `ts`.
    `clock_trusted` says whether that wall clock was synchronised then (None: no clock port says);
    an emitter that knows leaves it set, the bus fills it for those that do not.
    """

    type: str
    line: int | None
    call_id: str | None = None
    wall: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    clock_trusted: bool | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; add it to EVENT_TYPES and docs/events.md")


@dataclass(frozen=True)
class StampedEvent:
    """An event with its device-wide sequence number: the form stored, printed and published."""

    seq: int
    event: Event

    def as_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "seq": self.seq,
            "ts": utc_iso(self.event.wall),
            "type": self.event.type,
            "line": self.event.line,
            "call_id": self.event.call_id,
            "clock_trusted": self.event.clock_trusted,
        }
        payload.update(self.event.fields)
        return payload

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"), ensure_ascii=False)
