"""The kernel's view of the clock through adjtimex(2), read-only (modes = 0).

chrony, systemd-timesyncd and ntpd all tell the kernel when the clock is synchronised (they clear
STA_UNSYNC and keep `maxerror` small), so this one backend covers them all without a tool to run and
without privileges. The structure is declared with C `long`s, which is the layout of the plain
`adjtimex` symbol on both 64-bit and 32-bit (armv7) glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

from .port import ClockStatus

log = logging.getLogger(__name__)

TIME_ERROR = 5
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
_L = ctypes.c_long


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", _L), ("tv_usec", _L)]


class Timex(ctypes.Structure):
    """`struct timex` of <sys/timex.h>, with the kernel's trailing padding."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", _L), ("freq", _L), ("maxerror", _L), ("esterror", _L),
        ("status", ctypes.c_int), ("constant", _L), ("precision", _L), ("tolerance", _L),
        ("time", _Timeval), ("tick", _L), ("ppsfreq", _L), ("jitter", _L), ("shift", ctypes.c_int),
        ("stabil", _L), ("jitcnt", _L), ("calcnt", _L), ("errcnt", _L), ("stbcnt", _L),
        ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11),
    ]


class AdjtimexClock:
    """The kernel's synchronisation state. `offset_s` stays None: the kernel's `offset` is what its own
    PLL has still to correct (zero under chrony), not the clock's offset from true time."""

    source = "adjtimex"

    def __init__(self, libc: Any = None) -> None:
        self._libc = libc

    def _call(self) -> tuple[int, Timex]:
        if self._libc is None:
            self._libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        tx = Timex()
        tx.modes = 0
        rc = int(self._libc.adjtimex(ctypes.byref(tx)))
        return rc, tx

    def status(self) -> ClockStatus:
        try:
            rc, tx = self._call()
        except (OSError, AttributeError) as e:      # no libc or no adjtimex (not Linux)
            log.debug("adjtimex unavailable: %s", e)
            return ClockStatus.unknown()
        if rc < 0:
            log.debug("adjtimex failed: errno %d", ctypes.get_errno())
            return ClockStatus.unknown()
        synced = rc != TIME_ERROR and not tx.status & STA_UNSYNC
        return ClockStatus(synced, self.source, None, tx.maxerror / 1e6)
