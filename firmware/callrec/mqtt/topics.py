"""Every topic callrec uses and the fields of every payload it builds: the code side of docs/mqtt.md.

One place names them so the contract test can hold the code and the document to the same set, and so
a rename cannot leave a stale topic behind in one corner of the publisher.
"""

from __future__ import annotations

from dataclasses import dataclass

from callrec.events import LINE_STATE_FIELDS as BOARD_LINE_STATE_FIELDS

# Fields of `B/line/<n>/state`: the `line.state` event's (events/boards.py), one list for both.
LINE_STATE_FIELDS = BOARD_LINE_STATE_FIELDS
# Fields of one alarm in `B/alarms`.
ALARM_FIELDS = ("id", "line", "kind", "message", "since")
# Fields of `B/stats`: Device.stats() plus what only the publisher knows (the backlog).
STATS_FIELDS = (
    "uptime_s",
    "disk_free_bytes",
    "calls_today",
    "recordings_stored",
    "capture_overruns",
    "cpu_temp_c",
    "backlog",
    "purpose",
    "encrypted",
    "archive_backlog",
)
# Fields of `B/evidence/head`: the ledgers' heads (evidence/heads.py) and when they were witnessed.
HEAD_FIELDS = ("chain", "audit", "at")
# Fields every `B/cmd/result` carries; a command may add its own after these.
RESULT_FIELDS = ("id", "command", "ok", "error")

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """The topic tree of one appliance: `B = <base>/<device_id>`."""

    base: str
    device_id: str
    discovery_prefix: str = "homeassistant"

    @property
    def root(self) -> str:
        return f"{self.base}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    def line_state(self, line: int) -> str:
        return f"{self.root}/line/{line}/state"

    @property
    def event(self) -> str:
        return f"{self.root}/event"

    @property
    def alarms(self) -> str:
        return f"{self.root}/alarms"

    @property
    def stats(self) -> str:
        return f"{self.root}/stats"

    @property
    def evidence_head(self) -> str:
        return f"{self.root}/evidence/head"

    def cmd(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.root}/cmd/+"

    @property
    def cmd_result(self) -> str:
        return f"{self.root}/cmd/result"

    @property
    def discovery(self) -> str:
        return f"{self.discovery_prefix}/device/{self.device_id}/config"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def command_name(self, topic: str) -> str | None:
        """The command named by an incoming topic, or None if the topic is not a command."""
        prefix = f"{self.root}/cmd/"
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix) :]
        return None if name == "result" or not name else name
