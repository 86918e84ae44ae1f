"""Recovery: turn the part files a killed process left into registered `recovered` recordings.

Run at every start (`run`, `simulate`) before any new call, and alone as `callrec recover`. Whatever
whole frames reached the disk are kept; the call record is rebuilt from the part's metadata (written
at the off-hook and updated at the answer and the announcement). A part that cannot be used is moved
to `DATA/quarantine/` with an alarm rather than retried forever: no crash loop, no litter.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from callrec.bus import EventBus
from callrec.events import Event, utc_iso
from callrec.recording.files import META_SUFFIX, PART_SUFFIX, finalize, recordings_root, write_json_atomic
from callrec.recording.recorder import emit_ended, emit_saved, recording_fields
from callrec.store.index import CallIndex

log = logging.getLogger(__name__)


def recover_all(data_dir: Path, fmt: str, index: CallIndex, bus: EventBus) -> list[dict[str, Any]]:
    """Recover every part under the data directory; returns the records registered."""
    recovered = []
    root = recordings_root(data_dir)
    if not root.exists():
        return recovered
    for part in sorted(root.rglob(f"*{PART_SUFFIX}")):
        call_id = part.name.removesuffix(PART_SUFFIX)
        meta_path = part.with_name(call_id + META_SUFFIX)
        try:
            record = _recover_one(data_dir, part, meta_path, call_id, fmt, index, bus)
        except Exception as error:  # unreadable metadata, bad file: set it aside, keep going
            log.exception("cannot recover %s", part)
            _quarantine(data_dir, [part, meta_path])
            bus.emit(Event("alarm.raised", None, call_id, time.time(), {
                "id": f"recover:{call_id}", "kind": "recording",
                "message": f"partial recording {part.name} could not be recovered ({error}); "
                           f"moved to quarantine/",
            }))
            continue
        recovered.append(record)
    for stray in root.rglob(f"*{META_SUFFIX}"):
        if not stray.with_name(stray.name.removesuffix(META_SUFFIX) + PART_SUFFIX).exists():
            stray.unlink()  # metadata whose audio never reached the disk
    for tmp in root.rglob("*.tmp"):
        tmp.unlink()  # a finalize interrupted before its rename; its part is still there
    return recovered


def _recover_one(
    data_dir: Path, part: Path, meta_path: Path, call_id: str, fmt: str, index: CallIndex, bus: EventBus
) -> dict[str, Any]:
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    rate = int(meta["sample_rate"])
    final = finalize(part, part.with_name(f"{call_id}.{fmt}"), fmt, rate)
    duration = final.frames / rate - float(meta.get("preroll_s", 0.0))
    started_wall = float(meta["started_wall"])
    ended_wall = started_wall + max(duration, 0.0)
    record: dict[str, Any] = dict(meta.get("record", {}))
    record.update(
        call_id=call_id,
        line=int(meta["line"]),
        ended_at=utc_iso(ended_wall),
        duration_s=round(max(duration, 0.0), 3),
        recording=recording_fields(final, data_dir),
        status="recovered",
    )
    record.setdefault("errors", []).append(
        "recording interrupted (power loss or crash); recovered what reached the disk"
    )
    write_json_atomic(final.path.with_suffix(".json"), record)
    index.add(record)
    part.unlink()
    meta_path.unlink(missing_ok=True)
    now = time.time()
    emit_saved(bus, record, final, now, recovered=True)
    emit_ended(bus, record, now)
    for stale in (f"recording:{call_id}", f"index:{call_id}"):   # what its failure had raised is over
        bus.emit(Event("alarm.cleared", record["line"], call_id, now, {"id": stale, "kind": "recording"}))
    log.info("recovered %s (%.1f s)", call_id, duration)
    return record


def _quarantine(data_dir: Path, paths: list[Path]) -> None:
    target = data_dir / "quarantine"
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists():
            shutil.move(str(path), target / path.name)
