"""Clock trust (docs/tap-health.md): is the wall clock synchronised, and the correction for records
stamped before it was.

`ClockSource` is the port (`status() -> ClockStatus`); `AdjtimexClock` (the kernel), `ChronyClock`
and `TimedatectlClock` (the tools) are its backends, `detect_clock()` picks one, `SimulatedClock` is
the twin. `ClockTrust` is the pure logic the core runs on injected monotonic time.
"""

from callrec.clock.adjtimex import AdjtimexClock
from callrec.clock.detect import detect_clock
from callrec.clock.port import ClockSource, ClockStatus
from callrec.clock.tools import ChronyClock, TimedatectlClock, parse_chrony_tracking, parse_timespan
from callrec.clock.trust import ClockTrust, Correction, Span, Stamp, span
from callrec.clock.twin import SimulatedClock

__all__ = [
    "AdjtimexClock", "ChronyClock", "ClockSource", "ClockStatus", "ClockTrust", "Correction", "SimulatedClock",
    "Span", "Stamp", "TimedatectlClock", "detect_clock", "parse_chrony_tracking", "parse_timespan", "span",
]
