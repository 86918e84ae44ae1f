"""The uploader: ships finalized calls, their sidecars, the chain and the audit log to the archive.

Driven by the durable queue (queue.py): `recording.saved` puts a call in it (the bus listener),
and at start every indexed recording the archive has not confirmed is queued again, so nothing
finalized is forgotten across restarts. Each call's recording and sidecar are `put` (verified,
write-once, so a retry after a kill is harmless) and only then does the call count as archived:
`on_archived` tells the index's writer (the finisher in the service), which sets `archived_at`
and emits `recording.archived`. The chain and the audit log go as write-once segments
(`<device>/chain/chain-<first>-<last>.jsonl`), so `verify --archive` can check a device's history
from the archive alone; with them a witness of both heads as shipped, signed with the device key
(`<device>/witness/heads-<chain seq>-<audit seq>.json`), so a segment deleted from the archive, or
a tail cut on the device, is named by `verify` on either side.

Failures back off (doubling up to `retry_max_s`); the archive unreachable for `alarm_after_s`, a
refusal (credentials, host key), an object in the way and a backlog over `max_backlog` are alarms.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.archive.office import SEGMENT
from callrec.archive.port import ArchiveConflict, ArchiveError, ArchiveFull, ArchiveRefused, ArchiveTarget, Stored
from callrec.archive.queue import ArchiveQueue
from callrec.config import ArchiveConfig
from callrec.events import Event, EventBus, StampedEvent
from callrec.evidence import (
    DeviceKey,
    DeviceKeyError,
    Heads,
    LedgerHead,
    audit_path,
    chain_path,
    key_paths,
    parse_line,
    sidecar_of,
    witness_document,
)
from callrec.privacy import started_wall

log = logging.getLogger(__name__)

ALARM_UNREACHABLE = "archive.unreachable"
ALARM_REFUSED = "archive.refused"
ALARM_FULL = "archive.full"
ALARM_BACKLOG = "archive.backlog"
SEGMENT_MAX = 5000   # ledger entries per segment
WITNESSED = "witness."   # + ledger name: the queue's note of the heads the newest witness holds


def witness_key(device_id: str, heads: Heads) -> str:
    """Names sort by time: both seqs only grow."""
    chain, audit = (heads.chain.seq if heads.chain else 0), (heads.audit.seq if heads.audit else 0)
    return f"{device_id}/witness/heads-{chain:010d}-{audit:010d}.json"


@dataclass(frozen=True)
class Backlog:
    count: int
    bytes: int
    oldest: str | None

    def fields(self) -> dict[str, Any]:
        return {"count": self.count, "bytes": self.bytes, "oldest": self.oldest}


def recording_key(device_id: str, record: dict[str, Any]) -> str | None:
    path = (record.get("recording") or {}).get("path")
    return f"{device_id}/{path}" if path else None


class Uploader:
    def __init__(self, data_dir: Path, device_id: str, config: ArchiveConfig, target: ArchiveTarget,
                 queue: ArchiveQueue, record_of: Callable[[str], dict[str, Any] | None],
                 on_archived: Callable[[str, float, Stored], None], bus: EventBus | None = None) -> None:
        self.data_dir = data_dir
        self.device_id = device_id
        self.config = config
        self.target = target
        self.queue = queue
        self.record_of = record_of
        self.on_archived = on_archived
        self.bus = bus
        self._alarms: set[str] = set()
        self._down_since: float | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resumed: set[str] = set()   # ledgers checked for a segment put just before a crash
        self._rewritten: set[str] = set()   # ledgers found cut or rewritten after they were shipped
        self._key: DeviceKey | None = None

    # ---- feeding --------------------------------------------------------------------------------

    def __call__(self, stamped: StampedEvent) -> None:
        """Bus listener: a saved recording is queued (durably) and the thread woken."""
        event = stamped.event
        if event.type == "recording.saved" and event.call_id:
            self.queue.add(event.call_id)
            self._wake.set()

    def catch_up(self, records: Any) -> int:
        """Queue every indexed recording the archive has not confirmed (at start; first enabling)."""
        archived = self.queue.archived_ids()
        added = 0
        for record in records:
            call_id = str(record.get("call_id"))
            if call_id in archived or not record.get("recording") or record.get("offloaded_at"):
                continue
            added += self.queue.add(call_id)
        return added

    # ---- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="archive-uploader", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop the thread; with `drain_s`, first ship what is pending for at most that long (what
        is left stays queued for the next start)."""
        if drain_s > 0 and self._thread is not None and self._down_since is None:
            deadline = time.monotonic() + drain_s
            self._wake.set()
            while time.monotonic() < deadline and self.queue.due(time.time()) and self._down_since is None:
                time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self.target.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:   # never let one bad call end the offload of the others
                log.exception("archive upload failed")
            waits = [p.next_try for p in self.queue.pending()]
            wait = max(0.2, min(waits) - time.time()) if waits else 60.0
            self._wake.wait(min(wait, 60.0))
            self._wake.clear()

    def run_once(self, now: float | None = None) -> bool:
        """Upload what is due; True when nothing is left pending."""
        moment = time.time() if now is None else now
        tried: set[str] = set()
        while True:   # in batches, each call tried once per pass (a failure stays due with now=inf)
            batch = [item for item in self.queue.due(moment, limit=len(tried) + 50) if item.call_id not in tried]
            if not batch:
                break
            for item in batch:
                if self._stop.is_set():
                    return False
                tried.add(item.call_id)
                self._ship(item.call_id, item.attempts)
        if not self.queue.pending() or self._down_since is None:
            self._ship_ledgers()
        for key in self.queue.deletions():
            try:
                self.target.delete(key)
            except ArchiveError as error:
                log.warning("archive: cannot delete %s yet: %s", key, error)
                break
            self.queue.deleted(key)
        self._check_backlog()
        return not self.queue.pending()

    def _ship(self, call_id: str, attempts: int) -> None:
        record = self.record_of(call_id)
        key = recording_key(self.device_id, record) if record else None
        if record is None or key is None:
            self.queue.drop(call_id)   # deleted by policy before it was shipped, or never recorded
            return
        audio = self.data_dir / record["recording"]["path"]
        retain = None
        if self.config.object_lock_days is not None:
            started = started_wall(record) or time.time()
            retain = started + self.config.object_lock_days * 86400
        try:
            data = audio.read_bytes()
            sidecar = sidecar_of(audio).read_bytes()
        except FileNotFoundError:
            self._failed(call_id, attempts, f"{audio.name} is not on the disk (see `callrec recover`)", local=True)
            return
        try:
            stored = self.target.put(key, data, retain_until=retain)
            self.target.put(str(Path(key).with_name(sidecar_of(audio).name)), sidecar, retain_until=retain)
        except ArchiveConflict as error:
            self._failed(call_id, attempts, str(error))
            self._raise(f"archive.conflict:{call_id}", f"{error}; the local copy is kept")
            return
        except ArchiveError as error:
            self._unreachable(error)
            self._failed(call_id, attempts, str(error))
            return
        now = time.time()
        self.queue.done(call_id, key, stored.sha256, stored.size, now)
        self._reachable()
        self._clear(f"archive.conflict:{call_id}")   # an object in the way that was healed, or removed
        self.on_archived(call_id, now, stored)
        log.info("archived %s -> %s", call_id, key)

    def _ship_ledgers(self) -> None:
        public = key_paths(self.data_dir)[1]
        try:
            if public.exists():
                self.target.put(f"{self.device_id}/chain/device.pub", public.read_bytes())
            heads = Heads(self._ship_ledger("chain", chain_path(self.data_dir)),
                          self._ship_ledger("audit", audit_path(self.data_dir)))
            if not self._rewritten:
                self._witness(heads)
        except ArchiveError as error:
            self._unreachable(error)
            log.warning("archive: the %s segments wait: %s", "ledger", error)

    def _ship_ledger(self, name: str, path: Path) -> LedgerHead | None:
        """Put the entries after the last shipped as one segment; returns the head the archive holds.

        Only a ledger that still holds the entry shipped last (same seq, same hash) goes on: one cut
        or rewritten behind the device's back is not shipped further and no witness is written (it
        would vouch for the rewrite); the alarm `archive.rewritten:<name>` says so."""
        done = self.queue.ledger_seq(name)
        if name not in self._resumed:
            done = self._resume_ledger(name, done)
            self._resumed.add(name)
        shipped = self.queue.ledger_hash(name)
        lines: list[bytes] = []
        anchor: LedgerHead | None = None   # the entry shipped last, as the file holds it now
        head: LedgerHead | None = None
        try:
            with open(path, "rb") as handle:
                for raw in handle:
                    try:
                        entry = LedgerHead.of(parse_line(raw))
                    except ValueError:
                        continue   # not an entry: `verify` names it
                    if entry is None or not raw.endswith(b"\n"):
                        continue
                    if entry.seq == done:
                        anchor = head = entry
                    elif entry.seq > done:
                        lines.append(raw)
                        head = entry
                        if len(lines) >= SEGMENT_MAX:
                            break
        except FileNotFoundError:
            pass
        if done and (anchor is None or (shipped is not None and anchor.hash != shipped)):
            self._ledger_rewritten(name, done, shipped, anchor)
            return None
        if lines and head is not None:
            self.target.put(f"{self.device_id}/chain/{name}-{done + 1:010d}-{head.seq:010d}.jsonl",
                            b"".join(lines), retain_until=self._ledger_lock())
            self.queue.set_ledger_head(name, head.seq, head.hash)
        elif anchor is not None and shipped is None:
            self.queue.set_ledger_head(name, anchor.seq, anchor.hash)   # the hash an older firmware did not keep
        return head

    def _ledger_rewritten(self, name: str, done: int, shipped: str | None, anchor: LedgerHead | None) -> None:
        self._rewritten.add(name)
        found = "is gone" if anchor is None else f"is {anchor.hash[:16]}…, not the {str(shipped)[:16]}… shipped"
        self._raise(f"archive.rewritten:{name}",
                    f"the {name} ledger was cut or rewritten behind the device's back: its entry seq {done}, the last "
                    f"one archived, {found}; nothing more of it is archived and no witness of the heads is written "
                    "(`callrec verify` names what changed)")

    def _witness(self, heads: Heads) -> None:
        """A signed witness of the heads the archive now holds, once per change of them."""
        seqs = {name: head.seq if head else 0 for name, head in (("chain", heads.chain), ("audit", heads.audit))}
        if not any(seqs.values()) or all(self.queue.ledger_seq(WITNESSED + n) == seq for n, seq in seqs.items()):
            return
        document = witness_document(heads, self.device_id, self._device_key())
        self.target.put(witness_key(self.device_id, heads),
                        json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(),
                        retain_until=self._ledger_lock())
        for name, seq in seqs.items():
            self.queue.set_ledger_seq(WITNESSED + name, seq)

    def _ledger_lock(self) -> float | None:
        """With Object Lock, segments and witnesses are locked like recordings (from now): deleting
        the newest of them is how a cut tail would be hidden in the archive."""
        days = self.config.object_lock_days
        return time.time() + days * 86400 if days is not None else None

    def _device_key(self) -> DeviceKey | None:
        """The device key signs the witness (None: unsigned, and `verify --archive` says so)."""
        if self._key is None:
            try:
                self._key = DeviceKey.load_or_create(self.data_dir)
            except (OSError, DeviceKeyError) as error:
                log.error("archive: the witness of the ledger heads goes unsigned: %s", error)
        return self._key

    def _resume_ledger(self, name: str, done: int) -> int:
        """After a crash between a segment's put and the queue's note of it, the archive already holds
        the segment that starts at `done + 1`: take its end as shipped, so the next segment follows it
        instead of repeating it (write-once storage could not replace it, and the office's chain would
        hold those entries twice). Asked once per ledger per start, the only time it can happen."""
        ends = [int(match.group(3)) for key in self.target.list(f"{self.device_id}/chain")
                if (match := SEGMENT.match(key.rsplit("/", 1)[-1])) is not None
                and match.group(1) == name and int(match.group(2)) == done + 1]
        if not ends:
            return done
        last = max(ends)
        log.info("archive: the %s segment from %d to %d was put before a restart; going on after it", name,
                 done + 1, last)
        key = f"{self.device_id}/chain/{name}-{done + 1:010d}-{last:010d}.jsonl"
        try:
            shipped = LedgerHead.of(parse_line(self.target.get(key).splitlines()[-1]))
        except (ArchiveError, ValueError, IndexError):
            shipped = None
        if shipped is not None and shipped.seq == last:
            self.queue.set_ledger_head(name, last, shipped.hash)   # as the archive holds it
        else:
            self.queue.set_ledger_seq(name, last)
        return last

    # ---- failures and alarms --------------------------------------------------------------------

    def _failed(self, call_id: str, attempts: int, error: str, *, local: bool = False) -> None:
        backoff = min(self.config.retry_max_s, 2.0 ** min(attempts + 1, 20))
        self.queue.failed(call_id, error, time.time() + backoff)
        self.last_error = error
        log.warning("archive: %s not archived (attempt %d, next in %.0f s): %s", call_id, attempts + 1, backoff, error)

    def _unreachable(self, error: ArchiveError) -> None:
        now = time.time()
        if self._down_since is None:
            self._down_since = now
        self.last_error = str(error)
        if isinstance(error, ArchiveRefused):
            self._raise(ALARM_REFUSED, f"the archive refuses the device: {error}")
        elif isinstance(error, ArchiveFull):   # does not go away by waiting: say so at once
            self._raise(ALARM_FULL, f"the archive has no room: {error}; recordings are kept locally and sent "
                                    "once the archive's disk or quota has room")
        elif now - self._down_since >= self.config.alarm_after_s:
            self._raise(ALARM_UNREACHABLE, f"the archive has been unreachable for {now - self._down_since:.0f} s "
                                           f"({error}); recordings are kept locally and sent when it is back")

    def _reachable(self) -> None:
        self._down_since = None
        self._clear(ALARM_UNREACHABLE)
        self._clear(ALARM_REFUSED)
        self._clear(ALARM_FULL)

    def backlog(self) -> Backlog:
        pending = self.queue.pending()
        size = 0
        for item in pending[:10_000]:
            record = self.record_of(item.call_id)
            size += int((record or {}).get("recording", {}).get("bytes") or 0) if record else 0
        return Backlog(len(pending), size, pending[0].call_id if pending else None)

    def _check_backlog(self) -> None:
        count = len(self.queue.pending())
        if count > self.config.max_backlog:
            self._raise(ALARM_BACKLOG, f"{count} calls wait for the archive (more than {self.config.max_backlog})")
        else:
            self._clear(ALARM_BACKLOG)

    def _raise(self, alarm_id: str, message: str) -> None:
        if alarm_id in self._alarms:
            return
        self._alarms.add(alarm_id)
        log.error("%s", message)
        if self.bus is not None:
            self.bus.emit(Event("alarm.raised", None, None, time.time(),
                                {"id": alarm_id, "kind": "archive", "message": message}))

    def _clear(self, alarm_id: str) -> None:
        if alarm_id not in self._alarms:
            return
        self._alarms.discard(alarm_id)
        if self.bus is not None:
            self.bus.emit(Event("alarm.cleared", None, None, time.time(), {"id": alarm_id, "kind": "archive"}))

