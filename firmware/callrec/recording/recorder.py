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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from callrec.bus import EventBus
from callrec.events import Event
from callrec.recording.files import PartWriter, finalize, write_json_atomic
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

    # ---- the core's side -----------------------------------------------------------------------

    def submit(self, command: Begin | Audio | Note | Finish) -> None:
        with self._pending_cond:
            self._pending += 1
        self._queue.put(command)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

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
                self._sync_due()
                continue
            if command is _STOP:
                return
            try:
                self._handle(command)
            except Exception:  # one call's trouble must not stop the others' recording
                log.exception("recorder failed on %s", type(command).__name__)
            finally:
                with self._pending_cond:
                    self._pending -= 1
                    self._pending_cond.notify_all()
            self._sync_due()

    def _handle(self, command: object) -> None:
        if isinstance(command, Audio):
            writer = self._writers.get(command.call_id)
            if writer is not None:
                writer.write(command.samples)
        elif isinstance(command, Begin):
            writer = PartWriter(command.directory, command.call_id, command.meta)
            writer.write(command.initial)
            writer.sync()
            self._writers[command.call_id] = writer
        elif isinstance(command, Note):
            writer = self._writers.get(command.call_id)
            if writer is not None:
                writer.update_meta(command.fields)
        elif isinstance(command, Finish):
            self._finish(command)

    def _sync_due(self) -> None:
        now = time.monotonic()
        for writer in self._writers.values():
            if now - writer.last_sync >= self._sync_every:
                writer.sync()

    def _finish(self, command: Finish) -> None:
        writer = self._writers.pop(command.call_id, None)
        record = dict(command.record)
        record.setdefault("errors", [])
        if writer is None:
            record.update(status="failed", recording=None)
            record["errors"].append("no recording was started for this call")
            self._report(record, command.wall)
            return
        writer.close()
        if command.discard:
            writer.remove()
            self.stats.discarded += 1
            record.update(status="discarded", recording=None)
            self._report(record, command.wall)
            return
        final_path = writer.directory / f"{command.call_id}.{self.fmt}"
        try:
            final = finalize(writer.part_path, final_path, self.fmt, self.rate, command.frames)
        except Exception as error:  # disk full, I/O error: keep the part for recovery
            log.exception("finalizing %s failed", command.call_id)
            self.stats.failed += 1
            record.update(status="failed", recording=None)
            record["errors"].append(f"finalize failed: {error}; audio kept in {writer.part_path.name}")
            self.bus.emit(Event("alarm.raised", record["line"], command.call_id, command.wall, {
                "id": f"recording:{command.call_id}", "kind": "recording",
                "message": f"recording of call {command.call_id} could not be finalized: {error}",
            }))
            self._report(record, command.wall)
            return
        record["recording"] = recording_fields(final, self.data_dir)
        record["status"] = record.get("status") or "complete"
        write_json_atomic(final_path.with_suffix(".json"), record)
        writer.remove()
        self.stats.saved += 1
        self.stats.bytes_written += final.bytes
        self.bus.emit(Event("recording.saved", record["line"], command.call_id, command.wall, {
            "path": record["recording"]["path"], "format": final.format, "bytes": final.bytes,
            "sha256": final.sha256, "duration_s": round(final.frames / final.sample_rate, 3),
        }))
        self._report(record, command.wall)

    def _report(self, record: dict[str, Any], wall: float) -> None:
        self.index.add(record)
        self.bus.emit(Event("call.ended", record["line"], record["call_id"], wall, {
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
