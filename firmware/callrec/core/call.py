"""A call in progress: what the core knows of it, and the index document it becomes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from callrec.events import utc_iso
from callrec.store import CallRecord


def new_call_id(wall: float, line: int) -> str:
    """Time-sortable and unique: `20261128T123456789Z-L1-3f2a` (UTC of the off-hook edge)."""
    moment = datetime.fromtimestamp(wall, tz=UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-L{line}-{secrets.token_hex(2)}"


class Pause(TypedDict):
    """A pause of the recording, in seconds from the off-hook edge (`end_s` None: still paused)."""

    start_s: float
    end_s: float | None
    by: str


@dataclass
class Call:
    call_id: str
    line: int
    direction: str
    rings: int
    started_t: float                 # core clock of the off-hook edge
    started_wall: float
    start_frame: int                 # first frame of the recording (edge minus pre-roll)
    preroll_s: float
    answered_t: float | None = None
    answered_wall: float | None = None
    flashes: list[dict[str, float]] = field(default_factory=list)
    announcement: dict[str, Any] | None = None
    announcement_end_t: float | None = None
    announcement_reported: bool = False
    next_warning_t: float | None = None
    pauses: list[Pause] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    audio: list[Any] = field(default_factory=list)   # periods not yet handed to the recorder
    audio_frames: int = 0                            # frames in `audio`
    caller: dict[str, Any] | None = None             # caller ID as received (number, name, reason...)
    dialed: str = ""                                 # digits dialled before the far end answered
    digits: list[dict[str, Any]] = field(default_factory=list)   # in-call DTMF with offsets
    control_codes: list[dict[str, Any]] = field(default_factory=list)
    code_keys: str = ""                              # recent in-call keys, matched against control codes
    answer_pending: bool = False                     # outbound, waiting for the far end
    answer_fallback_t: float | None = None
    answer_source: str | None = None                 # "offhook" | "far_end_answer" | "fallback"
    far_end_answered_t: float | None = None
    ringback_heard: bool = False
    end_reason: str | None = None                    # "hangup" | "far_end_hangup" | "unanswered" | "busy"
    recording: str = "opening"                       # "opening" | "open" | "failed": what the recorder said
    announce_pending: bool = False                   # answered; the announcement waits for the recording
    isdn: dict[str, Any] | None = None               # an ISDN call: call_ref, b_channel, cause, numbers
    health: dict[str, Any] | None = None             # the tap-health verdict at the end (core/health.py)
    clock_trusted: bool | None = None                # the wall clock was synchronised when the call began

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1].get("end_s") is None

    def record(self, ended_wall: float | None = None, duration_s: float | None = None) -> dict[str, Any]:
        """The call record as far as it is known (the recorder adds `recording` and `status`)."""
        return CallRecord.model_validate({
            "call_id": self.call_id,
            "line": self.line,
            "direction": self.direction,
            "started_at": utc_iso(self.started_wall),
            "answered_at": utc_iso(self.answered_wall) if self.answered_wall is not None else None,
            "ended_at": utc_iso(ended_wall) if ended_wall is not None else None,
            "duration_s": round(duration_s, 3) if duration_s is not None else None,
            "rings": self.rings,
            "flashes": len(self.flashes),
            "flash_times": list(self.flashes),
            "caller_number": (self.caller or {}).get("number"),
            "caller_name": (self.caller or {}).get("name"),
            "caller_id": dict(self.caller) if self.caller else None,
            "dialed_number": self.dialed or None,
            "digits": list(self.digits),
            "control_codes": list(self.control_codes),
            "answer_source": self.answer_source,
            "far_end_answered_s": round(self.far_end_answered_t - self.started_t, 3)
            if self.far_end_answered_t is not None else None,
            "end_reason": self.end_reason,
            "announcement": dict(self.announcement) if self.announcement else None,
            "pauses": [dict(p) for p in self.pauses],
            "tags": list(self.tags),
            "preroll_s": self.preroll_s,
            "errors": list(self.errors),
            "isdn": dict(self.isdn) if self.isdn else None,
            "health": dict(self.health) if self.health else None,
            "clock_trusted": self.clock_trusted,
        }).document()
