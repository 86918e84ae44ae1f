"""The running service as the control API's `Device`: what every front end may ask of it.

Line states and alarms come from the boards (built from the event stream), stats from the probe,
commands go to the core's queue. Front ends get this object and nothing else of the service. The
console's diagnostics (`gpio`, `net`, `selftest`) are answered here too: the service owns the pins,
the card, the network and the data directory; the console's own unit has none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from callrec.app.netinfo import net_report
from callrec.app.selftest import SelfTest
from callrec.app.stats import StatsProbe
from callrec.config import Config
from callrec.control import CommandError
from callrec.core import Core
from callrec.events import AlarmBoard, LineBoard
from callrec.evidence import AuditLog

log = logging.getLogger(__name__)

QUERIES = frozenset({"ping", "levels", "gpio"})   # commands that change nothing: not audited
DIAGNOSTICS = ("gpio", "net", "selftest")
SELFTEST_TIMEOUT_S = 60.0


class Link(Protocol):
    """What the device reads of the MQTT publisher (attached after the service starts)."""

    @property
    def connected(self) -> bool: ...

    def backlog_size(self) -> int: ...


class ServiceDevice:
    def __init__(self, lines: LineBoard, alarms: AlarmBoard, stats: StatsProbe, core: Core,
                 audit: AuditLog | None = None, purpose: str | None = None, *, config: Config | None = None,
                 clock: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self._audit = audit
        self.purpose = purpose
        self._lines = lines
        self._alarms = alarms
        self._stats = stats
        self._core = core
        self._config = config or core.config
        self._clock = clock or (lambda: None)
        self.mqtt: Link | None = None

    def line_states(self) -> list[dict[str, Any]]:
        return self._lines.states()

    def active_alarms(self) -> list[dict[str, Any]]:
        return self._alarms.alarms()

    def stats(self) -> dict[str, Any]:
        """The probe's figures, plus the MQTT link, the clock and the system's uptime."""
        stats = self._stats.read()
        if self.mqtt is not None and self._config.mqtt.enabled:
            stats["mqtt"] = {"connected": self.mqtt.connected, "backlog": self.mqtt.backlog_size()}
        stats["clock"] = self._clock()
        stats["system_uptime_s"] = system_uptime()
        return stats

    def command(self, name: str, args: dict[str, Any], *, actor: str = "unknown") -> dict[str, Any]:
        """Run it on the core; a command that changes state is audited with who sent it, whatever
        became of it (evidence/audit.py)."""
        try:
            result = self._core.command(name, args)
        except Exception as error:
            self._audited(name, args, actor, f"refused: {error}")
            raise
        self._audited(name, args, actor, "done")
        return result

    def diagnostic(self, name: str) -> dict[str, Any]:
        """`gpio` (raw and debounced inputs), `net` (addresses, route, broker, archive) or `selftest`."""
        if name == "gpio":
            return self._core.command("gpio", {})
        if name == "net":
            return net_report(self._config, self._mqtt_connected())
        if name == "selftest":
            return SelfTest(self._config, lambda n, a: self._core.command(n, a), self.active_alarms,
                            self.line_states, self._mqtt_connected, self._clock).run()
        raise CommandError(f"unknown diagnostic {name!r}; known: {', '.join(DIAGNOSTICS)}")

    def _mqtt_connected(self) -> bool | None:
        return self.mqtt.connected if self.mqtt is not None else None

    def _audited(self, name: str, args: dict[str, Any], actor: str, outcome: str) -> None:
        if self._audit is not None and name not in QUERIES:
            self._audit.try_record("command", actor, {"name": name, "args": args, "outcome": outcome[:200]})


def system_uptime() -> float | None:
    try:
        with open("/proc/uptime") as uptime:
            return round(float(uptime.read().split()[0]), 1)
    except (OSError, ValueError, IndexError):
        return None
