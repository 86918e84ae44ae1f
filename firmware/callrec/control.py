"""The local control API: one surface that MQTT, the serial console and the CLI all drive.

The running service implements `Device`. Front ends (mqtt/, console/) only translate their wire
format into these calls, so a command behaves the same from every place, and a new front end
attaches without touching the core.
"""

from __future__ import annotations

from typing import Any, Protocol


class CommandError(Exception):
    """A command was refused: wrong arguments, wrong line state. The message is shown to the caller."""


class Device(Protocol):
    """What a front end may ask of the running recorder."""

    def line_states(self) -> list[dict[str, Any]]:
        """One dict per configured line: `line`, `state` (idle|ringing|offhook|recording|fault),
        `call_id`, `since` (UTC ISO 8601), `direction`, `caller_number`."""
        ...

    def active_alarms(self) -> list[dict[str, Any]]:
        """Active alarms: `id`, `line`, `kind`, `message`, `since`."""
        ...

    def stats(self) -> dict[str, Any]:
        """uptime_s, disk_free_bytes, calls_today, recordings_stored, capture_overruns, cpu_temp_c."""
        ...

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a named command (`ping`, `announcement.test`, `recording.pause`, `recording.resume`,
        `call.mark`, `levels`). Returns extra result fields; raises CommandError when refused.

        `levels` returns `{"lines": [{"line", "rms_dbfs", "peak_dbfs", "window_s"}, ...]}`: what each
        line carried over the last 0.2 s (for the console's live level display)."""
        ...
