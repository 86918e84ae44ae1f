"""Recording files on disk: where they live, the crash-safe part file, and finalizing.

While a call runs its audio goes to `<call_id>.pcm.part` (raw S16_LE, appended, fsync'd at least
every second) beside `<call_id>.part.json` (what is known of the call so far). Raw PCM is the one
format that stays valid whatever instant the process dies: recovery only has to count whole frames.
Finalizing streams the part into FLAC or WAV through libsndfile (a temporary name, fsync, rename,
so a reader never sees half a file), hashes the result and writes the JSON sidecar the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from callrec.store import CallRecord

PART_SUFFIX = ".pcm.part"
META_SUFFIX = ".part.json"
BLOCK_FRAMES = 8000 * 4


def write_sidecar(audio: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The call record beside its recording (`<call_id>.json`), as the one model of a call record
    has it (store/record.py): validated, every field present. Returns what was written."""
    document = CallRecord.model_validate(record).document()
    write_json_atomic(audio.with_suffix(".json"), document)
    return document


def recordings_root(data_dir: Path) -> Path:
    return data_dir / "recordings"


def day_dir(data_dir: Path, started_wall: float) -> Path:
    day = dt.datetime.fromtimestamp(started_wall, tz=dt.UTC)
    return recordings_root(data_dir) / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)   # a full disk: no half-written file left, the old one stays
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartWriter:
    """Appends one call's audio to its part file; `sync()` puts it on the disk.

    Writes are unbuffered: once `write()` returns, the audio is in the kernel's page cache and
    survives a kill of the process (only a power cut loses what `sync()` has not reached yet).
    A write the disk cannot take (full, failing) keeps whatever whole frames reached the file and
    raises; the frames that did not are the caller's to account for as a gap.
    """

    def __init__(self, directory: Path, call_id: str, meta: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.call_id = call_id
        self.part_path = directory / f"{call_id}{PART_SUFFIX}"
        self.meta_path = directory / f"{call_id}{META_SUFFIX}"
        self.meta = dict(meta)
        self.meta.setdefault("gaps", [])
        write_json_atomic(self.meta_path, self.meta)
        self._file = open(self.part_path, "wb", buffering=0)  # noqa: SIM115 - lives as long as the call
        _fsync_dir(directory)
        self.frames = 0
        self.last_sync = time.monotonic()

    def write(self, samples: np.ndarray) -> None:
        data = memoryview(samples.astype("<i2", copy=False).tobytes())
        done = 0
        try:
            while done < len(data):
                done += self._file.write(data[done:]) or 0
        finally:
            whole = done // 2
            if done % 2:   # half a frame reached the file: cut it, so later frames stay aligned
                os.ftruncate(self._file.fileno(), (self.frames + whole) * 2)
                self._file.seek((self.frames + whole) * 2)
            self.frames += whole

    def sync(self) -> None:
        os.fsync(self._file.fileno())
        self.last_sync = time.monotonic()

    def update_meta(self, fields: dict[str, Any]) -> None:
        self.meta.update(fields)
        write_json_atomic(self.meta_path, self.meta)

    def note_gap(self, frames: int, cause: str) -> None:
        """`frames` of the line are missing at the current end of the file (kept in the metadata,
        so finalizing and recovery put silence there and the file keeps the line's timeline)."""
        gaps = self.meta["gaps"]
        if gaps and gaps[-1]["frame"] == self.frames and gaps[-1]["cause"] == cause:
            gaps[-1]["frames"] += frames
        else:
            gaps.append({"frame": self.frames, "frames": frames, "cause": cause})

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.sync()
            finally:
                self._file.close()   # even when the last sync fails (disk full): no leaked descriptor

    def remove(self) -> None:
        self.close()
        self.part_path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class FinalFile:
    path: Path
    format: str
    bytes: int
    sha256: str
    frames: int
    sample_rate: int


def finalize(part_path: Path, out_path: Path, fmt: str, rate: int, max_frames: int | None = None,
             gaps: list[dict[str, Any]] | None = None) -> FinalFile:
    """Encode the part into `out_path`, with silence where `gaps` say the line was not heard
    (`{"frame": index in the part, "frames": n}`), up to `max_frames` of the line's timeline.

    The part itself is left for the caller to remove once the call is safely recorded elsewhere.
    """
    available = part_path.stat().st_size // 2
    pieces = _timeline(available, gaps or [])
    total = sum(n for _, n in pieces)
    frames = total if max_frames is None else min(max_frames, total)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with open(part_path, "rb") as source, soundfile.SoundFile(
            str(tmp), "w", samplerate=rate, channels=1, subtype="PCM_16", format=fmt.upper()
        ) as sink:
            written = 0
            for from_part, count in pieces:
                count = min(count, frames - written)
                while count > 0:
                    step = min(count, BLOCK_FRAMES)
                    if from_part:
                        block = source.read(step * 2)
                        samples = np.frombuffer(block[: len(block) // 2 * 2], dtype="<i2")
                        if not len(samples):
                            break
                    else:
                        samples = np.zeros(step, dtype="<i2")
                    sink.write(samples)
                    written += len(samples)
                    count -= len(samples)
            frames = written
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)   # no half-written file left behind; the part is untouched
        raise
    os.replace(tmp, out_path)
    _fsync_dir(out_path.parent)
    with open(out_path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return FinalFile(out_path, fmt, out_path.stat().st_size, digest, frames, rate)


def _timeline(available: int, gaps: list[dict[str, Any]]) -> list[tuple[bool, int]]:
    """The line's timeline as pieces: (True, n) frames from the part, (False, n) frames of silence."""
    pieces: list[tuple[bool, int]] = []
    at = 0
    for gap in sorted(gaps, key=lambda g: int(g["frame"])):
        frame = min(max(int(gap["frame"]), at), available)
        if frame > at:
            pieces.append((True, frame - at))
        pieces.append((False, max(0, int(gap["frames"]))))
        at = frame
    if available > at:
        pieces.append((True, available - at))
    return pieces


def gaps_in_call(gaps: list[dict[str, Any]], rate: int, preroll_s: float) -> list[dict[str, Any]]:
    """The part's gaps as the call record states them: from the off-hook edge, in line seconds."""
    out, before = [], 0
    for gap in sorted(gaps, key=lambda g: int(g["frame"])):
        at = (int(gap["frame"]) + before) / rate - preroll_s
        out.append({"at_s": round(at, 3), "duration_s": round(int(gap["frames"]) / rate, 3),
                    "cause": gap.get("cause", "unknown")})
        before += int(gap["frames"])
    return out
