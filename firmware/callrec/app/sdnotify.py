"""sd_notify(3) with the standard library: readiness, status and watchdog for systemd.

Why not the `systemd` / `sdnotify` packages: the protocol is one datagram of `KEY=value` lines to
the socket named in `$NOTIFY_SOCKET`, and a dependency (or libsystemd through ctypes) would be more
code to trust than these lines. Every function is a no-op returning False when the service is not
run by systemd (development, tests, the simulator), so callers never need to check first.

The service calls `claim_environment()` once at start, before its first thread or child process:
like sd_notify(3)'s `unset_environment`, it takes `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and
`$WATCHDOG_PID` out of the environment, so `chronyc`, `systemctl` or anything a library forks never
inherits them (PID 1 refuses, and logs, a notification from a process that is not the main one; a
child pinging the watchdog would hide the parent's hang). The values stay here, for this process's
own notifications.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

# What claim_environment() took out of the environment, and the process that took it: a child
# made by fork() (no exec) inherits this module's state too, and must not notify on its parent's behalf.
_claimed: dict[str, str] = {}
_claimed_by: int | None = None


def claim_environment() -> None:
    """Take systemd's notification variables out of `os.environ` into this module, for this process
    alone. Call once at start, before any thread or child exists; harmless without systemd and
    when called again."""
    global _claimed_by
    taken = {name: os.environ.pop(name) for name in SYSTEMD_VARIABLES if name in os.environ}
    if _claimed_by != os.getpid():
        _claimed.clear()
        _claimed_by = os.getpid()
    _claimed.update(taken)


def _setting(name: str) -> str | None:
    """One of systemd's variables: from the environment when it is there (never claimed), else what
    this very process claimed."""
    value = os.environ.get(name)
    if value is None and _claimed_by == os.getpid():
        value = _claimed.get(name)
    return value


def _address(raw: str) -> str | bytes:
    """Socket address from `$NOTIFY_SOCKET`: '@name' is Linux's abstract namespace (leading NUL)."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def notify(**fields: object) -> bool:
    """Send `KEY=value` fields (`notify(READY=1, STATUS="...")`) to systemd.

    Returns True when the datagram was sent. Without `$NOTIFY_SOCKET`, or when sending fails,
    returns False: a lost notification must never take the recorder down, systemd's own timeouts
    cover a service that really stops answering.
    """
    raw = _setting("NOTIFY_SOCKET")
    if not raw or not fields:
        return False
    message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(raw))
            sock.sendall(message)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", raw, exc)
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """Tell systemd start-up is complete (Type=notify): units ordered after us may start now."""
    if status_text is None:
        return notify(READY=1)
    return notify(READY=1, STATUS=status_text)


def status(text: str) -> bool:
    """One line shown by `systemctl status callrec` (no newlines: they would split the field)."""
    return notify(STATUS=text.replace("\n", " "))


def watchdog() -> bool:
    """Keep-alive for `WatchdogSec=`: systemd kills and restarts the service if these stop."""
    return notify(WATCHDOG=1)


def stopping(status_text: str | None = None) -> bool:
    """Tell systemd a clean shutdown began, so a slow flush of recordings is not seen as a hang."""
    if status_text is None:
        return notify(STOPPING=1)
    return notify(STOPPING=1, STATUS=status_text)


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds, or None when no watchdog is armed for this process.

    Follows sd_watchdog_enabled(3): `$WATCHDOG_USEC` is the timeout; `$WATCHDOG_PID`, when set,
    must be our PID (the variables leak to children otherwise, and a child pinging for its parent
    would hide the parent's hang).
    """
    usec = _setting("WATCHDOG_USEC")
    if not usec:
        return None
    pid = _setting("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring unparsable WATCHDOG_USEC=%r", usec)
        return None
    if value <= 0:
        return None
    return value / 1_000_000


class Watchdog:
    """Turns the core loop's health into watchdog pings, sent at half the timeout.

    The core calls `beat(healthy)` on every tick with its own verdict (audio periods still
    arriving, the loop itself not stalled). A ping goes out only for a healthy beat, so a stuck
    capture thread stops the pings and systemd restarts the service after `WatchdogSec=`; a stuck
    core loop stops calling `beat` at all, with the same result. Pings are rate-limited so a fast
    loop does not flood PID 1.
    """

    def __init__(
        self,
        interval_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        send: Callable[[], bool] = watchdog,
    ) -> None:
        self.interval_s = watchdog_interval() if interval_s is None else interval_s
        self._clock = clock
        self._send = send
        self._last_ping: float | None = None
        self._was_healthy = True

    @property
    def enabled(self) -> bool:
        """False when systemd armed no watchdog: `beat` then does nothing."""
        return bool(self.interval_s)

    def beat(self, healthy: bool) -> bool:
        """Record one loop tick; return True if a WATCHDOG=1 ping was sent."""
        if not self.enabled:
            return False
        if not healthy:
            if self._was_healthy:
                log.warning("unhealthy: withholding watchdog pings (systemd restarts us if this lasts)")
            self._was_healthy = False
            return False
        if not self._was_healthy:
            log.info("healthy again: resuming watchdog pings")
            self._was_healthy = True
        now = self._clock()
        assert self.interval_s is not None
        if self._last_ping is not None and now - self._last_ping < self.interval_s / 2:
            return False
        sent = self._send()
        if sent:
            self._last_ping = now
        return sent
