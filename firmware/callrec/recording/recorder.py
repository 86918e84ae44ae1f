"""The recorder: the writer threads that act on the core's recording decisions.

The core never touches the disk. It sends `Begin`, `Audio`, `Gap`, `Note`, `Finish` and `Mark`;
this part writes them and tells the core what became of them (`RecordingOpened`,
`RecordingFailed`, `StorageChanged`), so the core announces only calls that are really being
recorded and shows a line that cannot record as `fault`.

Two threads, so that a long finalization never delays the audio of the other lines:
- the *writer* appends every call's audio to its part file (unbuffered: a killed process loses
  nothing it handed over) and syncs each part at least every `sync_interval_s`;
- the *finisher* turns ended calls into final recordings (encode, hash, sidecar), keeps the call
  index (it is the only thread that writes it) and says so in `recording.saved` and `call.ended`.

Storage trouble never ends either thread. A write the disk refuses is a gap in that call's record
(the file keeps the line's timeline: finalizing puts silence there) and a `storage` alarm; the
recorder keeps trying, and the alarm clears once writing works again. A call whose finalization
failed keeps its part and is retried while the service runs (and by `recover` at the next start).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from callrec.events import Event, EventBus
from callrec.recording.files import (
    FinalFile,
    PartWriter,
    finalize,
    gaps_in_call,
    recordings_root,
    write_sidecar,
)
from callrec.store import CallIndex

log = logging.getLogger(__name__)

PROBE_EVERY_S = 5.0        # while storage fails and no call writes, test it this often
RETRY_FINALIZE_S = 30.0    # a call that could not be finalized is tried again this often
PROBE_BYTES = 64 * 1024


# ---- what the core sends -----------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    call_id: str
    line: int
    directory: Path
    meta: dict[str, Any]
    initial: np.ndarray


@dataclass(frozen=True)
class Audio:
    call_id: str
    samples: np.ndarray


@dataclass(frozen=True)
class Gap:
    """The line was not heard for `frames` (the capture card was away): silence in the file."""

    call_id: str
    frames: int
    cause: str


@dataclass(frozen=True)
class Note:
    """Facts learnt during the call (answer, announcement proof), kept in the part's metadata."""

    call_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    call_id: str
    record: dict[str, Any]          # the index document, without `recording`/`status`
    frames: int | None              # keep this many frames of the line's timeline; None = all
    discard: bool
    wall: float


@dataclass(frozen=True)
class Mark:
    """Tag a call that has ended (the index is the finisher's); the result goes to `reply`."""

    call_id: str
    tag: str
    reply: Future[dict[str, Any]]


# ---- what the recorder tells the core ----------------------------------------------------------


@dataclass(frozen=True)
class RecordingOpened:
    """The call's part file exists and holds its pre-roll: the call is being recorded."""

    call_id: str


@dataclass(frozen=True)
class RecordingFailed:
    """The call cannot be recorded at all (no part file could be made)."""

    call_id: str
    message: str


@dataclass(frozen=True)
class StorageChanged:
    """Recordings can (ok) or cannot be written; `message` says why not."""

    ok: bool
    message: str


@dataclass
class RecorderStats:
    saved: int = 0
    discarded: int = 0
    failed: int = 0
    bytes_written: int = 0


@dataclass
class _Job:
    """An ended call on its way to a final recording (the finisher's)."""

    finish: Finish
    writer: PartWriter | None
    lost_frames: int = 0
    attempts: int = 0
    next_try: float = 0.0
    ended_sent: bool = False
    errors: list[str] = field(default_factory=list)


_STOP = object()


