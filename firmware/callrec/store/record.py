"""The call record: one model of what the appliance knows of a call, for everyone who keeps it.

The core builds it (core/call.py), the recorder completes it and writes it as the sidecar beside
the recording, the index stores and finds it, recovery rebuilds it, the CLI shows it. It is
validated wherever it enters storage, so a wrong-typed field is refused at once, naming its key
path, instead of sitting in the index until someone's report breaks months later.

Only `call_id` is required: a recovered or failed call may lack the rest. Present fields keep
their documented type strictly (`"1"` is not a line, `true` not a count); `null` is allowed where a
call can honestly not know the value. Fields the model does not name are kept unchanged (a newer
firmware's fields survive an older one's index).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callrec.config import key_path

Status = Literal["complete", "recovered", "discarded", "failed"]
STATUSES: tuple[str, ...] = ("complete", "recovered", "discarded", "failed")


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class RecordingFile(_Part):
    """The finalized recording: where it is and what it is, with the hash of its bytes."""

    path: str = Field(description="Relative to the data directory: recordings/YYYY/MM/DD/<call_id>.<ext>")
    format: str = Field(description="flac or wav (pcm: a recovered encrypted part)")
    bytes: int = Field(description="Size of the file")
    sha256: str | None = Field(None, description="SHA-256 of the file")
    sample_rate: int = Field(description="Hz")
    encryption: str | None = Field(None, description="None, age (a standard age file) or age-frames "
                                                     "(an encrypted part recovered after a crash)")


class AnnouncementProof(_Part):
    """Which notice was played and when: the proof that the caller was told."""

    file: str
    sha256: str | None = None
    started_s: float | None = Field(None, description="First sample on the line, seconds after the answer")
    ended_s: float | None = Field(None, description="Last sample on the line, seconds after the answer")
    purpose: str | None = Field(None, description="The purpose of use in force when the call was recorded")


class Hold(_Part):
    """A legal hold: the call is kept whatever the retention policy says, until released."""

    reason: str
    by: str
    at: str


class ChainLink(_Part):
    """This call's entry in the device's evidence chain (evidence/chain.py)."""

    seq: int
    hash: str
    prev: str = Field(description="Hash of the chain entry before this call's")
    sidecar_sha256: str | None = None


class Gap(_Part):
    """A stretch the recording does not hold (silence in the file keeps the timeline)."""

    at_s: float = Field(description="Seconds from the off-hook edge")
    duration_s: float
    cause: str = Field(description="capture (the card was away) or storage (the disk refused)")


class CallRecord(_Part):
    call_id: str = Field(min_length=1, description="YYYYMMDDTHHMMSSmmmZ-L<line>-<hex>, time-sortable")
    line: int = Field(description="Line number")
    direction: str | None = Field(None, description="inbound or outbound")
    started_at: str | None = Field(None, description="UTC ISO 8601 of the off-hook edge")
    answered_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = Field(None, description="Off-hook edge to hang-up edge")
    rings: int = 0
    flashes: int = 0
    flash_times: list[dict[str, Any]] = Field(default_factory=list)
    caller_number: str | None = None
    caller_name: str | None = None
    caller_id: dict[str, Any] | None = None
    dialed_number: str | None = None
    digits: list[dict[str, Any]] = Field(default_factory=list)
    control_codes: list[dict[str, Any]] = Field(default_factory=list)
    answer_source: str | None = None
    far_end_answered_s: float | None = None
    end_reason: str | None = None
    announcement: AnnouncementProof | None = None
    pauses: list[dict[str, Any]] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    preroll_s: float | None = None
    errors: list[str] = Field(default_factory=list)
    isdn: dict[str, Any] | None = Field(None, description="ISDN calls: call_ref, b_channel, cause {value, text}, "
                                                          "direction, calling, called (from the D-channel)")
    health: dict[str, Any] | None = Field(None, description="Tap-health verdict: ok, problems (silent, one_sided, "
                                                            "clipping, hum) and the measurements (docs/tap-health.md)")
    clock_trusted: bool | None = Field(None, description="The wall clock was synchronised when the call began "
                                                         "(null: not known)")
    clock_correction: dict[str, Any] | None = Field(
        None, description="Recorded while the clock was not synchronised; once it was: offset_s (add it to the "
                          "recorded times), started_at (corrected), measured_at")
    recording: RecordingFile | None = None
    status: Status | None = None
    gaps: list[Gap] = Field(default_factory=list)
    missing_since: str | None = Field(None, description="Set while the recording file is not on the disk")
    hold: Hold | None = Field(None, description="Set while the call is under legal hold")
    archived_at: str | None = Field(None, description="When the office archive confirmed the recording")
    offloaded_at: str | None = Field(None, description="When the local copy was removed (it is in the archive)")
    chain: ChainLink | None = Field(None, description="The call's entry in the evidence chain")
    metadata_lost: bool = False

    @field_validator("started_at", "answered_at", "ended_at", "missing_since", "archived_at", "offloaded_at")
    @classmethod
    def _utc(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
        if moment.utcoffset() != dt.timedelta(0):
            raise ValueError(f"{value!r} is not in UTC (end it with 'Z')")
        return value

    def document(self) -> dict[str, Any]:
        """The stored form (index body and sidecar): every field, JSON types."""
        return self.model_dump(mode="json")


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ValueError naming every field of `record` that is missing or of the wrong type."""
    if not isinstance(record, Mapping):
        raise TypeError(f"a call record is a mapping, not {type(record).__name__}")
    if "call_id" not in record:
        raise ValueError("call record has no 'call_id'")
    try:
        # Only the fields present are checked: defaults fill in what a partial record lacks.
        CallRecord.model_validate({"line": 0, **record})
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            shown = repr(item.get("input"))
            problems.append(f"call record field '{key_path(item['loc'])}': {item['msg'].removeprefix('Value error, ')}"
                            f" (got {shown:.60})")
        raise ValueError("; ".join(problems)) from None
