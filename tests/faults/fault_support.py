"""Fixtures of the fault-injection suite: real small disks, paced simulations, read-only mounts.

Faults are real wherever the machine allows: a full disk is a tmpfs of a few MB, a read-only data
directory is a read-only bind mount, a killed service is a SIGKILL, a damaged index is bytes
written over the file. Long cases run only with CALLREC_SOAK=1.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SOAK = os.environ.get("CALLREC_SOAK") == "1"
soak = pytest.mark.skipif(not SOAK, reason="long: set CALLREC_SOAK=1")


def needs_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root")


@contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `mount`: a disk that really fills."""
    needs_root("mounting a tmpfs")
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        _unmount(mount)


@contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """`directory` as a read-only disk (a read-only bind mount over itself)."""
    needs_root("a read-only bind mount")
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield directory
    finally:
        _unmount(directory)


def _unmount(mount: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)   # a child still closing its files
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Callable[[str], Any]:
    """`small_disk("4m")` mounts a tmpfs of that size for this test and returns its path."""
    mounts: list[Any] = []

    def make(size: str) -> Path:
        context = mounted_tmpfs(tmp_path / f"disk{len(mounts)}", size)
        mounts.append(context)
        return context.__enter__()

    yield make
    for context in reversed(mounts):
        context.__exit__(None, None, None)


class Run:
    """A `callrec simulate` child whose event stream is read as it comes.

    Both pipes are drained by threads from the start: a child that logs more than a pipe holds
    must not block in a write (it once froze a run for good), and `until` must fail at its
    timeout even when no event comes at all."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.arrived: list[float] = []
        self.stderr = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._pump_out, daemon=True),
                         threading.Thread(target=self._pump_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw)
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._err.append(raw)

    def _take(self, raw: str) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(raw)
        self.events.append(event)
        self.arrived.append(time.time())
        return event

    def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """Read events until one matches (returned); fails on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if raw is None:
                self._lines.put(None)   # the end stays the end for the next reader
                break
            if raw.strip() and predicate(event := self._take(raw)):
                return event
        raise AssertionError(f"no matching event within {timeout} s; stderr: {self.stderr_tail()}")

    def seen_or_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """A matching event already read (events from different threads may come in either order),
        else the next one to arrive."""
        for event in self.events:
            if predicate(event):
                return event
        return self.until(predicate, timeout)

    def finish(self, timeout: float = 120) -> int:
        self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        while (raw := self._lines.get_nowait() if not self._lines.empty() else None) is not None:
            if raw.strip():
                self._take(raw)
        self.stderr = "".join(self._err)
        return self.proc.returncode

    def stderr_tail(self) -> str:
        return (self.stderr or "".join(self._err))[-2000:]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


def start_simulate(scenario: Path, data: Path, *extra: str, env: dict[str, str] | None = None) -> Run:
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(scenario), "--data", str(data), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    return Run(proc)
