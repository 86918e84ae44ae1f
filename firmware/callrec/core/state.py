"""What the core keeps per line, the inputs only it understands, and what it needs of a player."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from callrec.audio import LineDetectors, PreRoll
from callrec.core.call import Call
from callrec.line import LineMonitor

PREROLL_SLACK_S = 2.0   # the decision comes a debounce after the edge: keep that much more
# Audio goes to the recorder in batches of this many periods (200 ms at 20 ms): one queue hand-over
# per batch instead of per period. The recorder's sync interval allows for it (storage.sync_interval_s).
AUDIO_BATCH_PERIODS = 10
# An overrun alarm clears once a PCM has gone this long without another.
OVERRUN_QUIET_S = 60.0
# A line louder than this in the silence of a ringback is someone speaking: the far end answered.
VOICE_DBFS = -45.0
VOICE_MIN_S = 0.2


@dataclass(frozen=True)
class ControlRequest:
    name: str
    args: dict[str, Any]
    reply: Future[dict[str, Any]]


@dataclass(frozen=True)
class Shutdown:
    reason: str


class Player(Protocol):
    """What the core needs of a playback path for one line."""

    def play(self, line: int, samples: np.ndarray, kind: str) -> None: ...
    def cancel(self, line: int) -> None: ...
    def busy(self, line: int) -> bool: ...


@dataclass
class LineState:
    id: int
    monitor: LineMonitor
    preroll: PreRoll
    frame_end: int = 0
    t_end: float = 0.0
    call: Call | None = None
    state: str = "idle"                      # as shown: `activity`, or `fault` while it cannot record
    activity: str = "idle"                   # idle | ringing | offhook | recording
    led: str = "off"
    since_wall: float = field(default_factory=time.time)
    fault: bool = False
    detectors: LineDetectors | None = None
    caller: dict[str, Any] | None = None     # caller ID of the current ringing episode
    last_caller_number: str | None = None    # the last number caller ID gave, kept across calls
    ringback: bool = False                   # ringback tone sounding now
    voice_since: float | None = None         # start of the current loud stretch while awaiting an answer
    isdn: dict[str, Any] | None = None       # what the D-channel said of the line's current call
    raw: dict[str, bool] = field(default_factory=dict)    # last raw level per input (hook, ring): `gpio`
    edges: dict[str, int] = field(default_factory=dict)   # raw edges seen per input since start




def frame_at(line: LineState, t: float, rate: int) -> int:
    """The line's frame index at core time `t`, from the last audio it carried (exact in simulation,
    within a period on a Pi; times past the audio are extrapolated)."""
    return line.frame_end - int(round((line.t_end - t) * rate))
