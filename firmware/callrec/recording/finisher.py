"""The finisher: the recorder's second thread, turning ended calls into final recordings.

It finalizes (encode, hash), writes the sidecar, is the only writer of the call index, and says so
in `recording.saved` and `call.ended`: a long finalization never delays the audio the writer thread
(recorder.py) puts on the disk for the other lines. A call whose finalization fails keeps its part
and is retried every `RETRY_FINALIZE_S` while the service runs (and by `callrec recover` at the
next start); ended calls the index cannot take wait in memory, their sidecars on the disk.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec.events import Event, EventBus, StampedEvent, utc_iso
from callrec.evidence import Chain
from callrec.privacy import Keeper, Recipients
from callrec.recording.diskerrors import describe_error
from callrec.recording.files import (
    FinalFile,
    PartWriter,
    finalize,
    gaps_in_call,
    sidecar_path,
    write_sidecar,
)
from callrec.recording.messages import Archived, ClockCorrected, Finish, Mark
from callrec.store import CallIndex

log = logging.getLogger(__name__)

RETRY_FINALIZE_S = 30.0    # a call that could not be finalized is tried again this often
KEEPER_EVERY_S = 60.0      # retention and the disk guard run this often (and after each call)


@dataclass
class RecorderStats:
    saved: int = 0
    discarded: int = 0
    failed: int = 0
    bytes_written: int = 0


@dataclass
class EndedCall:
    """An ended call on its way to a final recording (the finisher's)."""

    finish: Finish
    writer: PartWriter | None
    lost_frames: int = 0
    attempts: int = 0
    next_try: float = 0.0
    ended_sent: bool = False
    errors: list[str] = field(default_factory=list)


_STOP = object()


class Finisher:
    def __init__(self, data_dir: Path, fmt: str, rate: int, index: CallIndex, bus: EventBus, *,
                 chain: Chain | None = None, recipients: Recipients | None = None,
                 keeper: Keeper | None = None) -> None:
        self.data_dir = data_dir
        self.fmt = fmt
        self.rate = rate
        self._corrections: dict[str, dict[str, Any]] = {}   # clock corrections of calls not yet indexed
        self.index = index
        self.bus = bus
        self.chain = chain
        self.recipients = recipients
        self.keeper = keeper
        self._next_keep = 0.0
        self._chain_alarm = False
        self.stats = RecorderStats()
        self._jobs: queue.Queue[object] = queue.Queue()
        self._retries: list[EndedCall] = []
        self._unindexed: list[dict[str, Any]] = []
        self._index_alarm = False
        self._busy = 0
        self._busy_cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="finisher", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item: Any) -> None:
        """An ended call (`EndedCall`) or a Mark, carried out in order on the finisher's thread."""
        with self._busy_cond:
            self._busy += 1
        self._jobs.put(item)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._busy_cond:
            return self._busy_cond.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        """Finish what was submitted, try the waiting finalizations once more, then stop."""
        self._jobs.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        while True:   # news the uploader sent as the thread stopped: the index still takes it
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Archived):
                self.archived(item)
            self._job_done()

    def _job_done(self) -> None:
        with self._busy_cond:
            self._busy -= 1
            self._busy_cond.notify_all()

    def _alarm(self, type_: str, line: int | None, fields: dict[str, Any], call_id: str | None = None) -> None:
        self.bus.emit(Event(type_, line, call_id, time.time(), fields))

    def _run(self) -> None:
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
                elif isinstance(item, ClockCorrected):
                    self._clock_corrected(item)
                elif isinstance(item, Archived):
                    self.archived(item)
                elif isinstance(item, EndedCall):
                    self._finish(item)
                    self._keep(after_call=True, wall=item.finish.wall)
            except Exception:   # never let one call's trouble end the finisher
                log.exception("finishing failed")
            finally:
                self._job_done()
            self._retry_due()

    def _keep(self, *, after_call: bool = False, wall: float | None = None) -> None:
        """Retention and the disk guard (privacy/retention.py), here because this thread is the
        index's only writer; never allowed to stop the finisher. `wall`: the call's end as the
        core's wall clock labels it (a simulation's runs ahead of the real one): never before it."""
        if self.keeper is None or (not after_call and time.monotonic() < self._next_keep):
            return
        self._next_keep = time.monotonic() + KEEPER_EVERY_S
        try:
            self.keeper.tick(max(time.time(), wall or 0.0), after_call=after_call)
        except (OSError, sqlite3.Error) as error:
            log.error("retention and the disk guard could not run: %s", error)

    def _retry_wait(self) -> float | None:
        dues = [job.next_try for job in self._retries]
        if self.keeper is not None:
            dues.append(self._next_keep)
        if self._unindexed:
            dues.append(time.monotonic() + RETRY_FINALIZE_S)
        if not dues:
            return None
        return max(0.05, min(dues) - time.monotonic())

    def _retry_due(self, *, force: bool = False) -> None:
        self._keep()
        now = time.monotonic()
        if self._unindexed and (force or not self._retries or now >= min(j.next_try for j in self._retries)):
            self._index_pending()
        for job in list(self._retries):
            if force or now >= job.next_try:
                self._retries.remove(job)
                self._finish(job)

    def _finish(self, job: EndedCall) -> None:
        """Finalize, index, then say so; the part goes only once the sidecar holds the record, and
        `call.ended` goes out once, whatever became of the recording (docs/events.md)."""
        command = job.finish
        writer = job.writer
        record = dict(command.record)
        record["errors"] = list(record.get("errors", [])) + job.errors
        if command.call_id in self._corrections:
            record["clock_correction"] = self._corrections.pop(command.call_id)
        job.attempts += 1
        gaps = [] if writer is None else gaps_in_call(writer.meta.get("gaps", []), self.rate,
                                                      float(writer.meta.get("preroll_s", 0.0)), command.frames)
        lost_s = (sum(gap["duration_s"] for gap in gaps if gap["cause"] == "storage") if writer is not None
                  else job.lost_frames / self.rate)   # of the call's timeline: not what came after the hang-up
        if job.lost_frames and job.attempts == 1:
            job.errors.append(f"{lost_s:.1f} s of audio could not be written (storage failure)")
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
            record["gaps"] = gaps
            final = self._finalize(job, record)
            if final is None:
                return
        self._index(record)
        if final is not None:
            self.stats.saved += 1
            self.stats.bytes_written += final.bytes
            extra: dict[str, Any] = {"late": True} if job.ended_sent else {}
            emit_saved(self.bus, record, final, command.wall, **extra)
        if not job.ended_sent:
            emit_ended(self.bus, record, command.wall)

    def _finalize(self, job: EndedCall, record: dict[str, Any]) -> FinalFile | None:
        """The final file and sidecar, or None when the disk refused them (retried later)."""
        command, writer = job.finish, job.writer
        assert writer is not None
        final_path = writer.directory / f"{command.call_id}.{self.fmt}{'.age' if writer.encrypted else ''}"
        try:
            with contextlib.suppress(OSError):   # the part keeps the whole record, should we crash now
                writer.update_meta({"final": {**record, "frames": command.frames}})
            writer.close()
            final = finalize(writer.part_path, final_path, self.fmt, self.rate, command.frames,
                             writer.meta.get("gaps"), identity=writer.identity,
                             recipients=self.recipients if writer.encrypted else None)
            record["recording"] = recording_fields(final, self.data_dir)
            record["status"] = "complete"
            if job.attempts > 1:
                record["errors"].append(f"finalized late, at attempt {job.attempts} (storage failure before)")
            record.update(write_sidecar(final_path, record))
            self._seal(record, final_path)
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

    def _seal(self, record: dict[str, Any], audio: Path) -> None:
        """The call's chain entry; a chain the disk refuses is an alarm, not a lost recording
        (`verify` then names the call as not in the chain)."""
        if self.chain is None:
            return
        try:
            record["chain"] = self.chain.seal_call(record, audio, sidecar_path(audio))
        except OSError as error:
            log.error("the evidence chain cannot take %s: %s", record["call_id"], error)
            if not self._chain_alarm:
                self._chain_alarm = True
                self._alarm("alarm.raised", None, {
                    "id": "chain", "kind": "storage",
                    "message": f"the evidence chain cannot be written ({describe_error(error)}); "
                               f"call {record['call_id']} is recorded but not sealed"}, record["call_id"])
            return
        if self._chain_alarm:
            self._chain_alarm = False
            self._alarm("alarm.cleared", None, {"id": "chain", "kind": "storage"})

    def _finalize_failed(self, job: EndedCall, record: dict[str, Any], error: Exception) -> None:
        """Retry later; the first time, say so (`call.ended` failed, an alarm). Why it failed, and
        the `seq` of that `call.ended`, go into the part's metadata (in place on a full disk), so
        that `recover`, should the process end first, states the cause and knows whether the
        journal ever took the event."""
        command = job.finish
        job.next_try = time.monotonic() + RETRY_FINALIZE_S
        self._retries.append(job)
        facts: dict[str, Any] = {"unfinalized": {"reason": describe_error(error), "attempts": job.attempts,
                                                 "at": utc_iso(time.time())}}
        if not job.ended_sent:
            job.ended_sent = True
            self.stats.failed += 1
            part_name = job.writer.part_path.name if job.writer is not None else "?"
            failed = {**record, "status": "failed", "recording": None,
                      "errors": [*record["errors"], f"finalize failed: {describe_error(error)}; audio kept in "
                                 f"{part_name}, retried while the service runs and by `callrec recover`"]}
            self._alarm("alarm.raised", record["line"], {
                "id": f"recording:{command.call_id}", "kind": "recording",
                "message": f"recording of call {command.call_id} could not be finalized: {describe_error(error)}; "
                           "it is retried, and `callrec recover` finishes it once the cause is fixed"},
                command.call_id)
            self._index(failed)
            facts["ended_event"] = {"seq": emit_ended(self.bus, failed, command.wall).seq, "status": "failed"}
        if job.writer is not None:
            try:
                job.writer.update_meta(facts)
            except OSError as meta_error:
                log.error("why %s could not be finalized is not on the disk either: %s", command.call_id,
                          describe_error(meta_error))

    def _index(self, record: dict[str, Any]) -> None:
        try:
            self.index.add(record)
        except (sqlite3.Error, OSError, ValueError) as error:
            why = describe_error(error, self.index.path)
            log.error("indexing %s failed: %s", record["call_id"], why)
            self._unindexed = [r for r in self._unindexed if r["call_id"] != record["call_id"]] + [record]
            if not self._index_alarm:
                self._index_alarm = True
                self._alarm("alarm.raised", None, {
                    "id": "index", "kind": "storage",
                    "message": f"calls cannot be written to the index ({why}); their recordings and sidecars "
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

    def archived(self, news: Archived) -> None:
        """The archive has the call: the record says since when, and dashboards hear of it.

        On this thread while it runs; called directly only once it has stopped."""
        try:
            record = self.index.update(news.call_id, {"archived_at": utc_iso(news.at)})
        except (KeyError, ValueError):
            return   # deleted meanwhile: the archive holds what was
        self.bus.emit(Event("recording.archived", record.get("line"), news.call_id, news.at, {
            "url": news.url, "key": news.key, "sha256": news.sha256, "bytes": news.bytes}))

    def _clock_corrected(self, news: ClockCorrected) -> None:
        """The record of a call made on an unsynchronised clock gains `clock_correction`; a call
        still in progress gets it when it is indexed."""
        correction = {"offset_s": round(news.offset_s, 3), "started_at": utc_iso(news.corrected_started),
                      "measured_at": utc_iso(news.measured)}
        try:
            self.index.update(news.call_id, {"clock_correction": correction})
        except (KeyError, ValueError):
            self._corrections[news.call_id] = correction

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


def emit_saved(bus: EventBus, record: dict[str, Any], final: FinalFile, wall: float, **extra: Any) -> None:
    chain = record.get("chain") or {}
    bus.emit(Event("recording.saved", record["line"], record["call_id"], wall, {
        "path": record["recording"]["path"], "format": final.format, "bytes": final.bytes,
        "sha256": final.sha256, "duration_s": round(final.frames / final.sample_rate, 3),
        "encryption": final.encryption, "chain_head": chain.get("hash"), **extra,
    }))


def emit_ended(bus: EventBus, record: dict[str, Any], wall: float) -> StampedEvent:
    return bus.emit(Event("call.ended", record["line"], record["call_id"], wall, {
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
        "encryption": getattr(final, "encryption", None),
    }
