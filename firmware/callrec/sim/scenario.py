"""The scenario file of `callrec simulate`: which lines carry which audio, and what happens when.

Parsed by pydantic models in the configuration's style: unknown keys are errors, values keep their
TOML type, and every problem of a file is reported at once with its key path. What pydantic cannot
know is checked after it: each audio file exists and is readable, and every event falls inside the
audio it happens on (a time past the end would make the simulator write silence up to it: `at =
1e12` once wrote 7.7 GB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import soundfile
from pydantic import Field, ValidationError, field_validator, model_validator

from callrec.config import TomlModel, field_problems, report, toml_document
from callrec.errors import CallrecError


class ScenarioError(CallrecError, ValueError):
    """The scenario file is wrong; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class ScenarioEvent:
    at: float
    signal: str      # "hook" | "ring" | "isdn" (what the D-channel said: `info`)
    active: bool     # off-hook / ringing
    info: Any = None  # an IsdnInfo for "isdn"


@dataclass(frozen=True)
class ScenarioLine:
    line: int
    audio: Path
    events: tuple[ScenarioEvent, ...]


@dataclass(frozen=True)
class ScenarioFault:
    """Trouble the simulated hardware gets into: the capture card vanishes at `at` for `seconds`
    (the card of `line`, or every card)."""

    at: float
    kind: str
    seconds: float
    line: int | None = None


@dataclass(frozen=True)
class Scenario:
    lines: tuple[ScenarioLine, ...]
    faults: tuple[ScenarioFault, ...] = ()


class EventModel(TomlModel):
    """`{ at = SECONDS, hook = "off"|"on" }` or `{ at = SECONDS, ring = "on"|"off" }`."""

    at: float = Field(ge=0, allow_inf_nan=False, description="Seconds from the start of the line audio")
    hook: Literal["off", "on"] | None = Field(None, description="`off` lifts the handset, `on` hangs up")
    ring: Literal["on", "off"] | None = Field(None, description="Ringing voltage on or off")

    @model_validator(mode="after")
    def _one_signal(self) -> EventModel:
        if (self.hook is None) == (self.ring is None):
            raise ValueError("needs exactly one of `hook` or `ring`")
        return self


class LineModel(TomlModel):
    """One simulated line: its audio and the hook and ring edges on it."""

    line: int = Field(ge=1, le=4, description="Line number 1-4, as in the configuration")
    audio: str = Field(min_length=1, description="WAV file the line carries, relative to the scenario")
    events: list[EventModel] = Field(default_factory=list, description="Edges in time order")
    dchannel: str | None = Field(None, min_length=1, description="An ISDN line: a D-channel trace (pcap, link "
                                                                 "type 177 or 203) instead of `events`")
    b_channel: int | None = Field(None, ge=1, le=2, description="The B-channel of the trace this line carries")
    dchannel_start_s: float = Field(0.0, ge=0, allow_inf_nan=False,
                                    description="Line time of the trace's first frame")

    @model_validator(mode="after")
    def _isdn_or_events(self) -> LineModel:
        if self.dchannel is not None and self.events:
            raise ValueError("give `events` (an analog line) or `dchannel` (an ISDN line), not both")
        if (self.dchannel is None) != (self.b_channel is None):
            raise ValueError("an ISDN line needs both `dchannel` and `b_channel`")
        return self

    @model_validator(mode="after")
    def _in_time_order(self) -> LineModel:
        problems = []
        for index in range(1, len(self.events)):
            previous, at = self.events[index - 1].at, self.events[index].at
            if at < previous:
                problems.append(f"events[{index}].at: {at} is before the previous event ({previous}); "
                                "events must be in time order")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class FaultModel(TomlModel):
    """Hardware trouble at line time `at`: `capture_gone` unplugs the capture card for `seconds`;
    `clock_step` steps the wall clock by `seconds` (negative: back), as NTP or a technician does;
    `clock_unsynchronised` makes the clock port say "not synchronised" for `seconds` (a Pi booted
    without NTP: give a `clock_step` at its end for the correction NTP makes)."""

    at: float = Field(ge=0, allow_inf_nan=False, description="Line seconds when the fault starts")
    kind: Literal["capture_gone", "clock_step", "clock_unsynchronised"] = Field(description="What fails")
    seconds: float = Field(ge=-86400, le=86400, allow_inf_nan=False,
                           description="capture_gone: how long until it is back; clock_step: the step")
    line: int | None = Field(None, ge=1, le=4, description="The card of this line; unset: every card")

    @model_validator(mode="after")
    def _positive_outage(self) -> FaultModel:
        if self.kind == "capture_gone" and not 0 < self.seconds <= 3600:
            raise ValueError("seconds: a capture_gone fault lasts more than 0 and at most 3600 s")
        if self.kind == "clock_unsynchronised" and self.seconds <= 0:
            raise ValueError("seconds: how long the clock stays unsynchronised, more than 0")
        return self


