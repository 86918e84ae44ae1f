"""Recovery and reconciliation: what is on the disk and what the index says become one again.

Run at every start (`run`, `simulate`) before any new call, and alone as `callrec recover`. One
walk over `DATA/recordings/` finds:
- part files a killed process left: whatever whole frames reached the disk become a `recovered`
  recording. The record comes from the part's metadata (written at the off-hook, updated at the
  answer, the announcement and the hang-up); when that is unreadable the audio is still recovered,
  with the line, start and rate inferred from the file name and the configuration, and the record
  says so. Only a part whose name says nothing (no call id) goes to `DATA/quarantine/`
  (`callrec recover --list-quarantine` lists it) with an alarm: no crash loop, no litter;
- finalized recordings the index lacks (a damaged or lost index, a call whose indexing failed):
  indexed again from their sidecars, or, without one, from the recording file itself;
- index entries whose recording file is gone: marked `missing_since` (and back when the file
  returns), reported, and raised as one alarm, never shown as a plain `complete` call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile

from callrec.errors import CallrecError
from callrec.events import Event, EventBus, utc_iso
from callrec.evidence import Chain, link
from callrec.privacy import scan_frames
from callrec.recording.files import (
    ENCRYPTED_PART_SUFFIX,
    META_SUFFIX,
    PART_SUFFIX,
    RECOVERED_FRAMES_SUFFIX,
    call_id_of,
    finalize,
    gaps_in_call,
    keep_encrypted_part,
    recordings_root,
    sidecar_path,
    write_sidecar,
)
from callrec.recording.finisher import emit_ended, emit_saved, recording_fields
from callrec.store import CallIndex

log = logging.getLogger(__name__)

CALL_ID = re.compile(r"^(\d{8}T\d{6})(\d{3})Z-L(\d+)-[0-9a-f]+$")
AUDIO_SUFFIXES = (".flac", ".wav", ".flac.age", ".wav.age", RECOVERED_FRAMES_SUFFIX)
PART_SUFFIXES = (PART_SUFFIX, ENCRYPTED_PART_SUFFIX)
ALARM_MISSING = "recordings.missing"


@dataclass
class Reconciled:
    """What one pass found and did; `recovered` are the index records of recovered parts."""

    recovered: list[dict[str, Any]] = field(default_factory=list)
    reindexed: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    postponed: list[str] = field(default_factory=list)


class Unrecoverable(CallrecError, ValueError):
    """A part that names no call and has no readable metadata: nothing can be registered."""


@dataclass
class _Found:
    parts: list[Path] = field(default_factory=list)
    metas: list[Path] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)
    audio: dict[str, Path] = field(default_factory=dict)      # call_id -> final recording
    sidecars: dict[str, Path] = field(default_factory=dict)   # call_id -> sidecar


def recover_all(data_dir: Path, fmt: str, index: CallIndex, bus: EventBus, *, rate: int = 8000,
                preroll_s: float = 0.0, chain: Chain | None = None) -> Reconciled:
    """Recover every part and reconcile the index with the disk; never raises for one bad file.

    With a `chain`, recovered calls are sealed into it, and records indexed again from their
    sidecars get their chain link back."""
    result = Reconciled()
    root = recordings_root(data_dir)
    if not root.exists():
        with contextlib.suppress(sqlite3.Error):
            _report_missing(index, bus, _Found(), result, data_dir)
        return result
    found = _walk(root)
    for part in found.parts:
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
            log.error("cannot recover %s now: %s", part, error)
            result.postponed.append(part.name)
            bus.emit(Event("alarm.raised", None, call_id, time.time(), {
                "id": f"recover:{call_id}", "kind": "recording",
                "message": f"partial recording {part.name} could not be recovered now ({error}); it is kept "
                           "and tried again at the next start or `callrec recover`",
            }))
            continue
        result.recovered.append(record)
        found.audio[call_id] = data_dir / record["recording"]["path"]
        found.sidecars[call_id] = sidecar_path(found.audio[call_id])
    for stray in found.metas:
        stem = stray.name.removesuffix(META_SUFFIX)
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
    return result


def _walk(root: Path) -> _Found:
    found = _Found()
    for directory, _dirs, files in os.walk(root):
        base = Path(directory)
        for name in files:
            path = base / name
            if name.endswith(PART_SUFFIXES):
                found.parts.append(path)
            elif name.endswith(META_SUFFIX):
                found.metas.append(path)
            elif name.endswith(".tmp"):
                found.temporaries.append(path)
            elif name.endswith(AUDIO_SUFFIXES):
                found.audio[call_id_of(path)] = path
            elif name.endswith(".json"):
                found.sidecars[call_id_of(path)] = path
    found.parts.sort()
    return found


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
    if part.name.endswith(ENCRYPTED_PART_SUFFIX):   # its key died with the process: kept as it is
        final = keep_encrypted_part(part)
    else:
        final = finalize(part, part.with_name(f"{call_id}.{fmt}"), fmt, rate,
                         frames if isinstance(frames, int) else None, gaps)
    preroll = float(meta.get("preroll_s", 0.0))
    known = index.get(call_id)
    if final_record is not None:
        record = {key: value for key, value in final_record.items() if key != "frames"}
        note = "the recording could not be finalized when the call ended; recovered from its part"
    else:
        duration = max(final.frames / rate - preroll, 0.0)
        started_wall = float(meta["started_wall"])
        record = dict(meta.get("record", {}))
        record.update(ended_at=utc_iso(started_wall + duration), duration_s=round(duration, 3))
        note = "recording interrupted (power loss or crash); recovered what reached the disk"
    record.update(call_id=call_id, line=int(meta["line"]), recording=recording_fields(final, data_dir),
                  status="recovered", gaps=gaps_in_call(gaps, rate, preroll))
    record["errors"] = [*(record.get("errors") or []), note, *([problem] if problem else [])]
    record = write_sidecar(final.path, record)
    if chain is not None:
        try:
            record["chain"] = chain.seal_call(record, final.path, sidecar_path(final.path))
        except OSError as error:
            log.error("the evidence chain cannot take recovered %s: %s", call_id, error)
    index.add(record)
    part.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    now = time.time()
    emit_saved(bus, record, final, now, recovered=True)
    if known is None:   # a call that ended already said so (call.ended is sent once)
        emit_ended(bus, record, now)
    for stale in (f"recording:{call_id}", f"index:{call_id}"):   # what its failure had raised is over
        bus.emit(Event("alarm.cleared", record["line"], call_id, now, {"id": stale, "kind": "recording"}))
    log.info("recovered %s (%.1f s)", call_id, final.frames / rate)
    return record


def _read_meta(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
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
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
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
