"""The RPi.GPIO backend is thin: it claims the pins, translates polarity and passes edges on."""

from __future__ import annotations

import pytest
from callrec.config import parse
from callrec.line import GpioUnavailable, RawEdge, RpiGpioLine, import_gpio
from fake_rpi_gpio import HIGH, LOW, FakeGpio


def make(lines=None):
    config = parse({"lines": lines} if lines else {})
    gpio = FakeGpio()
    clock = iter(range(100, 10000))
    source = RpiGpioLine(config.lines, gpio=gpio, clock=lambda: float(next(clock)))
    edges: list[RawEdge] = []
    source.start(edges.append)
    return source, gpio, edges


def test_start_claims_inputs_with_pull_ups_and_reports_the_current_levels():
    source, gpio, edges = make()
    assert gpio.mode == gpio.BCM
    assert set(gpio.callbacks) == {17, 27, 23, 24}
    assert {(e.line, e.signal, e.active) for e in edges} == {
        (1, "hook", False), (1, "ring", False), (2, "hook", False), (2, "ring", False)}


def test_active_low_hook_input_going_low_is_offhook():
    source, gpio, edges = make()
    edges.clear()
    gpio.drive(17, LOW)
    gpio.drive(17, HIGH)
    assert [(e.line, e.signal, e.active) for e in edges] == [(1, "hook", True), (1, "hook", False)]
    assert edges[0].t < edges[1].t


def test_active_high_ring_input_follows_the_configured_polarity():
    source, gpio, edges = make([{"id": 1, "hook_gpio": 5, "ring_gpio": 6, "ring_active_low": False}])
    edges.clear()
    gpio.drive(6, HIGH)
    assert [(e.signal, e.active) for e in edges] == [("ring", True)]


def test_recording_led_is_driven_and_pins_are_released_at_stop():
    source, gpio, _ = make()
    source.set_led(1, "on")
    source.set_led(1, "off")
    assert gpio.outputs == [(22, HIGH), (22, LOW)]
    source.stop()
    assert set(gpio.cleaned) >= {17, 27, 22, 23, 24, 25}
    assert gpio.callbacks == {}


def test_an_led_change_after_stop_is_ignored_not_a_crash_of_the_core():
    """Seen on the booted appliance (rpi-lgpio): at `systemctl restart` the core ends the open call
    and turns the LED off after the pins were released; the library raised and the core thread died."""
    source, gpio, _ = make()
    source.set_led(1, "on")
    source.stop()
    source.set_led(1, "off")
    source.set_led(1, "blink")
    assert gpio.outputs == [(22, HIGH)]


def test_an_led_the_library_refuses_is_logged_not_raised(caplog):
    source, gpio, _ = make()
    gpio.directions.pop(22)   # the channel lost behind our back (another process, a library reset)
    source.set_led(1, "on")
    assert "LED" in caplog.text and "GPIO22" in caplog.text


def test_a_line_that_cannot_record_blinks_its_led_until_it_can_again():
    source, gpio, _ = make()
    source.set_led(1, "blink")
    (blinker,) = gpio.pwms
    assert (blinker.pin, blinker.frequency, blinker.duty, blinker.running) == (22, 2.0, 50, True)
    source.set_led(1, "on")
    assert not blinker.running and gpio.outputs[-1] == (22, HIGH)
    source.set_led(2, "blink")
    source.stop()
    assert not any(pwm.running for pwm in gpio.pwms), "no LED left blinking after stop"


def test_without_a_pi_the_backend_says_so_clearly():
    with pytest.raises(GpioUnavailable, match="RPi.GPIO is not usable on this machine"):
        import_gpio()
