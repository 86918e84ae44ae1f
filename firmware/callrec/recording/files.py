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

PART_SUFFIX = ".pcm.part"
META_SUFFIX = ".part.json"
BLOCK_FRAMES = 8000 * 4


def recordings_root(data_dir: Path) -> Path:
    return data_dir / "recordings"


def day_dir(data_dir: Path, started_wall: float) -> Path:
    day = dt.datetime.fromtimestamp(started_wall, tz=dt.UTC)
    return recordings_root(data_dir) / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartWriter:
    """Appends one call's audio to its part file; `sync()` puts it on the disk."""

    def __init__(self, directory: Path, call_id: str, meta: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.call_id = call_id
        self.part_path = directory / f"{call_id}{PART_SUFFIX}"
        self.meta_path = directory / f"{call_id}{META_SUFFIX}"
        self.meta = dict(meta)
        write_json_atomic(self.meta_path, self.meta)
        self._file = open(self.part_path, "wb")  # noqa: SIM115 - lives as long as the call
        _fsync_dir(directory)
        self.frames = 0
        self.last_sync = time.monotonic()

    def write(self, samples: np.ndarray) -> None:
        self._file.write(samples.astype("<i2", copy=False).tobytes())
        self.frames += len(samples)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self.last_sync = time.monotonic()

    def update_meta(self, fields: dict[str, Any]) -> None:
        self.meta.update(fields)
        write_json_atomic(self.meta_path, self.meta)

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


def finalize(part_path: Path, out_path: Path, fmt: str, rate: int, max_frames: int | None = None) -> FinalFile:
    """Encode the part (up to `max_frames`) into `out_path`; the part itself is left for the caller."""
    available = part_path.stat().st_size // 2
    frames = available if max_frames is None else min(max_frames, available)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with open(part_path, "rb") as source, soundfile.SoundFile(
            str(tmp), "w", samplerate=rate, channels=1, subtype="PCM_16", format=fmt.upper()
        ) as sink:
            left = frames
            while left > 0:
                block = source.read(min(left, BLOCK_FRAMES) * 2)
                if not block:
                    break
                samples = np.frombuffer(block[: len(block) // 2 * 2], dtype="<i2")
                sink.write(samples)
                left -= len(samples)
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
