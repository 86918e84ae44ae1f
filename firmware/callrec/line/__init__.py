"""Line sources: the port every source of hook and ring signalling provides, its backends, the monitor."""

from callrec.line.gpio_rpi import GpioUnavailable, RpiGpioLine, import_gpio
from callrec.line.gpio_sim import SimulatedLine
from callrec.line.isdn import BriLines, IsdnLine, Lines, hardware_lines, trace_inputs
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
from callrec.line.port import EdgeSink, IsdnInfo, LedState, LineInput, LineSource, RawEdge, Signal

__all__ = [
    "BriLines", "CallBegan", "CallEnded", "IsdnInfo", "IsdnLine", "LineInput", "Lines", "trace_inputs", "EdgeSink",
    "FlashSeen", "GpioUnavailable", "HookChanged", "LedState", "LineMonitor", "LineSignal", "LineSource",
    "MonitorSettings", "NumberDisplaySeen", "RawEdge", "RingEnded", "RingStarted", "RingingStopped", "RpiGpioLine",
    "Signal", "SimulatedLine", "hardware_lines", "import_gpio"
]
