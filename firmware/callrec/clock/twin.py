"""The simulated clock: the port's twin, and the wall and monotonic clocks a test or scenario drives.

It holds true time, the system's monotonic and wall clocks and the time service's state, so a test
can boot a box hours off, let time pass, synchronise it or step it, and hand `monotonic` and `wall`
to the code under test as its injected clocks.
"""

from __future__ import annotations

from .port import ClockStatus


class SimulatedClock:
    """Starts unsynchronised with the wall clock `error_s` off true time (clock minus true time)."""

    source = "simulated"

    def __init__(self, true_start: float = 1_800_000_000.0, *, error_s: float = 0.0, synchronised: bool = False,
                 max_error_s: float = 0.01) -> None:
        self.true = true_start
        self._mono = 0.0
        self._wall = true_start + error_s
        self.synchronised = synchronised
        self._max_error_s = max_error_s

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Time passes: all clocks move together."""
        self.true += seconds
        self._mono += seconds
        self._wall += seconds

    def step(self, seconds: float) -> None:
        """The wall clock jumps (someone ran `date -s`, a service stepped it); monotonic time does not."""
        self._wall += seconds

    def sync(self, at_offset_s: float | None = None) -> None:
        """The time service synchronises, finding the clock `at_offset_s` off (clock minus reference;
        default: the clock's actual error) and stepping it onto true time."""
        offset = self._wall - self.true if at_offset_s is None else at_offset_s
        self._wall -= offset
        self.synchronised = True

    def status(self) -> ClockStatus:
        if not self.synchronised:
            return ClockStatus(False, self.source, None, 16.0)
        return ClockStatus(True, self.source, self._wall - self.true, self._max_error_s)