class ScenarioModel(TomlModel):
    line: list[LineModel] = Field(min_length=1, description="One [[line]] table per simulated line")
    fault: list[FaultModel] = Field(default_factory=list, description="[[fault]] tables: hardware trouble")

    @field_validator("line", mode="before")
    @classmethod
    def _present(cls, value: object) -> object:
        if value is None:
            raise ValueError("no [[line]] table; add one per simulated line")
        return value

    @model_validator(mode="after")
    def _distinct_lines(self) -> ScenarioModel:
        numbers = [line.line for line in self.line]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"line numbers repeat ({numbers}); each [[line]] needs its own `line`")
        return self


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; ScenarioError lists every problem of it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a directory, not a scenario file") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror or error}") from None
    data = toml_document(raw, str(path), ScenarioError)   # a BOM, not UTF-8, deep nesting: all ScenarioError
    data.setdefault("line", None)
    try:
        model = ScenarioModel.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(report(str(path), "scenario", field_problems(error, ScenarioModel))) from None
    lines, problems = [], []
    for index, line in enumerate(model.line):
        audio, problem = _audio(path, line.audio)
        if problem is not None:
            problems.append(f"line[{index}].audio: {problem}")
            continue
        assert audio is not None
        length = _audio_seconds(audio)
        for number, event in enumerate(line.events):
            if event.at > length:
                problems.append(f"line[{index}].events[{number}].at: {event.at:g} s is after the end of the "
                                f"line audio ({length:.1f} s of {line.audio}); make the audio longer")
        events = tuple(ScenarioEvent(e.at, "hook" if e.hook is not None else "ring",
                                     e.hook == "off" if e.hook is not None else e.ring == "on")
                       for e in line.events)
        if line.dchannel is not None:
            events, problem = _isdn_events(path, model.line, line, length)
            if problem is not None:
                problems.append(f"line[{index}].dchannel: {problem}")
                continue
        lines.append(ScenarioLine(line.line, audio, events))
    longest = max((_audio_seconds(line.audio) for line in lines), default=math.inf)
    for index, fault in enumerate(model.fault):
        if fault.at > longest:
            problems.append(f"fault[{index}].at: {fault.at:g} s is after the end of the line audio "
                            f"({longest:.1f} s)")
    if problems:
        raise ScenarioError(report(str(path), "scenario", problems))
    faults = tuple(ScenarioFault(f.at, f.kind, f.seconds, f.line) for f in model.fault)
    return Scenario(tuple(lines), faults)


def _isdn_events(scenario: Path, lines: list[LineModel], line: LineModel,
                 length: float) -> tuple[tuple[ScenarioEvent, ...], str | None]:
    """The line's edges and facts from its D-channel trace, decoded as the live tap's would be."""
    from callrec.isdn import PcapFormatError, read_pcap
    from callrec.line import RawEdge, trace_inputs

    assert line.dchannel is not None and line.b_channel is not None
    trace = (scenario.parent / line.dchannel).resolve()
    mapping = {other.b_channel: other.line for other in lines
               if other.dchannel == line.dchannel and other.b_channel is not None}
    try:
        inputs = trace_inputs(read_pcap(str(trace)), mapping, start=line.dchannel_start_s)
    except (PcapFormatError, OSError) as error:
        return (), f"{trace}: {error}"
    mine = [item for item in inputs if item.line == line.line]
    late = [item.t for item in mine if item.t > length]
    if late:
        return (), (f"the trace has this line's call at {late[0]:.1f} s, after the end of the line audio "
                    f"({length:.1f} s); make the audio longer")
    return tuple(ScenarioEvent(item.t, item.signal, item.active) if isinstance(item, RawEdge)
                 else ScenarioEvent(item.t, "isdn", False, item) for item in mine), None


def _audio(scenario: Path, name: str) -> tuple[Path | None, str | None]:
    audio = (scenario.parent / name).resolve()
    try:
        if not audio.exists():
            return None, f"no such file {audio}"
        if audio.is_dir():
            return None, f"{audio} is a directory, not an audio file"
    except OSError as error:   # a name too long, a loop of links, a directory we may not enter
        return None, f"{str(audio)[:200]}: cannot be looked at: {error.strerror or error}"
    try:
        info = soundfile.info(str(audio))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        return None, f"{audio}: not a readable audio file ({error})"
    if info.frames == 0:
        return None, f"{audio}: the file holds no audio"
    return audio, None


def _audio_seconds(audio: Path) -> float:
    info = soundfile.info(str(audio))
    seconds: float = info.frames / info.samplerate
    return seconds
