"""`RPi.GPIO` at the hardware seam: the module API backed by tests/fake_rpi_gpio.FakeGpio.

Put `tests/fake_pi` and `tests` on PYTHONPATH and `import RPi.GPIO` gives a chip whose inputs idle
at their pull-ups (on-hook, no ringing): enough for `callrec run` to claim its lines and serve.

`CALLREC_FAKE_GPIO_LOW=17,27` (read at import) holds those BCM pins LOW from the start, whatever
their pull: a handset already off-hook, or a line already ringing, when the service starts.
"""

import os

from fake_rpi_gpio import BCM, BOARD, BOTH, FALLING, HIGH, IN, LOW, OUT, PUD_DOWN, PUD_OFF, PUD_UP, RISING, FakeGpio

_chip = FakeGpio()
_chip.hold(LOW, [int(pin) for pin in os.environ.get("CALLREC_FAKE_GPIO_LOW", "").split(",") if pin.strip()])
setwarnings = _chip.setwarnings
setmode = _chip.setmode
setup = _chip.setup
input = _chip.input  # noqa: A001 - the RPi.GPIO name
output = _chip.output
add_event_detect = _chip.add_event_detect
remove_event_detect = _chip.remove_event_detect
cleanup = _chip.cleanup
PWM = _chip.PWM

__all__ = ["BCM", "BOARD", "BOTH", "FALLING", "HIGH", "IN", "LOW", "OUT", "PUD_DOWN", "PUD_OFF", "PUD_UP", "PWM",
           "RISING", "add_event_detect", "cleanup", "input", "output", "remove_event_detect", "setmode",
           "setup", "setwarnings"]
