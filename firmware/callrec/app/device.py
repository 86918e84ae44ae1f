"""The running service as the control API's `Device`: what every front end may ask of it.

Line states and alarms come from the boards (built from the event stream), stats from the probe,
commands go to the core's queue. Front ends get this object and nothing else of the service.
"""

from __future__ import annotations

from typing import Any

from callrec.app.stats import StatsProbe
from callrec.core import Core
from callrec.events import AlarmBoard, LineBoard
from callrec.evidence import AuditLog

QUERIES = frozenset({"ping", "levels"})   # commands that change nothing: not audited


class ServiceDevice:
    def __init__(self, lines: LineBoard, alarms: AlarmBoard, stats: StatsProbe, core: Core,
                 audit: AuditLog | None = None, purpose: str | None = None) -> None:
        self._audit = audit
        self.purpose = purpose
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

    def _audited(self, name: str, args: dict[str, Any], actor: str, outcome: str) -> None:
        if self._audit is not None and name not in QUERIES:
            self._audit.try_record("command", actor, {"name": name, "args": args, "outcome": outcome[:200]})
