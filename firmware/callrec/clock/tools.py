"""Backends that ask the time service's own tool: `timedatectl` (systemd) and `chronyc` (chrony).

They add what the kernel does not know: the measured offset from the reference. Each runs its tool
with a short timeout and parses plain text; a missing tool, a failing one (no systemd as PID 1, no
chronyd running) or output it cannot read is `ClockStatus.unknown()`, logged at debug level, never
an exception: the clock is a reason to annotate records, not to stop recording.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess

from .port import ClockStatus

log = logging.getLogger(__name__)

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_SPAN = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*(ns|us|µs|ms|min|s|h)\b")


def run_tool(args: list[str], timeout_s: float = 2.0) -> str | None:
    """The tool's standard output, or None when it is absent, fails or hangs."""
    if shutil.which(args[0]) is None:
        log.debug("%s not found", args[0])
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("%s failed: %s", args[0], e)
        return None
    if done.returncode != 0:
        log.debug("%s exited %d: %s", " ".join(args), done.returncode, done.stderr.strip()[:200])
        return None
    return done.stdout


def parse_timespan(text: str) -> float | None:
    """systemd's time span ("+1.234ms", "-26us", "+1min 2.5s") in seconds; None if unreadable."""
    text = text.strip()
    parts = _SPAN.findall(text)
    if not parts:
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    return sign * sum(abs(float(v)) * _UNITS[u] for v, u in parts)


class TimedatectlClock:
    """systemd's view: `NTPSynchronized` (the kernel flag again) plus timesyncd's offset when it runs."""

    source = "timedatectl"

    def __init__(self, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s

    def status(self) -> ClockStatus:
        out = run_tool(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], self.timeout_s)
        if out is None or out.strip() not in ("yes", "no"):
            return ClockStatus.unknown()
        offset = max_error = None
        sync = run_tool(["timedatectl", "timesync-status"], self.timeout_s)     # only when timesyncd is the service
        if sync is not None:
            fields = dict(line.strip().split(":", 1) for line in sync.splitlines() if ":" in line)
            measured = parse_timespan(fields.get("Offset", ""))
            # timesyncd prints the NTP offset (reference minus local); the port wants local minus reference.
            offset = None if measured is None else -measured
            distance = fields.get("Root distance", "").split("(")[0]
            max_error = parse_timespan(distance)
        return ClockStatus(out.strip() == "yes", self.source, offset, max_error)


class ChronyClock:
    """chrony's tracking report (`chronyc -c tracking`, CSV)."""

    source = "chrony"

    def __init__(self, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s

    def status(self) -> ClockStatus:
        out = run_tool(["chronyc", "-c", "tracking"], self.timeout_s)
        return ClockStatus.unknown() if out is None else parse_chrony_tracking(out, self.source)


def parse_chrony_tracking(text: str, source: str = "chrony") -> ClockStatus:
    """Fields: ref id, name, stratum, ref time, system time, last offset, RMS offset, frequency,
    residual freq, skew, root delay, root dispersion, update interval, leap status.

    chronyc prints "system time" positive when the clock is *slow* of NTP time, so the port's offset
    (clock minus reference) is its negative. The error bound is chrony's own:
    |offset| + root dispersion + root delay / 2.
    """
    fields = text.strip().splitlines()[0].split(",") if text.strip() else []
    if len(fields) < 14:
        log.debug("chronyc tracking: unexpected output %r", text[:200])
        return ClockStatus.unknown()
    try:
        stratum = int(fields[2])
        offset = -float(fields[4])
        root_delay, root_dispersion = float(fields[10]), float(fields[11])
    except ValueError:
        log.debug("chronyc tracking: unreadable fields %r", fields)
        return ClockStatus.unknown()
    leap = fields[13].strip()
    synced = leap not in ("Not synchronised", "Unsynchronised", "") and 0 < stratum < 16
    max_error = abs(offset) + root_dispersion + root_delay / 2
    return ClockStatus(synced, source, offset, max_error)
