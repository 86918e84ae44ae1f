"""Clock trust in the core: each call knows whether the wall clock was synchronised when it began,
and a call made before it was is annotated with the offset once it is.

The core's clock is monotonic (line-audio time in simulation), and every wall label is taken from it
through `wall_of`, so a step of the wall clock moves labels, never a duration. The clock port
(callrec.clock, read by the wiring) is asked every `OBSERVE_EVERY_S` of core time; `ClockTrust`
ties each untrusted start's monotonic time to the wall clock at the moment it becomes trusted, and
the finisher writes the measured offset into the record (`clock_correction`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callrec.clock import ClockStatus, ClockTrust
from callrec.recording import ClockCorrected, Recorder

OBSERVE_EVERY_S = 5.0


class CoreClock:
    def __init__(self, status: Callable[[], dict[str, Any] | None] | None, wall_of: Callable[[float], float],
                 recorder: Recorder) -> None:
        self._status = status
        self._wall_of = wall_of
        self._recorder = recorder
        self._trust = ClockTrust()
        self._next = 0.0
        self._observed = False

    def stamp(self, call_id: str, t: float, wall: float) -> bool:
        """Whether the clock is trusted for a call starting at core time `t` (remembered if not)."""
        if self._status is None:
            return False
        if not self._observed:
            self.observe(t, force=True)
        return self._trust.stamp(call_id, t, wall).trusted

    def trusted(self, t: float) -> bool | None:
        """Whether the wall clock is synchronised at core time `t`, for an event made then; None with
        no clock port (nothing can say)."""
        if self._status is None:
            return None
        if not self._observed:
            self.observe(t, force=True)
        return self._trust.trusted_now()

    def current(self) -> bool | None:
        """The last verdict, for events made off the core's thread (the recorder's, the archive's):
        they have no core time of their own, and reading the port there would race the core."""
        if self._status is None or not self._observed:
            return None
        return self._trust.trusted_now()

    def observe(self, now: float, *, force: bool = False) -> None:
        if self._status is None or (now < self._next and not force):
            return
        self._next = now + OBSERVE_EVERY_S
        self._observed = True
        report = self._status()
        status = ClockStatus(bool(report.get("synchronised")), str(report.get("source")), report.get("offset_s"),
                             report.get("max_error_s")) if report else ClockStatus.unknown()
        wall = self._wall_of(now)
        self._trust.observe(status, now, wall)
        for correction in self._trust.pop_corrections():
            self._recorder.submit(ClockCorrected(correction.key, correction.offset_s, correction.wall, wall))
