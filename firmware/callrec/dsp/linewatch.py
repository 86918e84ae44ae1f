"""Watches on an idle line: audio stuck at digital zero, and a line that has gone quiet for days.

Both are faults a tap cannot see during a call. A working line always carries some noise through the
transformer, so capture that is *identically* zero means the card, its cable or the driver delivers
nothing; and a line that normally has calls every day but shows no ring and no hook change for days
is probably unplugged or dead. Both are pure: audio or timestamps in, a bool out (docs/tap-health.md).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .detection import SAMPLE_RATE
from .health import HealthSettings


class IdleLineWatch:
    """Feed idle-line audio; `zero_now()` is True once it has been all zeros for `idle_zero_s`."""

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self._zero_run = 0          # trailing samples that are exactly 0

    @property
    def zero_s(self) -> float:
        """How long the audio has been identically zero, in seconds of audio."""
        return self._zero_run / SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> bool:
        """Add a block of idle audio; return `zero_now()` after it."""
        x = np.asarray(samples)
        if len(x) and x[-1] != 0:       # the usual case on a live line: noise, nothing to search
            self._zero_run = 0
        elif x.any():
            # Only the zeros after the last non-zero sample still count.
            self._zero_run = len(x) - 1 - int(np.flatnonzero(x)[-1])
        else:
            self._zero_run += len(x)
        return self.zero_now()

    def zero_now(self) -> bool:
        return self._zero_run >= self.settings.idle_zero_s * SAMPLE_RATE

    def reset(self) -> None:
        """Forget the run (a call started, or capture restarted)."""
        self._zero_run = 0


class DeadLineWatch:
    """No ring and no hook change for `idle_alarm_hours` on a line that usually has calls.

    "Usually has calls": at least `usual_calls` call starts within `usual_days` before the line's last
    activity. Measured back from the last activity rather than from now, so a line that died stays in
    alarm instead of quietly ageing out of its own history. Only the last `usual_calls` call times are
    kept. Times are seconds on one clock the caller chooses (wall time if the history must come from
    the call index across restarts); the watch never reads a clock itself.
    """

    def __init__(self, settings: HealthSettings | None = None, calls: list[float] | None = None) -> None:
        self.settings = settings or HealthSettings()
        self._calls: deque[float] = deque(sorted(calls or [])[-self.settings.usual_calls:],
                                          maxlen=self.settings.usual_calls)
        self._last: float | None = max(self._calls) if self._calls else None

    def call(self, t: float) -> None:
        """A call started at `t` (a call is also activity)."""
        self._calls.append(t)
        self.activity(t)

    def activity(self, t: float) -> None:
        """A ring or a hook change at `t`; also call it once at start-up, so a fresh boot counts from then."""
        self._last = t if self._last is None else max(self._last, t)

    def usually_has_calls(self) -> bool:
        s = self.settings
        return self._last is not None and len(self._calls) >= s.usual_calls and \
            self._last - self._calls[0] <= s.usual_days * 86400.0

    def check(self, now: float) -> bool:
        """True when the line should be alarmed as dead at `now`."""
        if self._last is None or not self.usually_has_calls():
            return False
        return now - self._last >= self.settings.idle_alarm_hours * 3600.0
