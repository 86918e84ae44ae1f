"""Line sources: the port every source of hook and ring signalling provides, its backends, the monitor."""

from callrec.line.gpio_rpi import GpioUnavailable, RpiGpioLine, import_gpio
from callrec.line.gpio_sim import SimulatedLine
from callrec.line.monitor import (
    CallBegan,
    CallEnded,
    FlashSeen,
    HookChanged,
    LineMonitor,
    LineSignal,
    MonitorSettings,
    NumberDisplaySeen,
    RingEnded,
    RingingStopped,
    RingStarted,
)
from callrec.line.port import EdgeSink, LedState, LineSource, RawEdge, Signal

__all__ = ["CallBegan", "CallEnded", "EdgeSink", "FlashSeen", "GpioUnavailable", "HookChanged", "LedState",
           "LineMonitor", "LineSignal", "LineSource", "MonitorSettings", "NumberDisplaySeen", "RawEdge", "RingEnded",
           "RingStarted", "RingingStopped", "RpiGpioLine", "Signal", "SimulatedLine", "import_gpio"]