class Recorder:
    def __init__(
        self,
        data_dir: Path,
        fmt: str,
        rate: int,
        index: CallIndex,
        bus: EventBus,
        sync_interval_s: float = 1.0,
        queue_size: int = 0,
        batch_s: float = 0.2,
        report: Callable[[object], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.fmt = fmt
        self.rate = rate
        self.index = index
        self.bus = bus
        self.sync_interval_s = sync_interval_s
        self.stats = RecorderStats()
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
        self._unopened: dict[str, tuple[Begin, int]] = {}   # calls whose part could not be made yet
        # the finisher
        self._jobs: queue.Queue[object] = queue.Queue()
        self._retries: list[_Job] = []
        self._unindexed: list[dict[str, Any]] = []
        self._index_alarm = False
        self._finishing = 0
        self._finisher: threading.Thread | None = None

    # ---- the core's side -----------------------------------------------------------------------

    def submit(self, command: Begin | Audio | Gap | Note | Finish | Mark) -> None:
        with self._pending_cond:
            self._pending += 1
        self._queue.put(command)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        self._finisher = threading.Thread(target=self._run_finisher, name="finisher", daemon=True)
        self._finisher.start()

    @property
    def alive(self) -> bool:
        threads = (self._thread, self._finisher)
        return all(thread is not None and thread.is_alive() for thread in threads)

    def stop(self) -> None:
        """Finish the queued work (finalizations included), then stop. Open calls are the core's to
        end before this; parts whose finalization still fails stay for the next `recover`."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        self._jobs.put(_STOP)
        if self._finisher is not None:
            self._finisher.join()
        for writer in self._writers.values():
            with contextlib.suppress(OSError):
                writer.close()  # left as parts: the next start recovers them

    def wait_idle(self, timeout: float | None = None, *, finished: bool = True) -> bool:
        """Wait until every command submitted so far has been carried out (with `finished`, ended
        calls finalized and indexed too, as far as the disk allowed)."""
        with self._pending_cond:
            return self._pending_cond.wait_for(
                lambda: self._pending == 0 and (not finished or self._finishing == 0), timeout)

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
            with self._pending_cond:
                self._finishing += 1
            self._jobs.put(_Job(command, writer, self._lost.pop(command.call_id, 0)))
        elif isinstance(command, Mark):
            with self._pending_cond:
                self._finishing += 1
            self._jobs.put(command)

    def _begin(self, command: Begin, missed: int = 0) -> None:
        try:
            writer = PartWriter(command.directory, command.call_id, command.meta)
            if missed:   # opened late: the line so far is a gap, then the audio from now on
                writer.note_gap(missed, "storage")
                writer.update_meta({})
            else:
                writer.write(command.initial)
        except OSError as error:
            if command.call_id not in self._unopened:
                self._report(RecordingFailed(command.call_id, _describe(error)))
            self._unopened[command.call_id] = (command, missed + (0 if missed else len(command.initial)))
            raise
        self._unopened.pop(command.call_id, None)
        self._writers[command.call_id] = writer
        if missed:
            self._lost[command.call_id] = self._lost.get(command.call_id, 0) + missed
        self._wrote_since_failure = True
        self._report(RecordingOpened(command.call_id))   # the pre-roll is in the page cache
        writer.sync()

    def _write(self, call_id: str, samples: np.ndarray) -> None:
        writer = self._writers.get(call_id)
        if writer is None:
            unopened = self._unopened.get(call_id)
            if unopened is None:
                return
            begin, missed = unopened
            if time.monotonic() < self._next_probe:   # try again as often as the storage probe
                self._unopened[call_id] = (begin, missed + len(samples))
                return
            self._next_probe = time.monotonic() + PROBE_EVERY_S
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
        message = f"recordings cannot be written ({_describe(error)}); audio is being lost"
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

    # ---- the finisher thread --------------------------------------------------------------------

    def _run_finisher(self) -> None:
        while True:
            try:
                item = self._jobs.get(timeout=self._retry_wait())
            except queue.Empty:
                self._retry_due()
                continue
            if item is _STOP:
                self._retry_due(force=True)
                return
            try:
                if isinstance(item, Mark):
                    self._mark(item)
                elif isinstance(item, _Job):
                    self._finish(item)
            except Exception:   # never let one call's trouble end the finisher
                log.exception("finishing failed")
            finally:
                with self._pending_cond:
                    self._finishing -= 1
                    self._pending_cond.notify_all()
            self._retry_due()

    def _retry_wait(self) -> float | None:
        dues = [job.next_try for job in self._retries]
        if self._unindexed:
            dues.append(time.monotonic() + RETRY_FINALIZE_S)
        if not dues:
            return None
        return max(0.05, min(dues) - time.monotonic())

    def _retry_due(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._unindexed and (force or not self._retries or now >= min(j.next_try for j in self._retries)):
            self._index_pending()
        for job in list(self._retries):
            if force or now >= job.next_try:
                self._retries.remove(job)
                self._finish(job)

    def _finish(self, job: _Job) -> None:
        """Finalize, index, then say so; the part goes only once the sidecar holds the record, and
        `call.ended` goes out once, whatever became of the recording (docs/events.md)."""
        command = job.finish
        writer = job.writer
        record = dict(command.record)
        record["errors"] = list(record.get("errors", [])) + job.errors
        job.attempts += 1
        if job.lost_frames and job.attempts == 1:
            job.errors.append(f"{job.lost_frames / self.rate:.1f} s of audio could not be written "
                              "(storage failure)")
            record["errors"].append(job.errors[-1])
        final: FinalFile | None = None
        if writer is None:
            record.update(status="failed", recording=None)
            record["errors"].append("no recording was started for this call (see the storage alarm)")
        elif command.discard:
            with contextlib.suppress(OSError):
                writer.remove()
            self.stats.discarded += 1
            record.update(status="discarded", recording=None)
        else:
            record["gaps"] = gaps_in_call(writer.meta.get("gaps", []), self.rate,
                                          float(writer.meta.get("preroll_s", 0.0)))
            final = self._finalize(job, record)
            if final is None:
                return
        self._index(record)
        if final is not None:
            self.stats.saved += 1
            self.stats.bytes_written += final.bytes
            emit_saved(self.bus, record, final, command.wall, **({"late": True} if job.ended_sent else {}))
        if not job.ended_sent:
            emit_ended(self.bus, record, command.wall)

    def _finalize(self, job: _Job, record: dict[str, Any]) -> FinalFile | None:
        """The final file and sidecar, or None when the disk refused them (retried later)."""
        command, writer = job.finish, job.writer
        assert writer is not None
        final_path = writer.directory / f"{command.call_id}.{self.fmt}"
        try:
            with contextlib.suppress(OSError):   # the part keeps the whole record, should we crash now
                writer.update_meta({"final": {**record, "frames": command.frames}})
            writer.close()
            final = finalize(writer.part_path, final_path, self.fmt, self.rate, command.frames,
                             writer.meta.get("gaps"))
            record["recording"] = recording_fields(final, self.data_dir)
            record["status"] = "complete"
            if job.attempts > 1:
                record["errors"].append(f"finalized late, at attempt {job.attempts} (storage failure before)")
            record.update(write_sidecar(final_path, record))
        except Exception as error:  # disk full, I/O error: the part stays for a retry and `recover`
            log.error("finalizing %s failed (attempt %d): %s", command.call_id, job.attempts, error)
            self._finalize_failed(job, record, error)
            return None
        with contextlib.suppress(OSError):
            writer.remove()
        if job.ended_sent:
            self._alarm("alarm.cleared", record["line"], {"id": f"recording:{command.call_id}",
                                                          "kind": "recording"}, command.call_id)
        return final

    def _finalize_failed(self, job: _Job, record: dict[str, Any], error: Exception) -> None:
        command = job.finish
        job.next_try = time.monotonic() + RETRY_FINALIZE_S
        self._retries.append(job)
        if job.ended_sent:
            return
        job.ended_sent = True
        self.stats.failed += 1
        part_name = job.writer.part_path.name if job.writer is not None else "?"
        failed = {**record, "status": "failed", "recording": None,
                  "errors": [*record["errors"], f"finalize failed: {_describe(error)}; audio kept in {part_name}, "
                             "retried while the service runs and by `callrec recover`"]}
        self._alarm("alarm.raised", record["line"], {
            "id": f"recording:{command.call_id}", "kind": "recording",
            "message": f"recording of call {command.call_id} could not be finalized: {_describe(error)}; "
                       "it is retried, and `callrec recover` finishes it once the cause is fixed"},
            command.call_id)
        self._index(failed)
        emit_ended(self.bus, failed, command.wall)

    def _index(self, record: dict[str, Any]) -> None:
        try:
            self.index.add(record)
        except (sqlite3.Error, OSError, ValueError) as error:
            log.error("indexing %s failed: %s", record["call_id"], error)
            self._unindexed = [r for r in self._unindexed if r["call_id"] != record["call_id"]] + [record]
            if not self._index_alarm:
                self._index_alarm = True
                self._alarm("alarm.raised", None, {
                    "id": "index", "kind": "storage",
                    "message": f"calls cannot be written to the index ({error}); their recordings and sidecars "
                               "are kept and they are indexed once it works again"}, None)
            return
        if self._unindexed:
            self._index_pending()

    def _index_pending(self) -> None:
        pending, self._unindexed = self._unindexed, []
        for number, record in enumerate(pending):
            try:
                self.index.add(record)
            except (sqlite3.Error, OSError, ValueError):
                self._unindexed = pending[number:]
                return
        if self._index_alarm:
            self._index_alarm = False
            self._alarm("alarm.cleared", None, {"id": "index", "kind": "storage"})

    def _mark(self, mark: Mark) -> None:
        if not mark.reply.set_running_or_notify_cancel():
            return
        try:
            record = self.index.get(mark.call_id)
            if record is None:
                from callrec.control import CommandError

                raise CommandError(f"no call {mark.call_id!r}")
            tags = list(record.get("tags", []))
            if mark.tag not in tags:
                tags.append(mark.tag)
            self.index.update(mark.call_id, {"tags": tags})
        except Exception as error:
            mark.reply.set_exception(error)
        else:
            mark.reply.set_result({"call_id": mark.call_id, "tags": tags})


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def emit_saved(bus: EventBus, record: dict[str, Any], final: FinalFile, wall: float, **extra: Any) -> None:
    bus.emit(Event("recording.saved", record["line"], record["call_id"], wall, {
        "path": record["recording"]["path"], "format": final.format, "bytes": final.bytes,
        "sha256": final.sha256, "duration_s": round(final.frames / final.sample_rate, 3), **extra,
    }))


def emit_ended(bus: EventBus, record: dict[str, Any], wall: float) -> None:
    bus.emit(Event("call.ended", record["line"], record["call_id"], wall, {
        "duration_s": record.get("duration_s"), "direction": record.get("direction"),
        "rings": record.get("rings"), "status": record["status"],
    }))


def recording_fields(final: Any, data_dir: Path) -> dict[str, Any]:
    return {
        "path": str(final.path.relative_to(data_dir)),
        "format": final.format,
        "bytes": final.bytes,
        "sha256": final.sha256,
        "sample_rate": final.sample_rate,
    }
