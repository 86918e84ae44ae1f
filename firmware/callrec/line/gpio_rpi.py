"""The RPi.GPIO backend of the line port: edge callbacks and nothing else.

Kept thin on purpose: RPi.GPIO (or rpi-lgpio on a Pi 5, same module) calls us on its own thread for
every edge; we read the level, translate polarity and pass a RawEdge on. No bouncetime is given to
RPi.GPIO: debounce is the core's, so it is the same code on the Pi and in simulation and is tested.
The module is imported lazily so the rest of the firmware runs where RPi.GPIO cannot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

from callrec.config import LineConfig
from callrec.errors import CallrecError
from callrec.line.port import EdgeSink, LedState, RawEdge, Signal

log = logging.getLogger(__name__)

BLINK_HZ = 2.0   # a line that cannot record blinks its LED


class GpioUnavailable(CallrecError, RuntimeError):
    """RPi.GPIO cannot be used here (not a Pi, no permission): a start-up error, not a crash loop."""


def import_gpio() -> ModuleType:
    try:
        import RPi.GPIO as gpio
    except (ImportError, RuntimeError) as error:
        raise GpioUnavailable(
            f"RPi.GPIO is not usable on this machine ({error}); on a Pi install python3-rpi-lgpio "
            "or RPi.GPIO, elsewhere use `callrec simulate`"
        ) from error
    return cast(ModuleType, gpio)


class RpiGpioLine:
    def __init__(
        self,
        lines: tuple[LineConfig, ...],
        gpio: ModuleType | Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lines = lines
        self._gpio = gpio
        self._clock = clock
        self._pins: dict[int, tuple[int, Signal, bool]] = {}
        for line in lines:   # ISDN lines have no sense pins (their D-channel is line/isdn.py), maybe an LED
            if line.hook_gpio is not None:
                self._pins[line.hook_gpio] = (line.id, "hook", line.hook_active_low)
            if line.ring_gpio is not None:
                self._pins[line.ring_gpio] = (line.id, "ring", line.ring_active_low)
        self._leds = {line.id: line.led_gpio for line in lines if line.led_gpio is not None}
        self._blinkers: dict[int, Any] = {}   # line -> RPi.GPIO software PWM blinking its LED
        self._sink: EdgeSink | None = None
        # The core's thread drives the LEDs while the main thread may be releasing the pins (a stop
        # ends the open calls, which turns their LEDs off): one lock, and nothing after the release.
        self._led_lock = threading.Lock()
        self._released = False

    def start(self, sink: EdgeSink) -> None:
        gpio = self._gpio = self._gpio or import_gpio()
        self._sink = sink
        self._released = False
        gpio.setwarnings(False)
        gpio.setmode(gpio.BCM)
        for pin in self._pins:
            gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_UP)
        for pin in self._leds.values():
            gpio.setup(pin, gpio.OUT, initial=gpio.LOW)
        for pin in self._pins:   # armed before the first read: an edge in between is not lost
            gpio.add_event_detect(pin, gpio.BOTH, callback=self._on_edge)
        now = self._clock()
        for pin in self._pins:
            self._report(pin, now)
        log.info("GPIO claimed: %s", sorted(self._pins))

    def _on_edge(self, pin: int) -> None:
        self._report(pin, self._clock())

    def _report(self, pin: int, t: float) -> None:
        line, signal, active_low = self._pins[pin]
        level = bool(self._gpio.input(pin))  # type: ignore[union-attr]
        if self._sink is not None:
            self._sink(RawEdge(line, signal, level != active_low, t))

    def set_led(self, line: int, state: LedState) -> None:
        """On, off, or blinking at 2 Hz by RPi.GPIO's own software PWM (no thread of ours).

        An LED is a courtesy: after the pins are released, or when the library refuses (rpi-lgpio
        raises RuntimeError for a channel it no longer holds), the change is dropped and logged,
        never raised into the core that asked for it."""
        pin = self._leds.get(line)
        with self._led_lock:
            if pin is None or self._gpio is None or self._released:
                return
            try:
                self._drive_led(line, pin, state)
            except (RuntimeError, ValueError, OSError) as error:
                log.warning("LED of line %d (GPIO%d) not set %s: %s", line, pin, state, error)

    def _drive_led(self, line: int, pin: int, state: LedState) -> None:
        gpio = self._gpio
        assert gpio is not None
        blinker = self._blinkers.pop(line, None)
        if blinker is not None:
            blinker.stop()
        if state == "blink":
            blinker = gpio.PWM(pin, BLINK_HZ)
            blinker.start(50)
            self._blinkers[line] = blinker
        else:
            gpio.output(pin, gpio.HIGH if state == "on" else gpio.LOW)

    def stop(self) -> None:
        self._sink = None
        with self._led_lock:
            self._released = True
            for blinker in self._blinkers.values():
                blinker.stop()
            self._blinkers.clear()
        if self._gpio is not None:
            for pin in self._pins:
                self._gpio.remove_event_detect(pin)
            self._gpio.cleanup([*self._pins, *self._leds.values()])
