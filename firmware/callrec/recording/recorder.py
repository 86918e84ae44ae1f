"""The recorder: the writer thread that acts on the core's recording decisions.

The core never touches the disk. It sends `Begin`, `Audio`, `Note` and `Finish`; this thread writes
the part files, syncs them at least every `sync_interval_s` of real time, and at the end finalizes,
hashes, writes the sidecar, indexes the call and says so in `recording.saved` and `call.ended`.
A failure to finalize keeps the part file (the next `recover` retries it), marks the call `failed`
and raises an alarm: the audio is never silently lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callrec.bus import EventBus
from callrec.events import Event
from callrec.recording.files import FinalFile, PartWriter, finalize, write_json_atomic
from callrec.store.index import CallIndex

log = logging.getLogger(__name__)


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
class Note:
    """Facts learnt during the call (answer, announcement proof), kept in the part's metadata."""

    call_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    call_id: str
    record: dict[str, Any]          # the index document, without `recording`/`status`
    frames: int | None              # keep this many frames (the on-hook edge); None = all
    discard: bool
    wall: float


@dataclass
class RecorderStats:
    saved: int = 0
    discarded: int = 0
    failed: int = 0
    bytes_written: int = 0


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
    ) -> None:
        self.data_dir = data_dir
        self.fmt = fmt
        self.rate = rate
        self.index = index
        self.bus = bus
        self.sync_interval_s = sync_interval_s
        self.stats = RecorderStats()
        # Bounded only in simulation, where capture outruns the disk: there it paces the pipeline.
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        # The core hands audio over in batches; sync early by that much so that what the line
        # carried is on the disk within sync_interval_s.
        self._sync_every = max(0.05, sync_interval_s - batch_s)
        self._writers: dict[str, PartWriter] = {}
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._pending_cond = threading.Condition()
        self._storage_alarm = False
        self._lost: dict[str, int] = {}   # frames per call that could not be written

    # ---- the core's side -----------------------------------------------------------------------

    def submit(self, command: Begin | Audio | Note | Finish) -> None:
        with self._pending_cond:
            self._pending += 1
        self._queue.put(command)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Finish the queued work, then stop. Open calls are the core's to end before this."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        for writer in self._writers.values():
            writer.close()  # left as parts: the next start recovers them

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every command submitted so far has been carried out."""
        with self._pending_cond:
            return self._pending_cond.wait_for(lambda: self._pending == 0, timeout)

    # ---- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                command = self._queue.get(timeout=self._sync_every / 4)
            except queue.Empty:
                self._guarded(self._sync_due)
                continue
            if command is _STOP:
                return
            try:
                self._guarded(self._handle, command)
            finally:
                with self._pending_cond:
                    self._pending -= 1
                    self._pending_cond.notify_all()
            self._guarded(self._sync_due)

    def _guarded(self, action: Any, *args: Any) -> None:
        """Run one piece of work; trouble is logged and alarmed, and the thread goes on recording.

        A full or failing disk must not end the recorder: the next call may find space again.
        """
        try:
            action(*args)
        except OSError as error:
            log.error("recording storage failed: %s", error)
            if not self._storage_alarm:
                self._storage_alarm = True
                self._alarm("alarm.raised", None, {
                    "id": "storage", "kind": "storage",
                    "message": f"recordings cannot be written ({error.strerror or error}); audio is being lost"})
            return
        except Exception:  # a bug in one call's handling must not stop the others' recording
            log.exception("recorder failed in %s", getattr(action, "__name__", action))
            return
        if self._storage_alarm and action == self._sync_due and self._writers:
            self._storage_alarm = False   # every open recording synced again
            self._alarm("alarm.cleared", None, {"id": "storage", "kind": "storage"})

    def _alarm(self, type_: str, line: int | None, fields: dict[str, Any], call_id: str | None = None) -> None:
        self.bus.emit(Event(type_, line, call_id, time.time(), fields))

    def _handle(self, command: object) -> None:
        if isinstance(command, Audio):
            writer = self._writers.get(command.call_id)
            if writer is not None:
                try:
                    writer.write(command.samples)
                except OSError:
                    self._lost[command.call_id] = self._lost.get(command.call_id, 0) + len(command.samples)
                    raise
        elif isinstance(command, Begin):
            writer = PartWriter(command.directory, command.call_id, command.meta)
            self._writers[command.call_id] = writer
            writer.write(command.initial)
            writer.sync()
        elif isinstance(command, Note):
            writer = self._writers.get(command.call_id)
            if writer is not None:
                writer.update_meta(command.fields)
        elif isinstance(command, Finish):
            self._finish(command)

    def _sync_due(self) -> None:
        now = time.monotonic()
        failed: OSError | None = None
        for writer in self._writers.values():
            if now - writer.last_sync >= self._sync_every:
                try:
                    writer.sync()
                except OSError as error:   # one file's trouble must not stop the others' syncs
                    failed = error
        if failed is not None:
            raise failed

    def _finish(self, command: Finish) -> None:
        """Finalize, index, then say so; the part is deleted only once the call is safely indexed,
        and `call.ended` goes out whatever happened (docs/events.md)."""
        writer = self._writers.pop(command.call_id, None)
        record = dict(command.record)
        record["errors"] = list(record.get("errors", []))
        lost = self._lost.pop(command.call_id, 0)
        if lost:
            record["errors"].append(f"{lost / self.rate:.1f} s of audio could not be written (storage failure)")
        final: FinalFile | None = None
        if writer is None:
            record.update(status="failed", recording=None)
            record["errors"].append("no recording was started for this call (see the storage alarm)")
        elif command.discard:
            self._guarded(writer.remove)
            self.stats.discarded += 1
            record.update(status="discarded", recording=None)
        else:
            final_path = writer.directory / f"{command.call_id}.{self.fmt}"
            try:
                writer.close()
                final = finalize(writer.part_path, final_path, self.fmt, self.rate, command.frames)
                record["recording"] = recording_fields(final, self.data_dir)
                record["status"] = "complete"
                write_json_atomic(final_path.with_suffix(".json"), record)
            except Exception as error:  # disk full, I/O error: the part stays for `recover`
                log.exception("finalizing %s failed", command.call_id)
                final = None
                self.stats.failed += 1
                record.update(status="failed", recording=None)
                record["errors"].append(f"finalize failed: {error}; audio kept in {writer.part_path.name}")
                self._alarm("alarm.raised", record["line"], {
                    "id": f"recording:{command.call_id}", "kind": "recording",
                    "message": f"recording of call {command.call_id} could not be finalized: {error}; "
                               "run `callrec recover` once the cause is fixed"}, command.call_id)
        indexed = True
        try:
            self.index.add(record)
        except Exception as error:
            indexed = False
            log.exception("indexing %s failed", command.call_id)
            self._alarm("alarm.raised", record["line"], {
                "id": f"index:{command.call_id}", "kind": "recording",
                "message": f"call {command.call_id} could not be indexed ({error}); its audio is kept for "
                           "`callrec recover`"}, command.call_id)
        if final is not None and writer is not None:
            if indexed:
                self._guarded(writer.remove)
            self.stats.saved += 1
            self.stats.bytes_written += final.bytes
            emit_saved(self.bus, record, final, command.wall)
        emit_ended(self.bus, record, command.wall)


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
