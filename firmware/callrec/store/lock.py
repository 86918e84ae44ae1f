"""One process at a time owns a data directory: the service, a simulation, or `callrec recover`.

Recovery converts every part file it finds; run beside a live service it would take over the
recordings of calls in progress. An advisory `flock` on `DATA/.lock` (released by the kernel when
the process dies, even by kill -9) makes the second one stop with a clear message instead.
Readers (`calls list`, the console) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from callrec.errors import CallrecError


class DataDirBusy(CallrecError, RuntimeError):
    """Another process owns the data directory; the message says which and what to do."""


class DataLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirBusy(
                f"{self.path.parent} is in use by another callrec process (pid {holder}); stop it first "
                "(systemctl stop callrec) or pass another --data"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass   # the pid is only a hint for the message above; a full disk must not stop the service
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor drops the lock
            self._fd = None
