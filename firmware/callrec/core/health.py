"""Tap health in the core: the alarms a silent failure of the tap deserves, and each call's verdict.

A tap on the wrong pair records hiss for months; a loose transformer lead loses one side; a sound
card or its cable gives digital zero; a handset left off (or a miswired sense input) makes one call
of a week. The core already has every line's audio period by period, so it measures here (the
measurements are dsp/health.py and dsp/linewatch.py; docs/tap-health.md defines them):

- during a call: `tap_silent` as soon as the call has stayed below the floor for `silent_after_s`;
- at a call's end: its verdict goes into the record's `health`; `tap_one_sided`, `tap_clipping`,
  `tap_hum` are raised for the line, and cleared by the next call that does not have them;
- while idle: `tap_zero` when the audio is identically zero for `idle_zero_s`;
- `dead_line` when a line that usually has calls has had no ring or hook change for
  `idle_alarm_hours`; `hook_stuck` when a call reaches `max_call_hours`: the call is split there
  (the recorder gets parts of at most that length) and the alarm stays until the line is on-hook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from callrec.config import Config
from callrec.core.alarms import CoreAlarms
from callrec.core.call import Call
from callrec.core.state import LineState
from callrec.dsp import SAMPLE_RATE, CallHealth, DeadLineWatch, HealthSettings, IdleLineWatch

CALL_PROBLEMS = {"one_sided": "tap_one_sided", "clipping": "tap_clipping", "hum": "tap_hum"}
DEAD_CHECK_EVERY_S = 60.0
MESSAGES = {
    "tap_silent": "line {line}: the call has been silent (below {floor} dBFS) for {after} s: is the tap on the "
                  "right pair?",
    "tap_one_sided": "line {line}: only one party was heard on call {call}: a loose or miswired tap lead?",
    "tap_clipping": "line {line}: call {call} was clipped ({share:.1%} of samples at full scale): lower the "
                    "capture gain",
    "tap_hum": "line {line}: strong {hz} Hz mains hum on call {call} ({db:.0f} dB): a ground loop?",
    "tap_zero": "line {line}: the idle line's audio is digital zero: a card or cable problem",
    "dead_line": "line {line}: no ring and no hook change for {hours:.0f} h on a line that usually has calls",
    "hook_stuck": "line {line}: off-hook for more than {hours:g} h (a handset left off, or a miswired hook input); "
                  "the call is split into parts",
}


def _announcing(call: Call, t: float) -> bool:
    if call.announcement is None:
        return call.announce_pending
    return call.announcement_end_t is None or t <= call.announcement_end_t + 0.2


def settings_of(config: Config) -> HealthSettings:
    h = config.health
    return HealthSettings(silence_floor_dbfs=h.silence_floor_dbfs, silent_after_s=h.silent_after_s,
                          clip_level=h.clip_level, max_clipped_share=h.max_clipped_share, hum_ratio_db=h.hum_ratio_db,
                          min_talk_s=h.min_talk_s, side_gap_db=h.side_gap_db, idle_zero_s=h.idle_zero_s,
                          idle_alarm_hours=h.idle_alarm_hours, usual_calls=h.usual_calls, usual_days=h.usual_days,
                          mains_hz=(50, 60))


class TapHealth:
    def __init__(self, config: Config, alarms: CoreAlarms, rate: int) -> None:
        self.enabled = config.health.enabled
        self.settings = settings_of(config)
        self.max_call_s = config.health.max_call_hours * 3600
        self.alarms = alarms
        self.rate = rate
        self._meters: dict[str, CallHealth] = {}
        self._idle: dict[int, IdleLineWatch] = {}
        self._dead: dict[int, DeadLineWatch] = {}
        self._resample: dict[int, Any] = {}
        self._next_dead_check = 0.0

    # ---- audio -----------------------------------------------------------------------------------

    def audio(self, line: LineState, samples: np.ndarray, t: float) -> None:
        if not self.enabled:
            return
        samples = self._at_8k(line.id, samples)
        call = line.call
        if call is not None:
            if _announcing(call, t):
                return   # our own announcement, heard back through the hybrid, says nothing of the tap
            meter = self._meters.get(call.call_id)
            if meter is None:   # (not setdefault: that would build a meter, bases and all, every period)
                meter = self._meters[call.call_id] = CallHealth(self.settings)
            meter.feed(samples)
            alarm = f"tap_silent:{line.id}"
            if meter.silent_now():
                self._raise(alarm, line.id, "tap_silent", t, floor=self.settings.silence_floor_dbfs,
                            after=self.settings.silent_after_s)
            elif alarm in self.alarms and meter.duration_s > 0:
                self.alarms.clear(alarm, t)
            return
        watch = self._idle.get(line.id)
        if watch is None:
            watch = self._idle[line.id] = IdleLineWatch(self.settings)
        alarm = f"tap_zero:{line.id}"
        if watch.feed(samples):
            self._raise(alarm, line.id, "tap_zero", t)
        elif alarm in self.alarms:
            self.alarms.clear(alarm, t)

    def _at_8k(self, line: int, samples: np.ndarray) -> np.ndarray:
        if self.rate == SAMPLE_RATE:
            return samples
        stream = self._resample.get(line)
        if stream is None:
            stream = self._resample[line] = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="int16")
        resampled: np.ndarray = stream.resample_chunk(samples)
        return resampled

    # ---- the line's activity and the call's life ---------------------------------------------------

    def activity(self, line: int, t: float, *, call: bool = False) -> None:
        watch = self._dead.get(line)
        if watch is None:
            watch = self._dead[line] = DeadLineWatch(self.settings)
        if call:
            watch.call(t)
        else:
            watch.activity(t)
        self.alarms.clear(f"dead_line:{line}", t)
        if line in self._idle:
            self._idle[line].reset()

    def onhook(self, line: int, t: float) -> None:
        self.alarms.clear(f"hook_stuck:{line}", t)

    def split_due(self, call: Call, now: float) -> float | None:
        """When the call reached `max_call_hours` (the caller splits it exactly there), if it has:
        `hook_stuck` is raised."""
        if not self.enabled or now - call.started_t < self.max_call_s:
            return None
        at = call.started_t + self.max_call_s
        self._raise(f"hook_stuck:{call.line}", call.line, "hook_stuck", at, hours=self.max_call_s / 3600)
        return at

    def verdict(self, call: Call, t: float) -> dict[str, Any] | None:
        """The call's `health` for its record; raises and clears the per-call alarms of its line."""
        meter = self._meters.pop(call.call_id, None)
        if meter is None:
            return None
        verdict = meter.verdict()
        problems = set(verdict.get("problems") or [])
        for problem, kind in CALL_PROBLEMS.items():
            alarm = f"{kind}:{call.line}"
            if problem in problems:
                self._raise(alarm, call.line, kind, t, call=call.call_id, share=verdict.get("clipped_share") or 0,
                            hz=verdict.get("hum_hz"), db=verdict.get("hum_db") or 0)
            elif alarm in self.alarms:
                self.alarms.clear(alarm, t)
        if "silent" not in problems:
            self.alarms.clear(f"tap_silent:{call.line}", t)
        return verdict

    def check(self, now: float) -> None:
        """At most once a minute: the lines that should have had calls and did not."""
        if not self.enabled or now < self._next_dead_check:
            return
        self._next_dead_check = now + DEAD_CHECK_EVERY_S
        for line, watch in self._dead.items():
            if watch.check(now):
                self._raise(f"dead_line:{line}", line, "dead_line", now, hours=self.settings.idle_alarm_hours)

    def _raise(self, alarm_id: str, line: int, kind: str, t: float, **values: Any) -> None:
        if alarm_id not in self.alarms:
            self.alarms.raise_(alarm_id, line, kind, MESSAGES[kind].format(line=line, **values), t)
