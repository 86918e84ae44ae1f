"""Retention with legal hold, and the disk guard: calls are kept as long as configured, no longer.

APPI Art. 22 asks the office to endeavour to delete personal data once it is no longer needed; an
SD card that fills up must not end the recording of new calls. Both are policy over the index on
injected time (`now`), like the line monitor: `due(…)` and `guard_plan(…)` decide, `Keeper`
carries the decisions out. Every deletion removes audio, sidecar and index entry together, is a
chain entry (so `verify` tells it from a missing file) and is audited.

Kept whatever the policy: calls under legal hold (`callrec hold`) and, with `keep_marked`, calls
with a mark (a tag: training material the office chose to keep). Whether a call is held is the
signed chain's word (`Chain.holds()`, read incrementally), not only the index's editable `hold`
field: either saying held keeps the call, and when they disagree the call is kept, the log says
so and an alarm `hold:<call_id>` (kind `evidence`) asks for `callrec verify`.

A chain cut or rewritten behind the device's back could carry a hold away with it, so nothing is
deleted or offloaded while the chain does not hold the head the device last witnessed (the event
journal's newest `evidence.head`), or while this process saw the chain rewritten: the critical
alarm `retention.suspended` says why, and recording goes on (a disk that fills then raises
`disk.held_only`, as when only held calls remain).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.config import RetentionConfig
from callrec.events import Event, EventBus, utc_iso
from callrec.evidence import AuditLog, Chain, Witness, sidecar_of
from callrec.store import CallIndex

log = logging.getLogger(__name__)

ALARM_LOW = "disk.low"
ALARM_FULL = "disk.held_only"
ALARM_HOLD = "hold:"   # + call id: the chain and the index disagree on a legal hold
ALARM_SUSPENDED = "retention.suspended"   # the chain does not hold the head the device witnessed
PRUNE_EVERY_S = 3600.0


def started_wall(record: dict[str, Any]) -> float | None:
    text = record.get("started_at")
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def kept(record: dict[str, Any], policy: RetentionConfig, held: Container[str] = ()) -> str | None:
    """Why a call is kept whatever its age (None: it is not). `held`: the calls the chain holds."""
    if record.get("hold") or record.get("call_id") in held:
        return "under legal hold"
    if policy.keep_marked and record.get("tags"):
        return "marked"
    return None


def due(records: Iterable[dict[str, Any]], now: float, policy: RetentionConfig,
        held: Container[str] = ()) -> Iterator[dict[str, Any]]:
    """The calls whose retention period is over (oldest first, as `records` come)."""
    for record in records:
        started = started_wall(record)
        if started is None or kept(record, policy, held):
            continue
        if now - started >= policy.days_for(record.get("direction")) * 86400:
            yield record


@dataclass(frozen=True)
class DiskState:
    total: int
    free: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free / self.total if self.total else 100.0


class Keeper:
    """Carries out retention and the disk guard on one data directory (the finisher's thread in
    the service; `callrec prune` alone)."""

    def __init__(self, data_dir: Path, index: CallIndex, chain: Chain, audit: AuditLog, policy: RetentionConfig,
                 bus: EventBus | None = None, *, disk: Callable[[], DiskState] | None = None,
                 keep_local_days: float | None = None,
                 remote_delete: Callable[[dict[str, Any]], None] | None = None,
                 witness: Callable[[], Witness | None] | None = None) -> None:
        """`keep_local_days`: with an archive, local copies it confirmed go after this long;
        `remote_delete`: retention applies to the archive too (`[archive] apply_retention`);
        `witness`: the heads the device last handed out (the event journal's), which the chain
        must still hold before anything is deleted."""
        self.witness = witness
        self.suspended: str | None = None   # why the last pass deleted nothing, if it was suspended
        self.keep_local_days = keep_local_days
        self.remote_delete = remote_delete
        self.data_dir = data_dir
        self.index = index
        self.chain = chain
        self.audit = audit
        self.policy = policy
        self.bus = bus
        self._disk = disk or (lambda: _disk_state(data_dir))
        self._alarms: set[str] = set()
        self._chain_held: dict[str, dict[str, Any]] = {}
        self.next_prune = 0.0

    # ---- retention --------------------------------------------------------------------------------

    def prune(self, now: float | None = None, *, dry_run: bool = False,
              by: str = "device:retention") -> list[dict[str, Any]]:
        """Delete every call whose retention period is over; returns those (would be) deleted."""
        moment = time.time() if now is None else now
        candidates = list(self._checked(self._older_than(moment - self._shortest_days() * 86400)))
        victims = list(due(candidates, moment, self.policy, self._chain_held))
        if victims and not dry_run and not self._may_delete():
            return []
        if not dry_run:
            for record in victims:
                days = self.policy.days_for(record.get("direction"))
                self.delete(record, f"retention: older than {days} days", by)
        return victims

    def _shortest_days(self) -> int:
        return min(d for d in (self.policy.days, self.policy.inbound_days, self.policy.outbound_days) if d)

    def _older_than(self, cutoff: float) -> Iterator[dict[str, Any]]:
        """Calls oldest first, up to the first one that started after `cutoff` (call ids sort by
        their start, so an hourly prune reads only what may be due, not the whole index)."""
        limit = dt.datetime.fromtimestamp(cutoff, tz=dt.UTC).strftime("%Y%m%dT%H%M%S") + "999Z~"
        for record in self.index:
            if str(record.get("call_id", "")) > limit:
                return
            yield record

    def tick(self, now: float | None = None, *, after_call: bool = False) -> None:
        """After each call and on the finisher's timer: prune after each call and at least hourly,
        guard the disk every time."""
        moment = time.time() if now is None else now
        if after_call or moment >= self.next_prune:
            self.next_prune = moment + PRUNE_EVERY_S
            self.prune(moment)
            self.offload(moment)
        self.guard()

    def offload(self, now: float | None = None) -> list[str]:
        """Local copies the archive has confirmed, older than `keep_local_days` and not held, go;
        the index keeps the record (`offloaded_at`), the chain an `offloaded` entry."""
        if self.keep_local_days is None:
            return []
        moment = time.time() if now is None else now
        due_now = [record for record in self._checked(self._older_than(moment - self.keep_local_days * 86400))
                   if record.get("archived_at") and not record.get("offloaded_at") and not self._held(record)
                   and (record.get("recording") or {}).get("path")]
        if due_now and not self._may_delete():
            return []
        for record in due_now:
            self._offload_one(record, moment, f"local copy kept {self.keep_local_days:g} days")
        return [record["call_id"] for record in due_now]

    def _offload_one(self, record: dict[str, Any], moment: float, why: str) -> None:
        audio = self.data_dir / record["recording"]["path"]
        for victim in (audio, sidecar_of(audio)):
            victim.unlink(missing_ok=True)
        self.index.update(record["call_id"], {"offloaded_at": utc_iso(moment)})
        self.chain.note("offloaded", record["call_id"], by="device:archive",
                        reason=f"archived at {record['archived_at']}; {why}")
        log.info("local copy of %s removed: it is in the archive (%s)", record["call_id"], why)

    def delete(self, record: dict[str, Any], reason: str, by: str) -> None:
        """Audio, sidecar and index entry together, then the chain entry and the audit entry."""
        call_id = record["call_id"]
        path = (record.get("recording") or {}).get("path")
        removed = []
        if self.remote_delete is not None and record.get("archived_at"):
            self.remote_delete(record)
        if path:
            audio = self.data_dir / path
            for victim in (audio, sidecar_of(audio)):
                if victim.exists():
                    victim.unlink(missing_ok=True)   # another process may be pruning too
                    removed.append(victim.name)
        self.index.remove(call_id)
        self.chain.note("deleted", call_id, by=by, reason=reason,
                        recording_sha256=(record.get("recording") or {}).get("sha256"))
        self.audit.try_record("deleted", by, {"call_id": call_id, "reason": reason, "files": removed})
        log.info("deleted %s (%s)", call_id, reason)
        if self.bus is not None:
            self.bus.emit(Event("recording.deleted", record.get("line"), call_id, time.time(),
                                {"reason": reason, "by": by}))

    # ---- legal holds: the chain's word and the index's ------------------------------------------------

    def _may_delete(self) -> bool:
        """Asked before the first deletion or offload of a pass: the chain still holds what the device
        witnessed (else the critical alarm `retention.suspended`, cleared once it does again)."""
        problem = self._chain_problem()
        self.suspended = problem
        if problem is None:
            self._clear(ALARM_SUSPENDED, "evidence")
            return True
        self._raise(ALARM_SUSPENDED, "critical", f"{problem}; retention, offload and the disk guard delete nothing "
                                                 "until it does again (`callrec verify` names what changed; restore "
                                                 "the chain from the archive)", "evidence")
        return False

    def _chain_problem(self) -> str | None:
        rewritten = self.chain.rewritten()
        if rewritten is not None:
            return f"the evidence chain was rewritten behind the device's back ({rewritten})"
        witness = self.witness() if self.witness is not None else None
        head = witness.heads.chain if witness is not None else None
        if witness is None or head is None:
            return None
        found = self.chain.ledger.hash_at(head.seq)
        if found == head.hash:
            return None
        what = "no longer holds" if found is None else "holds another"
        when = f" at {witness.at}" if witness.at else ""
        return f"the evidence chain {what} entry seq {head.seq}, which {witness.source} witnessed{when}"

    def _checked(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The records, each compared with the chain's holds (read once per pass, incrementally:
        `self._chain_held` is fresh before the first record is looked at)."""
        self._chain_held = self.chain.holds()
        for record in records:
            self._held(record)
            yield record

    def _held(self, record: dict[str, Any]) -> bool:
        """Held by either the chain or the index (the safer answer); a disagreement is logged and
        raised as an alarm once, and cleared when they agree again."""
        call_id = str(record.get("call_id"))
        in_chain, in_index = call_id in self._chain_held, bool(record.get("hold"))
        alarm = ALARM_HOLD + call_id
        if in_chain == in_index:
            self._clear(alarm, "evidence")
        elif alarm not in self._alarms:
            message = (f"call {call_id}: the evidence chain holds it under legal hold but the index does not "
                       "(the index was edited?)" if in_chain else
                       f"call {call_id}: the index marks it as held but the evidence chain has no hold for it "
                       "(a chain entry lost or cut?)") + "; the call is kept; `callrec verify` names it"
            log.warning("%s", message)
            self._raise(alarm, "critical", message, "evidence")
        return in_chain or in_index

    # ---- the disk guard ---------------------------------------------------------------------------

    def guard(self) -> DiskState:
        """Below twice `min_free_percent` an alarm; below it the oldest unheld calls go, until the
        disk is above it again; when only kept calls remain, a critical alarm."""
        state = self._disk()
        floor = self.policy.min_free_percent
        if floor <= 0:
            return state
        suspended = state.free_percent < floor and not self._may_delete()
        if not suspended and state.free_percent < floor and self.keep_local_days is not None:
            # first what costs nothing: local copies the archive already holds
            for record in self._checked(iter(self.index)):
                if not record.get("archived_at") or record.get("offloaded_at") or self._held(record):
                    continue
                self._offload_one(record, time.time(), "disk guard")
                state = self._disk()
                if state.free_percent >= floor:
                    break
        if suspended:
            self._raise(ALARM_FULL, "critical", f"the disk is {100 - state.free_percent:.1f} % full and the guard "
                                                "deletes nothing while the evidence chain does not hold what the "
                                                "device witnessed (alarm retention.suspended): new calls are recorded "
                                                "until the disk is full; run `callrec verify`")
        elif state.free_percent < floor:
            for record in self._checked(iter(self.index)):
                if kept(record, self.policy, self._chain_held) or not record.get("recording") \
                        or record.get("offloaded_at"):
                    continue
                self.delete(record, f"disk guard: {state.free_percent:.1f} % free, below {floor:g} %",
                            "device:disk-guard")
                state = self._disk()
                if state.free_percent >= floor:
                    break
            if state.free_percent < floor:
                self._raise(ALARM_FULL, "critical", self._nothing_deletable(state))
        else:
            self._clear(ALARM_FULL)
        if state.free_percent < 2 * floor:
            self._raise(ALARM_LOW, "warning", f"the disk has {state.free_percent:.1f} % free (the guard deletes "
                                              f"the oldest unheld recordings below {floor:g} %)")
        else:
            self._clear(ALARM_LOW)
        return state

    def _nothing_deletable(self, state: DiskState) -> str:
        """What the disk guard can say truthfully when nothing it may delete is left."""
        held = marked = 0
        for record in self.index:
            if not (record.get("recording") or {}).get("path") or record.get("offloaded_at"):
                continue
            why = kept(record, self.policy, self._chain_held)
            held += why == "under legal hold"
            marked += why == "marked"
        kept_part = (f"{held} held and {marked} marked recording(s) are kept" if held or marked
                     else "no recordings are left")
        return (f"the disk is {100 - state.free_percent:.1f} % full and no recording the guard may delete remains "
                f"({kept_part}; the rest is other data): new calls are recorded until the disk is full; "
                "release holds, offload, or free the other data")

    def _raise(self, alarm_id: str, severity: str, message: str, kind: str = "storage") -> None:
        if alarm_id in self._alarms:
            return
        self._alarms.add(alarm_id)
        log.warning("%s", message)
        if self.bus is not None:
            self.bus.emit(Event("alarm.raised", None, None, time.time(),
                                {"id": alarm_id, "kind": kind, "severity": severity, "message": message}))

    def _clear(self, alarm_id: str, kind: str = "storage") -> None:
        if alarm_id not in self._alarms:
            return
        self._alarms.discard(alarm_id)
        if self.bus is not None:
            self.bus.emit(Event("alarm.cleared", None, None, time.time(), {"id": alarm_id, "kind": kind}))


def _disk_state(data_dir: Path) -> DiskState:
    with contextlib.suppress(OSError):
        usage = shutil.disk_usage(data_dir)
        return DiskState(usage.total, usage.free)
    return DiskState(0, 0)
