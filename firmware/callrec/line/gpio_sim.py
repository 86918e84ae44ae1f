"""The simulated line: a backend of the line port driven by a scenario instead of pins.

The simulator (or a test) calls `drive()` with the level a real opto input would show, at a time on
the core's clock; the edge goes to the sink exactly as the RPi.GPIO backend's callbacks would send
it. LED writes are kept so tests can see them.
"""

from __future__ import annotations

import threading

from callrec.line.port import EdgeSink, IsdnInfo, LedState, RawEdge, Signal


class SimulatedLine:
    def __init__(self, line_ids: list[int]) -> None:
        self._line_ids = list(line_ids)
        self._sink: EdgeSink | None = None
        self._lock = threading.Lock()
        self.leds: dict[int, LedState] = dict.fromkeys(line_ids, "off")
        self.led_history: list[tuple[int, LedState]] = []

    def start(self, sink: EdgeSink) -> None:
        """As the port asks: each line's levels first (on-hook, no ring voltage, at time 0)."""
        self._sink = sink
        for line in self._line_ids:
            for signal in ("hook", "ring"):
                sink(RawEdge(line, signal, False, 0.0))

    def drive(self, line: int, signal: Signal, active: bool, t: float) -> None:
        if self._sink is None:
            raise RuntimeError("SimulatedLine.drive() before start()")
        self._sink(RawEdge(line, signal, active, t))

    def inform(self, info: IsdnInfo) -> None:
        """What a simulated D-channel said, at its own time (sim/scenario.py decodes the trace)."""
        if self._sink is None:
            raise RuntimeError("SimulatedLine.inform() before start()")
        self._sink(info)

    def set_led(self, line: int, state: LedState) -> None:
        with self._lock:
            if line in self.leds and self.leds[line] != state:
                self.leds[line] = state
                self.led_history.append((line, state))

    def stop(self) -> None:
        self._sink = None
