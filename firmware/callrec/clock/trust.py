"""Clock trust: which wall times may be believed, and the correction for those that were not.

Durations come from monotonic time, which no time service ever steps; wall time is only a label.
The core stamps each call start with `stamp(key, mono, wall)` and feeds `observe(status, mono,
wall)` with periodic readings of the clock port. Records stamped while the clock was untrusted are
remembered by their monotonic stamp; when the clock becomes trusted the relation wall − monotonic
measured then says how far off each of them was, whatever steps happened in between:
offset = wall_after_sync − (wall_at_record + (mono_after_sync − mono_at_record)).
`pop_corrections()` hands those over for annotation. Pure: no clock is read here.

Monotonic time restarts at boot, so pending records do not survive a restart: a record made before
the last reboot that never got its correction stays marked untrusted, which is the truth.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from .port import ClockStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stamp:
    """When something happened: monotonic seconds, wall seconds (epoch), and whether the wall was trusted."""

    mono: float
    wall: float
    trusted: bool


@dataclass(frozen=True)
class Correction:
    """An untrusted record that can now be annotated: add `offset_s` to its stamped wall time."""

    key: str
    stamp: Stamp
    offset_s: float

    @property
    def wall(self) -> float:
        return self.stamp.wall + self.offset_s


@dataclass(frozen=True)
class Span:
    wall_start: float
    wall_end: float
    duration_s: float


def span(start: Stamp, end_mono: float, offset_s: float = 0.0) -> Span:
    """A call's duration from monotonic stamps, placed at its (corrected) wall start: a wall-clock
    step during the call changes neither the duration nor the end, which is start + duration."""
    duration = max(0.0, end_mono - start.mono)
    wall_start = start.wall + offset_s
    return Span(wall_start, wall_start + duration, duration)


class ClockTrust:
    """Trusted when the last reading was synchronised with an error bound within `max_error_s`."""

    def __init__(self, *, max_error_s: float = 1.0, step_s: float = 1.0, max_pending: int = 10_000) -> None:
        self.max_error_s = max_error_s
        self.step_s = step_s
        self._trusted = False
        self._base: float | None = None        # wall − mono at the last reading
        self._pending: deque[tuple[str, Stamp]] = deque(maxlen=max_pending)
        self._ready: list[Correction] = []
        self.last_status: ClockStatus | None = None
        self.last_step_s: float | None = None   # size of the last wall-clock step seen between readings

    def trusted_now(self) -> bool:
        return self._trusted

    def observe(self, status: ClockStatus, mono: float, wall: float) -> None:
        """A reading of the clock port taken at (`mono`, `wall`)."""
        base = wall - mono
        if self._base is not None and abs(base - self._base) > self.step_s:
            self.last_step_s = base - self._base
            log.info("clock: wall clock stepped by %+.3f s", self.last_step_s)
        self._base = base
        self.last_status = status
        trusted = status.synchronised and (status.max_error_s is None or status.max_error_s <= self.max_error_s)
        if trusted and not self._trusted:
            log.info("clock: trusted (%s); %d untrusted records to correct", status.source, len(self._pending))
            while self._pending:
                key, stamp = self._pending.popleft()
                self._ready.append(Correction(key, stamp, base - (stamp.wall - stamp.mono)))
        elif self._trusted and not trusted:
            log.warning("clock: no longer trusted (%s)", status.source)
        self._trusted = trusted

    def stamp(self, key: str, mono: float, wall: float) -> Stamp:
        """Stamp record `key`; if the clock is untrusted, remember it for correction."""
        stamp = Stamp(mono, wall, self._trusted)
        if not self._trusted:
            if len(self._pending) == self._pending.maxlen:
                log.warning("clock: too many untrusted records; %s will not be corrected", self._pending[0][0])
            self._pending.append((key, stamp))
        return stamp

    def pending(self) -> list[str]:
        """Keys of untrusted records still waiting for a trusted clock."""
        return [key for key, _ in self._pending]

    def pop_corrections(self) -> list[Correction]:
        """The untrusted records that can now be annotated, each once."""
        ready, self._ready = self._ready, []
        return ready
