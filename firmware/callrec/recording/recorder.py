"""The recorder: the writer thread (and its finisher) that act on the core's recording decisions.

The core never touches the disk. It sends `Begin`, `Audio`, `Gap`, `Note`, `Finish` and `Mark`;
this part writes them and tells the core what became of them (`RecordingOpened`,
`RecordingFailed`, `StorageChanged`), so the core announces only calls that are really being
recorded and shows a line that cannot record as `fault`.

Two threads, so that a long finalization never delays the audio of the other lines:
- the *writer* appends every call's audio to its part file (unbuffered: a killed process loses
  nothing it handed over) and syncs each part at least every `sync_interval_s`;
- the *finisher* (finisher.py) turns ended calls into final recordings (encode, hash, sidecar),
  keeps the call index (it is the only thread that writes it) and says so in `recording.saved`
  and `call.ended`.

Storage trouble never ends either thread. A write the disk refuses is a gap in that call's record
(the file keeps the line's timeline: finalizing puts silence there) and a `storage` alarm; the
recorder keeps trying, and the alarm clears once writing works again. A call whose finalization
failed keeps its part and is retried while the service runs (and by `recover` at the next start).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from callrec.events import Event, EventBus
from callrec.evidence import Chain
from callrec.privacy import Keeper, Recipients
from callrec.recording.diskerrors import describe_error
from callrec.recording.files import PartWriter, recordings_root
from callrec.recording.finisher import EndedCall, Finisher, RecorderStats
from callrec.recording.messages import (
    Audio,
    Begin,
    ClockCorrected,
    Finish,
    Gap,
    Mark,
    Note,
    RecordingFailed,
    RecordingOpened,
    StorageChanged,
)
from callrec.store import CallIndex

log = logging.getLogger(__name__)

PROBE_EVERY_S = 5.0        # while storage fails and no call writes, test it this often
REOPEN_EVERY_S = 1.0       # a call going unrecorded tries to open its file this often: each second is lost audio
PROBE_BYTES = 64 * 1024


_STOP = object()


class Recorder:
    def __init__(
        self,
        data_dir: Path,
        fmt: str,
        rate: int,
        index: CallIndex,
        bus: EventBus,
        sync_interval_s: float = 0.5,
        queue_size: int = 0,
        batch_s: float = 0.2,
        report: Callable[[object], None] | None = None,
        *,
        chain: Chain | None = None,
        recipients: Recipients | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.fmt = fmt
        self.rate = rate
        self.index = index
        self.bus = bus
        self.sync_interval_s = sync_interval_s
        self.recipients = recipients
        self.finisher = Finisher(data_dir, fmt, rate, index, bus, chain=chain, recipients=recipients, keeper=keeper)
        self._report = report or (lambda item: None)
        # Bounded only in simulation, where capture outruns the disk: there it paces the pipeline.
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        # The core hands audio over in batches; sync early by that much so that what the line
        # carried is on the disk within sync_interval_s.
        self._sync_every = max(0.05, sync_interval_s - batch_s)
        self._writers: dict[str, PartWriter] = {}
        self._lost: dict[str, int] = {}   # frames per call that could not be written
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._pending_cond = threading.Condition()
        self._storage_problem: str | None = None
        self._wrote_since_failure = False
        self._next_probe = 0.0
        self._next_reopen = 0.0
        self._unopened: dict[str, tuple[Begin, int]] = {}   # calls whose part could not be made yet

    # ---- the core's side -----------------------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        return self.finisher.stats

    def submit(self, command: Begin | Audio | Gap | Note | Finish | Mark | ClockCorrected) -> None:
        with self._pending_cond:
            self._pending += 1
        self._queue.put(command)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        self.finisher.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.finisher.alive

    def stop(self) -> None:
        """Finish the queued work (finalizations included), then stop. Open calls are the core's to
        end before this; parts whose finalization still fails stay for the next `recover`."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        self.finisher.stop()
        for writer in self._writers.values():
            with contextlib.suppress(OSError):
                writer.close()  # left as parts: the next start recovers them

    def wait_idle(self, timeout: float | None = None, *, finished: bool = True) -> bool:
        """Wait until every command submitted so far has been carried out (with `finished`, ended
        calls finalized and indexed too, as far as the disk allowed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._pending_cond:
            if not self._pending_cond.wait_for(lambda: self._pending == 0, timeout):
                return False
        if not finished:
            return True
        # the writer hands every Finish to the finisher before it counts the command as done
        return self.finisher.wait_idle(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # ---- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                command = self._queue.get(timeout=self._sync_every / 4)
            except queue.Empty:
                self._guarded(self._housekeeping)
                continue
            if command is _STOP:
                return
            try:
                self._guarded(self._handle, command)
            finally:
                with self._pending_cond:
                    self._pending -= 1
                    self._pending_cond.notify_all()
            self._guarded(self._housekeeping)

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """Run one piece of work; trouble is logged and alarmed, and the thread goes on recording.

        A full or failing disk must not end the recorder: the next call may find space again.
        """
        try:
            action(*args)
        except OSError as error:
            self._storage_failed(error)
        except Exception:  # a bug in one call's handling must not stop the others' recording
            log.exception("recorder failed in %s", getattr(action, "__name__", action))

    def _handle(self, command: object) -> None:
        if isinstance(command, Audio):
            self._write(command.call_id, command.samples)
        elif isinstance(command, Begin):
            self._begin(command)
        elif isinstance(command, Gap):
            writer = self._writers.get(command.call_id)
            unopened = self._unopened.get(command.call_id)
            if unopened is not None:   # not recording yet: the outage is part of what it missed
                self._unopened[command.call_id] = (unopened[0], unopened[1] + command.frames)
            if writer is not None:
                writer.note_gap(command.frames, command.cause)
                with contextlib.suppress(OSError):   # the gap is also kept in memory for finalizing
                    writer.update_meta({})
        elif isinstance(command, Note):
            writer = self._writers.get(command.call_id)
            if writer is not None:
                writer.update_meta(command.fields)
        elif isinstance(command, Finish):
            writer = self._writers.pop(command.call_id, None)
            self._unopened.pop(command.call_id, None)
            self.finisher.submit(EndedCall(command, writer, self._lost.pop(command.call_id, 0)))
        elif isinstance(command, Mark | ClockCorrected):
            self.finisher.submit(command)

    def _begin(self, command: Begin, missed: int = 0) -> None:
        try:
            writer = PartWriter(command.directory, command.call_id, command.meta, self.recipients)
            if missed:   # opened late: the line so far is a gap, then the audio from now on
                writer.note_gap(missed, "storage")
                writer.update_meta({})
            else:
                writer.write(command.initial)
        except OSError as error:
            if command.call_id not in self._unopened:
                self._report(RecordingFailed(command.call_id, describe_error(error)))
            self._unopened[command.call_id] = (command, missed + (0 if missed else len(command.initial)))
            raise
        self._unopened.pop(command.call_id, None)
        self._writers[command.call_id] = writer
        if missed:
            self._lost[command.call_id] = self._lost.get(command.call_id, 0) + missed
        self._wrote_since_failure = True
        self._report(RecordingOpened(command.call_id))   # the pre-roll is in the page cache
        writer.allocate_reserve()   # room for what the call learns if the disk fills (files.py)
        writer.sync()

    def _write(self, call_id: str, samples: np.ndarray) -> None:
        writer = self._writers.get(call_id)
        if writer is None:
            unopened = self._unopened.get(call_id)
            if unopened is None:
                return
            begin, missed = unopened
            if time.monotonic() < self._next_reopen:   # not every period: a full disk refuses fast, fsync may not
                self._unopened[call_id] = (begin, missed + len(samples))
                return
            self._next_reopen = time.monotonic() + REOPEN_EVERY_S
            try:
                self._begin(begin, missed)
            except OSError:
                self._unopened[call_id] = (begin, missed + len(samples))
                raise
            writer = self._writers[call_id]   # opened at last: these samples are the first it holds
        before = writer.frames
        try:
            writer.write(samples)
        except OSError:
            lost = len(samples) - (writer.frames - before)
            self._lost[call_id] = self._lost.get(call_id, 0) + lost
            writer.note_gap(lost, "storage")
            raise
        self._wrote_since_failure = True

    def _housekeeping(self) -> None:
        """Sync what is due, and while the storage fails, find out when it works again."""
        if self.bus.held:
            self.bus.retry()   # events the journal could not take (the same disk) go in once it can
        now = time.monotonic()
        failed: OSError | None = None
        synced = False
        for writer in self._writers.values():
            if now - writer.last_sync >= self._sync_every:
                try:
                    writer.sync()
                    synced = True
                except OSError as error:   # one file's trouble must not stop the others' syncs
                    failed = error
                try:   # a storage gap, as it grows, reaches the disk as often as the audio would
                    writer.keep_meta()
                except OSError as error:
                    failed = failed or error
        if failed is not None:
            raise failed
        if self._storage_problem is None:
            return
        if synced and self._wrote_since_failure:
            self._storage_ok()   # audio written and synced again since the last refusal
        elif not self._writers and now >= self._next_probe:
            self._next_probe = now + PROBE_EVERY_S
            self._probe()
            self._storage_ok()

    def _probe(self) -> None:
        """Write, sync and remove a small file where the recordings go: can a call be recorded?"""
        root = recordings_root(self.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".storage-probe"
        try:
            with open(probe, "wb", buffering=0) as handle:
                handle.write(b"\0" * PROBE_BYTES)
                os.fsync(handle.fileno())
            self._wrote_since_failure = True
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def _storage_failed(self, error: OSError) -> None:
        message = f"recordings cannot be written ({describe_error(error)}); audio is being lost"
        self._next_probe = time.monotonic() + PROBE_EVERY_S
        self._wrote_since_failure = False
        if self._storage_problem is not None:
            return
        log.error("recording storage failed: %s", error)
        self._storage_problem = message
        self._alarm("alarm.raised", None, {"id": "storage", "kind": "storage", "message": message})
        self._report(StorageChanged(False, message))

    def _storage_ok(self) -> None:
        if self._storage_problem is None:
            return
        log.info("recording storage works again")
        self._storage_problem = None
        self._alarm("alarm.cleared", None, {"id": "storage", "kind": "storage"})
        self._report(StorageChanged(True, ""))

    def _alarm(self, type_: str, line: int | None, fields: dict[str, Any], call_id: str | None = None) -> None:
        self.bus.emit(Event(type_, line, call_id, time.time(), fields))

