"""A faithful stand-in for the RPi.GPIO module API, for the thin backend's tests.

It keeps RPi.GPIO's contract: BCM mode must be set before setup, add_event_detect needs an input
set up first and refuses a second detect on the same pin, callbacks run on another thread with the
pin number, input() reads the level, cleanup() releases. Levels are driven by the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

BCM, BOARD = 11, 10
IN, OUT = 1, 0
HIGH, LOW = 1, 0
PUD_UP, PUD_DOWN, PUD_OFF = 22, 21, 20
RISING, FALLING, BOTH = 31, 32, 33


class FakeGpio:
    def __init__(self) -> None:
        self.mode: int | None = None
        self.directions: dict[int, int] = {}
        self.levels: dict[int, int] = {}
        self.callbacks: dict[int, Callable[[int], None]] = {}
        self.outputs: list[tuple[int, int]] = []
        self.cleaned: list[int] = []
        self.pwms: list[FakePwm] = []
        for name, value in globals().items():
            if name.isupper():
                setattr(self, name, value)

    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: int) -> None:
        self.mode = mode

    def setup(self, pin: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = LOW) -> None:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        self.directions[pin] = direction
        self.levels.setdefault(pin, HIGH if pull_up_down == PUD_UP else LOW)
        if direction == OUT:
            self.levels[pin] = initial

    def input(self, pin: int) -> int:
        if pin not in self.directions:
            raise RuntimeError("You must setup() the GPIO channel first")
        return self.levels[pin]

    def output(self, pin: int, value: int) -> None:
        if self.directions.get(pin) != OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        self.levels[pin] = value
        self.outputs.append((pin, value))

    def add_event_detect(self, pin: int, edge: int, callback: Callable[[int], None], bouncetime: int = 0) -> None:
        if self.directions.get(pin) != IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if pin in self.callbacks:
            raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
        self.callbacks[pin] = callback

    def remove_event_detect(self, pin: int) -> None:
        self.callbacks.pop(pin, None)

    def cleanup(self, pins: list[int] | None = None) -> None:
        """As the real libraries do: a cleaned channel is released (an output() on it then raises)."""
        released = list(pins or self.directions)
        self.cleaned += released
        for pin in released:
            self.directions.pop(pin, None)

    def PWM(self, pin: int, frequency: float) -> FakePwm:  # noqa: N802 - the RPi.GPIO name
        if self.directions.get(pin) != OUT:
            raise RuntimeError("You must setup() the GPIO channel as an output first")
        if frequency <= 0:
            raise ValueError("frequency must be greater than 0.0")
        pwm = FakePwm(self, pin, frequency)
        self.pwms.append(pwm)
        return pwm

    def hold(self, level: int, pins: list[int]) -> None:
        """Pins held at `level` by the outside world before anyone claims them: `setup` keeps the
        level instead of the pull's (a handset off-hook when the service starts)."""
        for pin in pins:
            self.levels[pin] = level

    def drive(self, pin: int, level: int) -> None:
        """The test's hand on the wire: change a level and fire the callback on another thread."""
        self.levels[pin] = level
        callback = self.callbacks.get(pin)
        if callback is not None:
            thread = threading.Thread(target=callback, args=(pin,))
            thread.start()
            thread.join()


class FakePwm:
    """RPi.GPIO's software PWM object: start(duty), ChangeDutyCycle, stop; runs until stopped."""

    def __init__(self, chip: FakeGpio, pin: int, frequency: float) -> None:
        self.chip = chip
        self.pin = pin
        self.frequency = frequency
        self.duty: float | None = None
        self.running = False

    def start(self, duty: float) -> None:
        if not 0.0 <= duty <= 100.0:
            raise ValueError("dutycycle must have a value from 0.0 to 100.0")
        self.duty = duty
        self.running = True

    def ChangeDutyCycle(self, duty: float) -> None:  # noqa: N802 - the RPi.GPIO name
        self.duty = duty

    def stop(self) -> None:
        self.running = False
