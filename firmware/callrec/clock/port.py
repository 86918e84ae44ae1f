"""The clock port: how far the box may trust its own wall clock.

A Raspberry Pi has no battery-backed clock: it boots at the time fake-hwclock saved at shutdown and
is only right once a time service has synchronised it. Call records are stamped with wall time, so
the core must know whether that time is trustworthy. Every backend (the kernel via adjtimex, the
timedatectl and chronyc tools, the simulated twin) answers the same one question, `status()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ClockStatus:
    """One reading of the time service.

    `offset_s` is the system clock minus the reference (positive: the system clock is ahead), when
    the source knows it; `max_error_s` a bound on the system clock's error, when it knows one.
    `source` names the backend, or is "unknown" when nothing could be read (then `synchronised` is
    False: an unknown clock is not trusted).
    """

    synchronised: bool
    source: str
    offset_s: float | None = None
    max_error_s: float | None = None

    @classmethod
    def unknown(cls) -> ClockStatus:
        return cls(False, "unknown", None, None)

    @property
    def known(self) -> bool:
        return self.source != "unknown"


class ClockSource(Protocol):
    """A backend of the clock port. Must not raise: anything it cannot read is `ClockStatus.unknown()`."""

    def status(self) -> ClockStatus:
        ...
