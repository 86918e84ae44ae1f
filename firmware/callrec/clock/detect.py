"""Pick the best clock backend this box has."""

from __future__ import annotations

import logging

from .adjtimex import AdjtimexClock
from .port import ClockSource
from .tools import ChronyClock, TimedatectlClock

log = logging.getLogger(__name__)


def detect_clock() -> ClockSource:
    """chrony when chronyd answers (it knows the offset), else timedatectl when systemd answers
    (timesyncd's offset), else the kernel's flag through adjtimex, which needs nothing else. When even
    adjtimex cannot be read the adjtimex backend is returned anyway: it reports "unknown"."""
    for backend in (ChronyClock(), TimedatectlClock(), AdjtimexClock()):
        if backend.status().known:
            log.info("clock: using %s", backend.source)
            return backend
        log.debug("clock: %s not available", backend.source)
    log.warning("clock: no time service could be read; wall times will stay untrusted")
    return AdjtimexClock()
