"""Recovery and reconciliation: what is on the disk and what the index says become one again.

Run at every start (`run`, `simulate`) before any new call, and alone as `callrec recover`. One
walk over `DATA/recordings/` finds:
- part files a killed process left: whatever whole frames reached the disk become a `recovered`
  recording. The record comes from the part's metadata (written at the off-hook, updated at the
  answer, the announcement, each storage gap and the hang-up; on a full disk in place in the
  part's reserve, files.py): a call that ended keeps the length, gaps and errors its process knew,
  and the reason it could not be finalized; a call the process never saw end says that its end is
  not known. When the metadata is unreadable the audio is still recovered, with the line, start
  and rate inferred from the file name and the configuration, and the record says so. A part that
  cannot be recovered now (a full disk, an unreadable file) is kept and listed in `postponed`,
  with what was wrong, for `callrec recover` to report and exit non-zero. Only a part whose name
  says nothing (no call id) goes to `DATA/quarantine/` (`callrec recover --list-quarantine` lists
  it) with an alarm: no crash loop, no litter;
- finalized recordings the index lacks (a damaged or lost index, a call whose indexing failed):
  indexed again from their sidecars, or, without one, from the recording file itself;
- index entries whose recording file is gone: marked `missing_since` (and back when the file
  returns), reported, and raised as one alarm, never shown as a plain `complete` call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile

from callrec.errors import CallrecError
from callrec.events import Event, EventBus, utc_iso
from callrec.evidence import Chain, link, parse_json
from callrec.privacy import scan_frames
from callrec.recording.diskerrors import describe_error
from callrec.recording.files import (
    ENCRYPTED_PART_SUFFIX,
    META_SUFFIX,
    PART_SUFFIX,
    RECOVERED_FRAMES_SUFFIX,
    RESERVE_SUFFIX,
    call_id_of,
    finalize,
    gaps_in_call,
    keep_encrypted_part,
    read_part_meta,
    recordings_root,
    reserve_path,
    sidecar_path,
    timeline_frames,
    write_sidecar,
)
from callrec.recording.finisher import emit_ended, emit_saved, recording_fields
from callrec.store import CallIndex, Journal

log = logging.getLogger(__name__)

CALL_ID = re.compile(r"^(\d{8}T\d{6})(\d{3})Z-L(\d+)-[0-9a-f]+$")
AUDIO_SUFFIXES = (".flac", ".wav", ".flac.age", ".wav.age", RECOVERED_FRAMES_SUFFIX)
PART_SUFFIXES = (PART_SUFFIX, ENCRYPTED_PART_SUFFIX)
OUR_SUFFIXES = (*PART_SUFFIXES, META_SUFFIX, RESERVE_SUFFIX, *AUDIO_SUFFIXES, ".json")
ALARM_MISSING = "recordings.missing"


@dataclass
class Reconciled:
    """What one pass found and did; `recovered` are the index records of recovered parts."""

    recovered: list[dict[str, Any]] = field(default_factory=list)
    reindexed: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    postponed: list[Postponed] = field(default_factory=list)   # parts kept: they could not be recovered now
    index_postponed: Postponed | None = None   # the index could not be reconciled with the disk now


@dataclass(frozen=True)
class Postponed:
    """What recovery could not do now: which part, what was wrong (the disk is full, with the path),
    and what to do about it."""

    part: str
    why: str
    todo: str

    @classmethod
    def of(cls, part: str, error: BaseException, data_dir: Path, where: Path | None = None,
           why: str = "{}") -> Postponed:
        """`why` frames the described error (`{}`); `where` names the file when the error does not."""
        described = describe_error(error, where)
        todo = (f"Free space on the disk of {data_dir}, then run `callrec recover` again (every start tries too)."
                if described.startswith("the disk is full") else
                "Fix the cause named, then run `callrec recover` again (every start tries too).")
        return cls(part, why.format(described), todo)


class Unrecoverable(CallrecError, ValueError):
    """A part that names no call and has no readable metadata: nothing can be registered."""


@dataclass
class _Found:
    parts: list[Path] = field(default_factory=list)
    metas: list[Path] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)
    audio: dict[str, Path] = field(default_factory=dict)      # call_id -> final recording
    sidecars: dict[str, Path] = field(default_factory=dict)   # call_id -> sidecar
    strange: list[Path] = field(default_factory=list)         # named like ours, not a regular file


def recover_all(data_dir: Path, fmt: str, index: CallIndex, bus: EventBus, *, rate: int = 8000,
                preroll_s: float = 0.0, chain: Chain | None = None, journal_required: bool = False) -> Reconciled:
    """Recover every part and reconcile the index with the disk; never raises for one bad file.

    With a `chain`, recovered calls are sealed into it, and records indexed again from their
    sidecars get their chain link back. `journal_required` (a short-lived `callrec recover`): while
    the journal cannot be opened, parts are left as they are, because the events that record their
    recovery (`recording.saved`, a `call.ended` never journaled) would be held in memory and lost
    at exit; a running service keeps them until the journal takes them."""
    result = Reconciled()
    root = recordings_root(data_dir)
    if not root.exists():
        with contextlib.suppress(sqlite3.Error):
            _report_missing(index, bus, _Found(), result, data_dir)
        return result
    found = _walk(root)
    for path in found.strange:
        log.error("%s is not a regular file (a symlink, a FIFO, a device): not read", path)
        result.postponed.append(Postponed(
            path.name, f"{path} is not a regular file (a symlink, a FIFO, a device), so it was not read",
            "A recording or its metadata is always a regular file: look at it, and remove it or put the real "
            "file in its place; then run `callrec recover` again."))
    journal_down = bus.journal.unavailable if journal_required else None
    for part in found.parts:
        if journal_down is not None:
            result.postponed.append(Postponed.of(part.name, sqlite3.OperationalError(journal_down), data_dir,
                                                 bus.journal.path, "the event journal cannot be written ({}), and "
                                                 "what recovery does must be journaled"))
            continue
        call_id = call_id_of(part)
        meta_path = part.with_name(call_id + META_SUFFIX)
        try:
            record = _recover_one(data_dir, part, meta_path, call_id, fmt, index, bus, rate, preroll_s, chain)
        except Unrecoverable as error:  # nothing says what call this is: set it aside, keep going
            log.error("cannot recover %s: %s", part, error)
            _quarantine(data_dir, [part, meta_path])
            result.quarantined.append(part.name)
            bus.emit(Event("alarm.raised", None, None, time.time(), {
                "id": f"recover:{call_id}", "kind": "recording",
                "message": f"partial recording {part.name} could not be recovered ({error}); moved to "
                           f"{quarantine_dir(data_dir)} (`callrec recover --list-quarantine`)",
            }))
            continue
        except Exception as error:  # the disk or the index refuse now: the part stays for next time
            postponed = Postponed.of(part.name, error, data_dir)
            log.error("cannot recover %s now: %s", part, postponed.why)
            result.postponed.append(postponed)
            bus.emit(Event("alarm.raised", None, call_id, time.time(), {
                "id": f"recover:{call_id}", "kind": "recording",
                "message": f"partial recording {part.name} could not be recovered now: {postponed.why}; it is "
                           "kept and tried again at the next start or `callrec recover`",
            }))
            continue
        result.recovered.append(record)
        found.audio[call_id] = data_dir / record["recording"]["path"]
        found.sidecars[call_id] = sidecar_path(found.audio[call_id])
    for stray in found.metas:
        stem = stray.name.removesuffix(META_SUFFIX).removesuffix(RESERVE_SUFFIX)
        if not any(stray.with_name(stem + suffix).exists() for suffix in PART_SUFFIXES):
            with contextlib.suppress(OSError):
                stray.unlink()  # metadata whose audio never reached the disk
    for tmp in found.temporaries:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a finalize interrupted before its rename; its part is still there
    try:
        _reindex(data_dir, fmt, index, found, result, chain)
        _report_missing(index, bus, found, result, data_dir)
    except sqlite3.Error as error:   # the index cannot be read or written now (a full disk)
        log.error("reconciling the index with the recordings is postponed: %s", error)
        result.index_postponed = Postponed.of(index.path.name, error, data_dir, index.path)
    return result


def _walk(root: Path) -> _Found:
    found = _Found()
    for directory, _dirs, files in os.walk(root):
        base = Path(directory)
        for name in files:
            path = base / name
            if name.endswith(OUR_SUFFIXES) and not _regular(path):
                found.strange.append(path)   # never opened: a FIFO would hang, a symlink read another file
            elif name.endswith(PART_SUFFIXES):
                found.parts.append(path)
            elif name.endswith((META_SUFFIX, RESERVE_SUFFIX)):
                found.metas.append(path)
            elif name.endswith(".tmp"):
                found.temporaries.append(path)
            elif name.endswith(AUDIO_SUFFIXES):
                found.audio[call_id_of(path)] = path
            elif name.endswith(".json"):
                found.sidecars[call_id_of(path)] = path
    found.parts.sort()
    return found


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return True   # gone meanwhile: whoever opens it next says so


# ---- parts ---------------------------------------------------------------------------------------


def _recover_one(data_dir: Path, part: Path, meta_path: Path, call_id: str, fmt: str, index: CallIndex,
                 bus: EventBus, rate: int, preroll_s: float, chain: Chain | None) -> dict[str, Any]:
    meta, problem = _read_meta(meta_path)
    if meta is None:
        meta = _inferred_meta(call_id, rate, preroll_s)   # raises when the name says nothing
    final_record = meta.get("final") if isinstance(meta.get("final"), dict) else None
    rate = int(meta["sample_rate"])
    gaps = listed if isinstance(listed := meta.get("gaps"), list) else []
    frames = final_record.get("frames") if final_record else None
    max_frames = frames if isinstance(frames, int) and not isinstance(frames, bool) else None
    if part.name.endswith(ENCRYPTED_PART_SUFFIX):   # its key died with the process: kept as it is
        final = keep_encrypted_part(part)
        part_frames = final.frames
        # the file holds the audio only; its gaps are stated in the record, and cover the line as well
        line_frames = timeline_frames(part_frames, gaps, max_frames)
    else:
        part_frames = part.stat().st_size // 2
        final = finalize(part, part.with_name(f"{call_id}.{fmt}"), fmt, rate, max_frames, gaps)
        line_frames = final.frames   # silence written in the gaps
    preroll = float(meta.get("preroll_s", 0.0))
    known = index.get(call_id)
    call_gaps = gaps_in_call(gaps, rate, preroll, max_frames)
    recorded_s = max(line_frames / rate - preroll, 0.0)   # the line's timeline covered, from the off-hook
    if final_record is not None:
        record = {key: value for key, value in final_record.items() if key != "frames"}
        notes = [_why_not_finalized(meta)]
        duration = record.get("duration_s")
        if isinstance(duration, int | float) and duration - recorded_s > 0.5:
            notes.append(f"the recording covers {recorded_s:.1f} s of the {duration:.1f} s call: the rest "
                         "reached the disk neither as audio nor as a stated gap")
    else:
        started_wall = float(meta["started_wall"])
        record = dict(meta.get("record", {}))
        record.update(ended_at=utc_iso(started_wall + recorded_s), duration_s=round(recorded_s, 3))
        notes = [_interrupted(gaps, part_frames, call_gaps, recorded_s)]
    record.update(call_id=call_id, line=int(meta["line"]), recording=recording_fields(final, data_dir),
                  status="recovered", gaps=call_gaps)
    record["errors"] = [*(record.get("errors") or []), *notes, *([problem] if problem else [])]
    record = write_sidecar(final.path, record)
    if chain is not None:
        try:
            record["chain"] = chain.seal_call(record, final.path, sidecar_path(final.path))
        except OSError as error:
            log.error("the evidence chain cannot take recovered %s: %s", call_id, error)
    index.add(record)
    part.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    reserve_path(meta_path).unlink(missing_ok=True)
    now = time.time()
    emit_saved(bus, record, final, now, recovered=True)
    if _ended_unsaid(meta, known, bus.journal, call_id):   # call.ended is sent once, and never lost
        emit_ended(bus, record, now)
    for stale in (f"recording:{call_id}", f"index:{call_id}"):   # what its failure had raised is over
        bus.emit(Event("alarm.cleared", record["line"], call_id, now, {"id": stale, "kind": "recording"}))
    log.info("recovered %s (%.1f s of the line)", call_id, line_frames / rate)
    return record


def _interrupted(gaps: list[Any], part_frames: int, call_gaps: list[dict[str, Any]], recorded_s: float) -> str:
    """What is known of a call whose process went away before it ended: when the part ends in a
    storage gap, the disk was full then, and only a lower bound of its length is known."""
    last = max(gaps, key=lambda gap: int(gap["frame"]), default=None)
    if last is not None and last.get("cause") == "storage" and int(last["frame"]) >= part_frames and call_gaps:
        return (f"the service stopped during the call while the disk was full (from {call_gaps[-1]['at_s']:.1f} s "
                f"of the call): its end was not recorded; it lasted at least {recorded_s:.1f} s")
    return "recording interrupted (power loss or crash); recovered what reached the disk"


def _why_not_finalized(meta: dict[str, Any]) -> str:
    """The cause the process recorded when finalizing failed, else what is known: it stopped first."""
    unfinalized = meta.get("unfinalized")
    reason = unfinalized.get("reason") if isinstance(unfinalized, dict) else None
    if isinstance(reason, str) and reason:
        return f"the recording could not be finalized when the call ended: {reason}; recovered from its part"
    return ("the service stopped (power loss, crash or kill) before the recording was finalized; recovered "
            "from its part")


def _ended_unsaid(meta: dict[str, Any], known: dict[str, Any] | None, journal: Journal, call_id: str) -> bool:
    """Whether `call.ended` must be sent now. The process that ended the call recorded the `seq` of
    its `call.ended` (finisher.py); the journal holding it says it was journaled. Its absence proves
    it never was (stamped while the journal could not be written, the process ended first) only
    where the journal would hold it: events on both sides of that `seq`, or a span the journal
    notes it skipped because its numbers were stamped while it could not be written, since pruning
    (the MQTT bounds) takes the oldest rows and a journal replaced after damage starts above every
    number handed out before. Otherwise it may well have been told: once is the promise (docs/events.md),
    so it is not sent again, and the log says so. Without that record: only when the index never
    heard of the call."""
    ended = meta.get("ended_event")
    seq = ended.get("seq") if isinstance(ended, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool):
        return known is None
    try:
        oldest = journal.since(0, limit=1)
        at = journal.since(seq - 1, limit=1)
    except (sqlite3.Error, ValueError, KeyError, TypeError, RecursionError) as error:
        log.warning("call.ended of %s (seq %d) not sent again: the journal cannot be read (%s); it may already "
                    "have been told", call_id, seq, error)
        return False
    if at and at[0].seq == seq:
        return not (at[0].event.type == "call.ended" and at[0].event.call_id == call_id)
    if oldest and oldest[0].seq < seq and at:
        return True   # events on both sides, not that one: never journaled
    if journal.never_stored(seq):
        return True   # handed out while the journal could not be written, and the process ended first
    around = (f"its oldest event is seq {oldest[0].seq}" if oldest else
              f"it cannot be read now ({journal.unavailable})" if journal.unavailable else "it holds no events")
    log.warning("call.ended of %s (seq %d) is not in the journal, but %s (pruned past it, or replaced): not sent "
                "again; it may already have been told", call_id, seq, around)
    return False


def _read_meta(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        meta = read_part_meta(path)
        int(meta["sample_rate"])
        int(meta["line"])
        float(meta["started_wall"])
    except FileNotFoundError:
        return None, f"part metadata {path.name} was missing: line, start and rate inferred from the file name"
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        return None, (f"part metadata {path.name} was unreadable ({str(error)[:80]}): line, start and rate "
                      "inferred from the file name")
    return meta, None


def _inferred_meta(call_id: str, rate: int, preroll_s: float) -> dict[str, Any]:
    match = CALL_ID.match(call_id)
    if match is None:
        raise Unrecoverable(f"its metadata is unreadable and its name {call_id!r} is not a call id")
    moment = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    started = moment.timestamp() + int(match.group(2)) / 1000
    line = int(match.group(3))
    return {"call_id": call_id, "line": line, "sample_rate": rate, "started_wall": started,
            "preroll_s": preroll_s,
            "record": {"call_id": call_id, "line": line, "started_at": utc_iso(started), "metadata_lost": True}}


# ---- the index against the disk ------------------------------------------------------------------


def _reindex(data_dir: Path, fmt: str, index: CallIndex, found: _Found, result: Reconciled,
             chain: Chain | None) -> None:
    """Every finalized recording the index lacks goes back in, from its sidecar or its audio.

    Nothing is sealed here: a file that appeared with no chain entry is what `verify` must name
    (files nobody indexed), not something to vouch for now."""
    indexed = index.call_ids()
    lacking = chain is not None and bool(set(found.sidecars) - indexed)
    sealed = chain.sealed() if chain is not None and lacking else {}
    holds = chain.holds() if chain is not None and lacking else {}
    for call_id in sorted(set(found.sidecars) | set(found.audio)):
        if call_id in indexed:
            continue
        sidecar = found.sidecars.get(call_id)
        record = _sidecar_record(sidecar) if sidecar is not None else None
        if record is not None and record.get("call_id") == call_id:
            if call_id in sealed:
                record["chain"] = link(sealed[call_id])
            if call_id in holds:   # a legal hold outlives the index it was written in
                record["hold"] = holds[call_id]
            try:
                index.add(record)
            except ValueError as error:
                log.warning("sidecar %s does not hold a valid call record (%s)", sidecar, error)
            else:
                result.reindexed.append(call_id)
                continue
        audio = found.audio.get(call_id)
        if audio is None or CALL_ID.match(call_id) is None:
            continue   # a sidecar without its recording: reported as missing once indexed, or ignored
        try:
            rebuilt = _record_from_audio(data_dir, call_id, audio, sidecar)
            rebuilt = write_sidecar(audio, rebuilt)
            index.add(rebuilt)
        except (OSError, RuntimeError, ValueError) as error:
            log.warning("cannot index %s again: %s", audio, error)
            continue
        result.rebuilt.append(call_id)
    if result.reindexed or result.rebuilt:
        log.warning("indexed %d recording(s) again from their sidecars and %d from the audio alone",
                    len(result.reindexed), len(result.rebuilt))


def _sidecar_record(path: Path) -> dict[str, Any] | None:
    try:
        record = parse_json(path.read_bytes())   # deep nesting, bad UTF-8: a ValueError like the rest
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _record_from_audio(data_dir: Path, call_id: str, audio: Path, sidecar: Path | None) -> dict[str, Any]:
    match = CALL_ID.match(call_id)
    assert match is not None
    encryption = None
    if audio.name.endswith(RECOVERED_FRAMES_SUFFIX):
        scanned = scan_frames(audio)   # the clear frame prefixes say how long it is; no key needed
        frames, samplerate, fmt, encryption = scanned.frames, scanned.rate, "pcm", "age-frames"
    elif audio.name.endswith(".age"):
        raise ValueError("an encrypted recording without its sidecar: its length is not known without the "
                         "office key; decrypt it on the office PC (`callrec decrypt`)")
    else:
        info = soundfile.info(str(audio))
        frames, samplerate, fmt = info.frames, info.samplerate, audio.suffix.lstrip(".")
    with open(audio, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    moment = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    started = moment.timestamp() + int(match.group(2)) / 1000
    why = "unreadable" if sidecar is not None else "missing"
    return {
        "call_id": call_id, "line": int(match.group(3)), "direction": None,
        "started_at": utc_iso(started), "ended_at": utc_iso(started + frames / samplerate),
        "duration_s": round(frames / samplerate, 3),
        "recording": {"path": str(audio.relative_to(data_dir)), "format": fmt, "encryption": encryption,
                      "bytes": audio.stat().st_size, "sha256": digest, "sample_rate": samplerate},
        "status": "recovered", "metadata_lost": True,
        "errors": [f"the call's sidecar was {why}: the record was rebuilt from the recording file "
                   "(duration includes the pre-roll)"],
    }


def _report_missing(index: CallIndex, bus: EventBus, found: _Found, result: Reconciled, data_dir: Path) -> None:
    """Index entries whose recording is gone are marked, reported and alarmed; back when it returns."""
    present = {str(path.relative_to(data_dir)) for path in found.audio.values()}
    now = utc_iso(time.time())
    for call_id, path, missing_since in index.recording_paths():
        if path in present:
            if missing_since is not None:
                index.update(call_id, {"missing_since": None})
            continue
        result.missing.append(call_id)
        if missing_since is None:
            index.update(call_id, {"missing_since": now})
    if result.missing:
        shown = ", ".join(result.missing[:5]) + (" …" if len(result.missing) > 5 else "")
        log.error("%d recording(s) named in the index are missing from %s: %s", len(result.missing),
                  recordings_root(data_dir), shown)
        bus.emit(Event("alarm.raised", None, None, time.time(), {
            "id": ALARM_MISSING, "kind": "recording",
            "message": f"{len(result.missing)} recording(s) named in the index are missing from the disk "
                       f"({shown}); `callrec recover` lists them"}))


# ---- quarantine ----------------------------------------------------------------------------------


def quarantine_dir(data_dir: Path) -> Path:
    return data_dir / "quarantine"


def _quarantine(data_dir: Path, paths: list[Path]) -> None:
    target = quarantine_dir(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists():
            shutil.move(str(path), target / path.name)


def list_quarantine(data_dir: Path) -> list[tuple[str, int]]:
    """What quarantine holds: (file name, bytes), oldest name first."""
    target = quarantine_dir(data_dir)
    if not target.is_dir():
        return []
    return sorted((entry.name, entry.stat().st_size) for entry in target.iterdir() if entry.is_file())
