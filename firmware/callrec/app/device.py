"""The running service as the control API's `Device`: what every front end may ask of it.

Line states and alarms come from the boards (built from the event stream), stats from the probe,
commands go to the core's queue. Front ends get this object and nothing else of the service.
"""

from __future__ import annotations

from typing import Any

from callrec.app.stats import StatsProbe
from callrec.core import Core
from callrec.events import AlarmBoard, LineBoard


class ServiceDevice:
    def __init__(self, lines: LineBoard, alarms: AlarmBoard, stats: StatsProbe, core: Core) -> None:
        self._lines = lines
        self._alarms = alarms
        self._stats = stats
        self._core = core

    def line_states(self) -> list[dict[str, Any]]:
        return self._lines.states()

    def active_alarms(self) -> list[dict[str, Any]]:
        return self._alarms.alarms()

    def stats(self) -> dict[str, Any]:
        return self._stats.read()

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return self._core.command(name, args)
