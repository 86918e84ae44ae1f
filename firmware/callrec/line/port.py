"""The line port: what any source of line signalling must provide.

A line source turns hardware edges into `RawEdge`s and hands them to a sink; it decides nothing
(debounce, rings, flashes and calls are the core's). The GPIO pins of a real Pi, the simulated line
and, later, an ISDN D-channel decoder are backends of this one port, chosen by constructor injection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Signal = Literal["hook", "ring"]
# The line's LED: off (idle), on (a call is being recorded), blink (the line cannot record: fault).
LedState = Literal["off", "on", "blink"]


@dataclass(frozen=True)
class RawEdge:
    """A level change on one sense input, already translated from pin polarity.

    `active` means off-hook for `hook` and ringing voltage present for `ring`. `t` is on the
    core's clock (monotonic seconds on hardware, line-audio seconds in simulation).
    """

    line: int
    signal: Signal
    active: bool
    t: float


@dataclass(frozen=True)
class IsdnInfo:
    """What a digital line says about its call that no edge can: numbers, call reference, B-channel
    and, at the end, the cause. `kind`: offered | digits | alerting | answered | ended. `fields`:
    `call_ref`, `direction`, `calling`, `called`, `b_channel`, `cause` ({value, text} or None)."""

    line: int
    t: float
    kind: str
    fields: dict[str, Any]


LineInput = RawEdge | IsdnInfo
EdgeSink = Callable[[LineInput], None]


class LineSource(Protocol):
    """A backend of the line port. Must be thread-safe: the sink may be called from any thread."""

    def start(self, sink: EdgeSink) -> None:
        """Claim the inputs, report each line's current levels as edges, then report every change."""
        ...

    def set_led(self, line: int, state: LedState) -> None:
        """Show the line's state on its LED (a no-op where the line has none)."""
        ...

    def stop(self) -> None:
        """Release the inputs and outputs."""
        ...
