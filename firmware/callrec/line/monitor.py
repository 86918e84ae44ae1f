"""The line monitor: one phone line's hook and ring inputs turned into what happened on the line.

Pure logic on injected time, so every rule here is tested to the millisecond without hardware:
- debounce: a hook level counts once it has held `debounce_s`; the change is dated at its edge;
- ring bursts: ring voltage makes an opto pulse train (16-25 Hz) or, behind an RC filter, a steady
  level; a burst starts once the input has been active for `debounce_s` in total and ends after
  `ring_gap_s` of quiet, so both forms and contact glitches give the same bursts;
- direction: ringing within `inbound_window_s` before the off-hook makes the call inbound;
- flash: an on-hook between `flash_min_s` and `flash_max_s` is a hook flash, the call goes on;
  longer ends the call, dated at the on-hook edge; shorter is a glitch and ignored;
- NTT Number Display: in Japan the exchange sends short CAR bursts, the terminal goes off-hook to
  take the caller ID and on-hook again before real ringing. An off-hook after CAR only, with no
  real ring yet, is held for `nd_max_offhook_s`: back on-hook in time, it was the exchange, not a
  call; still off-hook, it is a call dated from its edge (the pre-roll keeps its first words).
- start: the line port reports each input's level once when watching begins (`report`). An off-hook
  found there is a call already in progress (the service restarted, or the Pi rebooted, during it):
  it is a call from that report, marked `in_progress`, since its beginning and its ringing were
  not seen. Ringing found there is ringing like any other.

Timed decisions are taken in time order by `advance(now)`; the core calls it with every input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from callrec.line.port import RawEdge


@dataclass(frozen=True)
class MonitorSettings:
    debounce_s: float = 0.030
    ring_gap_s: float = 0.200
    inbound_window_s: float = 8.0
    flash_min_s: float = 0.100
    flash_max_s: float = 1.000
    nd_enabled: bool = False
    nd_car_max_s: float = 0.7
    nd_max_offhook_s: float = 3.0


@dataclass(frozen=True)
class RingStarted:
    t: float


@dataclass(frozen=True)
class RingEnded:
    t: float
    duration_s: float
    count: int          # real rings so far in this ringing episode
    car: bool           # an NTT CAR burst, not a ring


@dataclass(frozen=True)
class RingingStopped:
    """Ringing ended without an answer: a missed call."""

    t: float
    rings: int


@dataclass(frozen=True)
class HookChanged:
    t: float
    offhook: bool


@dataclass(frozen=True)
class CallBegan:
    t: float
    direction: str      # "inbound" | "outbound"
    rings: int
    in_progress: bool = False   # already off-hook when watching began: its beginning was not seen


@dataclass(frozen=True)
class FlashSeen:
    t: float
    duration_s: float


@dataclass(frozen=True)
class CallEnded:
    t: float            # the on-hook edge that hung up


@dataclass(frozen=True)
class NumberDisplaySeen:
    """The NTT Number Display exchange: off-hook at `t_off`, on-hook at `t`; not a call."""

    t_off: float
    t: float


LineSignal = (
    RingStarted | RingEnded | RingingStopped | HookChanged | CallBegan | FlashSeen | CallEnded
    | NumberDisplaySeen
)


class _Hook(Enum):
    IDLE = "idle"
    NUMBER_DISPLAY = "number_display"   # off-hook after CAR, waiting to see which it is
    IN_CALL = "in_call"
    ONHOOK_PENDING = "onhook_pending"   # in a call, on-hook: a flash or a hang-up?


class LineMonitor:
    def __init__(self, line: int, settings: MonitorSettings, initial_offhook: bool = False) -> None:
        self.line = line
        self.s = settings
        # hook debounce
        self._hook_raw = initial_offhook
        self._hook_raw_t = 0.0
        self._hook_stable = initial_offhook
        self._hook = _Hook.IDLE
        self._found_offhook = False   # the start report said off-hook, and the hook has not moved since
        self._offhook_t = 0.0
        self._onhook_t = 0.0
        # ring bursts
        self._ring_raw = False
        self._ring_active_since = 0.0
        self._ring_quiet_since = 0.0
        self._ring_candidate: float | None = None    # first active edge of a possible burst
        self._ring_accumulated = 0.0
        self._ring_burst_start: float | None = None  # confirmed burst
        # ringing episode
        self._rings = 0
        self._cars = 0
        self._last_burst_end: float | None = None

    # ---- state for dashboards -----------------------------------------------------------------

    @property
    def in_call(self) -> bool:
        return self._hook in (_Hook.IN_CALL, _Hook.ONHOOK_PENDING)

    @property
    def ringing(self) -> bool:
        return self._hook is _Hook.IDLE and (
            self._ring_burst_start is not None or self._last_burst_end is not None
        )

    @property
    def offhook(self) -> bool:
        return self._hook_stable

    # ---- inputs --------------------------------------------------------------------------------

    def report(self, level: RawEdge) -> list[LineSignal]:
        """An input's level when watching began, as the line port reports it once at start.

        Taken like an edge (debounced, dated at its time), except that a hook found off-hook is a
        call already in progress: nobody lifted the handset at that moment, it was up before."""
        out = self.edge(level)
        if level.signal == "hook":
            self._found_offhook = level.active
        return out

    def edge(self, edge: RawEdge) -> list[LineSignal]:
        out = self.advance(edge.t)
        if edge.signal == "hook":
            if edge.active != self._hook_raw:
                self._hook_raw = edge.active
                self._hook_raw_t = edge.t
                self._found_offhook = False   # it moved: what follows was seen happen
        else:
            self._ring_edge(edge.active, edge.t)
        return out + self.advance(edge.t)

    def advance(self, now: float) -> list[LineSignal]:
        """Take every timed decision due up to `now`, in time order."""
        out: list[LineSignal] = []
        while True:
            due = [(t, action) for t, action in self._timers() if t <= now]
            if not due:
                return out
            t, action = min(due, key=lambda item: item[0])
            out.extend(action(t))

    def next_due(self) -> float | None:
        """When the next timed decision falls due (None: nothing pending), for a timed wake-up."""
        timers = self._timers()
        return min(t for t, _ in timers) if timers else None

    # ---- timers ----------------------------------------------------------------------------------

    def _timers(self) -> list[tuple[float, Callable[[float], list[LineSignal]]]]:
        timers: list[tuple[float, Callable[[float], list[LineSignal]]]] = []
        if self._hook_raw != self._hook_stable:
            timers.append((self._hook_raw_t + self.s.debounce_s, self._hook_settled))
        returning = (self._hook_raw and not self._hook_stable
                     and self._hook_raw_t <= self._onhook_t + self.s.flash_max_s)
        if self._hook is _Hook.ONHOOK_PENDING and not returning:
            # An off-hook edge inside the flash window still settling is a flash in the making:
            # hang up only if it turns out to be a bounce (this timer is then already due).
            timers.append((self._onhook_t + self.s.flash_max_s, self._hung_up))
        if self._hook is _Hook.NUMBER_DISPLAY:
            timers.append((self._offhook_t + self.s.nd_max_offhook_s, self._number_display_was_a_call))
        if self._ring_candidate is not None and self._hook is _Hook.IDLE:
            if self._ring_burst_start is None and self._ring_raw:
                need = self.s.debounce_s - self._ring_accumulated
                timers.append((self._ring_active_since + need, self._ring_confirmed))
            if not self._ring_raw:
                timers.append((self._ring_quiet_since + self.s.ring_gap_s, self._ring_burst_over))
        if (
            self._hook is _Hook.IDLE
            and self._ring_candidate is None
            and self._last_burst_end is not None
        ):
            timers.append((self._last_burst_end + self.s.inbound_window_s, self._ringing_stopped))
        return timers

    def _hook_settled(self, t: float) -> list[LineSignal]:
        self._hook_stable = self._hook_raw
        edge_t = self._hook_raw_t
        out: list[LineSignal] = [HookChanged(edge_t, self._hook_stable)]
        if self._hook_stable:
            out += self._went_offhook(edge_t)
        else:
            out += self._went_onhook(edge_t)
        return out

    def _went_offhook(self, t: float) -> list[LineSignal]:
        if self._hook is _Hook.ONHOOK_PENDING:
            self._hook = _Hook.IN_CALL
            gap = t - self._onhook_t
            return [FlashSeen(self._onhook_t, gap)] if gap >= self.s.flash_min_s else []
        if self._hook is not _Hook.IDLE:
            return []
        self._offhook_t = t
        burst = self._ongoing_burst(t)
        short_burst = burst is not None and burst <= self.s.nd_car_max_s
        if self.s.nd_enabled and self._rings == 0 and (self._cars > 0 or short_burst):
            self._hook = _Hook.NUMBER_DISPLAY
            return []
        return self._begin_call(t)

    def _went_onhook(self, t: float) -> list[LineSignal]:
        if self._hook is _Hook.IN_CALL:
            self._hook = _Hook.ONHOOK_PENDING
            self._onhook_t = t
        elif self._hook is _Hook.NUMBER_DISPLAY:
            self._hook = _Hook.IDLE
            self._ring_reset_burst()
            return [NumberDisplaySeen(self._offhook_t, t)]
        return []

    def _begin_call(self, t: float) -> list[LineSignal]:
        burst = self._ongoing_burst(t)
        rings = self._rings
        car = self.s.nd_enabled and self._rings == 0 and burst is not None and burst <= self.s.nd_car_max_s
        if burst is not None and not car:
            rings += 1  # answered during a ring: the exchange trips it
        recent = burst is not None or (
            self._last_burst_end is not None and t - self._last_burst_end <= self.s.inbound_window_s
        )
        direction = "inbound" if recent else "outbound"
        in_progress, self._found_offhook = self._found_offhook, False
        self._hook = _Hook.IN_CALL
        self._end_ringing_episode()
        return [CallBegan(t, direction, rings, in_progress)]

    def _hung_up(self, t: float) -> list[LineSignal]:
        self._hook = _Hook.IDLE
        self._end_ringing_episode()
        return [CallEnded(self._onhook_t)]

    def _number_display_was_a_call(self, t: float) -> list[LineSignal]:
        self._hook = _Hook.IDLE
        return self._begin_call(self._offhook_t)

    # ---- ring bursts ---------------------------------------------------------------------------

    def _ring_edge(self, active: bool, t: float) -> None:
        if active == self._ring_raw:
            return
        self._ring_raw = active
        if self._hook is not _Hook.IDLE:
            return  # no ringing on a line in use; a stuck input must not count as rings
        if active:
            if self._ring_candidate is None:
                self._ring_candidate = t
                self._ring_accumulated = 0.0
            self._ring_active_since = t
        elif self._ring_candidate is not None:
            self._ring_accumulated += t - self._ring_active_since
            self._ring_quiet_since = t

    def _ring_confirmed(self, t: float) -> list[LineSignal]:
        self._ring_burst_start = self._ring_candidate
        assert self._ring_burst_start is not None
        return [RingStarted(self._ring_burst_start)]

    def _ring_burst_over(self, t: float) -> list[LineSignal]:
        start = self._ring_burst_start
        end = self._ring_quiet_since
        self._ring_reset_burst()
        if start is None:
            return []  # a glitch, never confirmed
        duration = end - start
        car = self.s.nd_enabled and duration <= self.s.nd_car_max_s
        if car:
            self._cars += 1
        else:
            self._rings += 1
        self._last_burst_end = end
        return [RingEnded(end, duration, self._rings, car)]

    def _ringing_stopped(self, t: float) -> list[LineSignal]:
        rings = self._rings
        self._end_ringing_episode()
        return [RingingStopped(t, rings)] if rings else []

    def _ongoing_burst(self, t: float) -> float | None:
        return None if self._ring_burst_start is None else t - self._ring_burst_start

    def _ring_reset_burst(self) -> None:
        self._ring_candidate = None
        self._ring_burst_start = None
        self._ring_accumulated = 0.0

    def _end_ringing_episode(self) -> None:
        self._ring_reset_burst()
        self._rings = 0
        self._cars = 0
        self._last_burst_end = None
