"""Recording files on disk: where they live, the crash-safe part file, and finalizing.

While a call runs its audio goes to `<call_id>.pcm.part` (raw S16_LE, appended, fsync'd at least
every second) beside `<call_id>.part.json` (what is known of the call so far). Raw PCM is the one
format that stays valid whatever instant the process dies: recovery only has to count whole frames.
Finalizing encodes the part into FLAC or WAV through libsndfile, then writes that to the disk (a
temporary name, fsync, rename, so a reader never sees half a file), hashes the result and writes
the JSON sidecar the same way. libsndfile encodes into an anonymous memory file (memfd) by its
descriptor: handed a Python file object instead, soundfile would build its I/O from cffi callbacks,
which need writable and executable memory, and callrec.service forbids that
(`MemoryDenyWriteExecute=yes`). Python then copies (or encrypts) the memory file onto the disk, so
a refused write raises its own OSError (a full disk says so, naming the file), where libsndfile
writing the disk itself would report a full disk as a failing FLAC encoder. The cost: the encoded
recording is in memory while it is written (8 kHz mono: 58 MB per hour of WAV, FLAC less).

What the recorder learns while the disk is full (a storage gap, the call's end, why it could not be
finalized) must outlive the process, yet `.part.json` is rewritten under a temporary name, which a
full disk refuses. So each call also gets `<call_id>.part.reserve` at the off-hook: space allocated
for exactly this, rewritten in place (store/slots.py) when `.part.json` cannot be. Each version of
the metadata carries `meta_rev`; recovery reads whichever of the two is newer (`read_part_meta`).

With `[privacy] recipient` set, plaintext audio never reaches the disk: the part is
`<call_id>.pcm.age.part` in the age-frames format, and the final recording is encoded in memory
and written as the standard age file `<call_id>.<fmt>.age` (privacy/crypto.py, docs/privacy.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import soundfile

from callrec.evidence import parse_json
from callrec.privacy import EncryptedPartFile, Recipients, decrypt_frames, encrypt_stream, scan_frames
from callrec.recording.diskerrors import describe_error, with_path
from callrec.store import CallRecord, SlotFile, SlotTooSmall, fsync_directory

log = logging.getLogger(__name__)

PART_SUFFIX = ".pcm.part"
ENCRYPTED_PART_SUFFIX = ".pcm.age.part"
RECOVERED_FRAMES_SUFFIX = ".pcm.age-frames"
META_SUFFIX = ".part.json"
RESERVE_SUFFIX = ".part.reserve"
RESERVE_SLOT_BYTES = 16 * 1024   # a call's metadata with its final record is a few KB
BLOCK_FRAMES = 8000 * 4
COPY_BYTES = 1024 * 1024   # memory file to disk, a block at a time


def write_sidecar(audio: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The call record beside its recording (`<call_id>.json`), as the one model of a call record
    has it (store/record.py): validated, every field present. Returns what was written."""
    document = CallRecord.model_validate(record).document()
    write_json_atomic(sidecar_path(audio), document)
    return document


def call_id_of(path: Path) -> str:
    """The call id a recording file is named after (call ids hold no dots)."""
    return path.name.split(".", 1)[0]


def sidecar_path(audio: Path) -> Path:
    """`<call_id>.json` beside `<call_id>.flac`, `.flac.age` or `.pcm.age-frames`."""
    return audio.with_name(call_id_of(audio) + ".json")


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
    except OSError as error:
        tmp.unlink(missing_ok=True)   # a full disk: no half-written file left, the old one stays
        raise with_path(error, tmp) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


class PartWriter:
    """Appends one call's audio to its part file; `sync()` puts it on the disk.

    Writes are unbuffered: once `write()` returns, the audio is in the kernel's page cache and
    survives a kill of the process (only a power cut loses what `sync()` has not reached yet).
    A write the disk cannot take (full, failing) keeps whatever whole frames reached the file and
    raises; the frames that did not are the caller's to account for as a gap.
    """

    def __init__(self, directory: Path, call_id: str, meta: dict[str, Any],
                 recipients: Recipients | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.call_id = call_id
        self.encrypted = recipients is not None
        self.part_path = directory / f"{call_id}{ENCRYPTED_PART_SUFFIX if self.encrypted else PART_SUFFIX}"
        self.meta_path = directory / f"{call_id}{META_SUFFIX}"
        self.meta = dict(meta)
        self.meta.setdefault("gaps", [])
        self.meta["meta_rev"] = 1
        self.meta_dirty = False   # the metadata changed (a gap grew) since it last reached the disk
        self._reserve = SlotFile(reserve_path(self.meta_path), RESERVE_SLOT_BYTES)
        write_json_atomic(self.meta_path, self.meta)
        self._sealed: EncryptedPartFile | None = None
        if recipients is not None:
            self._sealed = EncryptedPartFile(self.part_path, recipients, int(self.meta.get("sample_rate", 8000)))
            self._file: Any = self._sealed
        else:
            self._file = open(self.part_path, "wb", buffering=0)  # noqa: SIM115 - lives as long as the call
        fsync_directory(directory)
        self.frames = 0
        self.last_sync = time.monotonic()

    def allocate_reserve(self) -> None:
        """Space for the metadata on a full disk (the recorder asks once the call is announced: not
        in the way of the announcement); without room now, tried again at the next update."""
        try:
            self._reserve.allocate()
        except OSError as error:
            log.warning("no room for %s (%s): what the call learns while the disk is full may not outlive the "
                        "process", self._reserve.path.name, error)

    @property
    def identity(self) -> Any:
        """The part's ephemeral identity (memory only), for finalizing an encrypted part."""
        return self._sealed.identity if self._sealed is not None else None

    def write(self, samples: np.ndarray) -> None:
        if self._sealed is not None:
            try:
                self._sealed.write(samples)
            finally:
                self.frames = self._sealed.frames
            return
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
        if self._sealed is not None:
            held = self.frames
            try:
                self._sealed.sync()
            finally:
                self.frames = self._sealed.frames
                if self.frames < held:   # the audio buffered for its frame, refused: a gap where it was
                    self.note_gap(held - self.frames, "storage")
        else:
            os.fsync(self._file.fileno())
        self.last_sync = time.monotonic()

    def update_meta(self, fields: dict[str, Any]) -> None:
        """Put `fields` in the part's metadata on the disk: `.part.json` when the disk takes it, else
        in place in the reserve. Raises OSError only when neither could be written."""
        self.meta.update(fields)
        self.meta["meta_rev"] = int(self.meta.get("meta_rev", 0)) + 1
        try:
            write_json_atomic(self.meta_path, self.meta)
        except OSError as error:
            if not self._keep_in_reserve(error):
                raise
        else:
            if not self._reserve.allocated():
                self.allocate_reserve()
        self.meta_dirty = False

    def keep_meta(self) -> None:
        """The metadata on the disk if it changed since (a storage gap grows with every refused write)."""
        if self.meta_dirty:
            self.update_meta({})

    def _keep_in_reserve(self, error: OSError) -> bool:
        """The metadata written in place, where `.part.json` could not be (a full disk)."""
        payload = json.dumps(self.meta, ensure_ascii=False).encode("utf-8")
        if len(payload) > self._reserve.capacity:   # `.part.json` has held the off-hook record since then
            payload = json.dumps({k: v for k, v in self.meta.items() if k != "record"},
                                 ensure_ascii=False).encode("utf-8")
        try:
            self._reserve.write(payload)
        except (OSError, SlotTooSmall) as reserve_error:
            log.error("the metadata of %s could not be written (%s), nor in its reserve (%s)", self.call_id,
                      describe_error(error), reserve_error)
            return False
        log.info("metadata of %s kept in %s (%s)", self.call_id, self._reserve.path.name, describe_error(error))
        return True

    def note_gap(self, frames: int, cause: str) -> None:
        """`frames` of the line are missing at the current end of the file (kept in the metadata,
        so finalizing and recovery put silence there and the file keeps the line's timeline)."""
        gaps = self.meta["gaps"]
        if gaps and gaps[-1]["frame"] == self.frames and gaps[-1]["cause"] == cause:
            gaps[-1]["frames"] += frames
        else:
            gaps.append({"frame": self.frames, "frames": frames, "cause": cause})
        self.meta_dirty = True

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.sync()
            finally:
                self._file.close()   # even when the last sync fails (disk full): no leaked descriptor
                with contextlib.suppress(OSError):   # a gap that grew since the last sync: for recovery
                    self.keep_meta()

    def remove(self) -> None:
        self.close()
        self.part_path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)
        self._reserve.path.unlink(missing_ok=True)


def reserve_path(meta_path: Path) -> Path:
    """`<call_id>.part.reserve` beside `<call_id>.part.json`."""
    return meta_path.with_name(meta_path.name.removesuffix(META_SUFFIX) + RESERVE_SUFFIX)


def read_part_meta(meta_path: Path) -> dict[str, Any]:
    """A part's metadata as last written: `.part.json`, or its reserve where that is newer (written
    in place on a full disk; it may lack the off-hook `record`, which `.part.json` then has).
    Raises OSError or ValueError when neither holds a JSON object."""
    try:
        written: dict[str, Any] | None = _json_object(meta_path.read_bytes())
        problem: Exception | None = None
    except (OSError, ValueError) as error:
        written, problem = None, error
    raw = SlotFile(reserve_path(meta_path), RESERVE_SLOT_BYTES).read()
    try:
        reserved = _json_object(raw) if raw is not None else None
    except ValueError:
        reserved = None
    if reserved is not None and (written is None or _rev(reserved) > _rev(written)):
        return {**(written or {}), **reserved}
    if written is None:
        assert problem is not None
        raise problem
    return written


def _json_object(raw: bytes) -> dict[str, Any]:
    data = parse_json(raw)   # anyone with the card can write it: deep nesting is a ValueError too
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _rev(meta: dict[str, Any]) -> int:
    rev = meta.get("meta_rev", 0)
    return rev if isinstance(rev, int) and not isinstance(rev, bool) else 0


@dataclass(frozen=True)
class FinalFile:
    path: Path
    format: str
    bytes: int
    sha256: str
    frames: int
    sample_rate: int
    encryption: str | None = None    # None, "age" (a standard age file) or "age-frames" (a recovered part)


class _PartSamples:
    """The samples of a part in order: raw S16_LE, or an age-frames part decrypted with its
    ephemeral identity (in memory, frame by frame)."""

    def __init__(self, part_path: Path, identity: Any) -> None:
        self._pending = np.zeros(0, dtype="<i2")
        if identity is None:
            self.available = part_path.stat().st_size // 2
            self._raw: Any = open(part_path, "rb")  # noqa: SIM115 - closed by close()
            self._frames: Any = None
        else:
            self.available = scan_frames(part_path).frames
            self._raw = None
            self._frames = decrypt_frames(part_path, [identity])

    def read(self, count: int) -> np.ndarray:
        if self._raw is not None:
            block = self._raw.read(count * 2)
            return np.frombuffer(block[: len(block) // 2 * 2], dtype="<i2")
        while len(self._pending) < count:
            chunk = next(self._frames, None)
            if chunk is None:
                break
            self._pending = np.concatenate([self._pending, chunk])
        out, self._pending = self._pending[:count], self._pending[count:]
        return out

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
        if self._frames is not None:
            self._frames.close()


def finalize(part_path: Path, out_path: Path, fmt: str, rate: int, max_frames: int | None = None,
             gaps: list[dict[str, Any]] | None = None, *, identity: Any = None,
             recipients: Recipients | None = None) -> FinalFile:
    """Encode the part into `out_path`, with silence where `gaps` say the line was not heard
    (`{"frame": index in the part, "frames": n}`), up to `max_frames` of the line's timeline.

    `identity` reads an encrypted part; with `recipients` the recording is encoded in memory and
    only its age ciphertext is written (`out_path` should then end in `.age`). The part itself is
    left for the caller to remove once the call is safely recorded elsewhere.
    """
    source = _PartSamples(part_path, identity)
    pieces = _timeline(source.available, gaps or [])
    frames = _kept(pieces, max_frames)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with open(os.memfd_create(f"callrec-{out_path.name}", os.MFD_CLOEXEC), "r+b") as encoded:
            with soundfile.SoundFile(encoded.fileno(), "w", samplerate=rate, channels=1, subtype="PCM_16",
                                     format=fmt.upper(), closefd=False) as sink:
                frames = _encode(source, pieces, frames, sink)
            _store(encoded, tmp, recipients)
    finally:
        source.close()
    os.replace(tmp, out_path)
    fsync_directory(out_path.parent)
    with open(out_path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return FinalFile(out_path, fmt, out_path.stat().st_size, digest, frames, rate,
                     "age" if recipients is not None else None)


def _store(encoded: IO[bytes], tmp: Path, recipients: Recipients | None) -> None:
    """The encoded recording, from its memory file into `tmp` on the disk and fsync'd: as it is, or
    with `recipients` as the standard age file of it (the plaintext never reaches the disk). A write
    the disk refuses raises its OSError naming `tmp`, and no half-written `tmp` is left behind."""
    encoded.seek(0)
    try:
        with open(tmp, "wb") as handle:
            if recipients is None:
                shutil.copyfileobj(encoded, handle, COPY_BYTES)
            else:   # encrypt_stream reads the source as a file; its annotation names the BytesIO it had before
                encrypt_stream(cast(io.BytesIO, encoded), handle, recipients)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        tmp.unlink(missing_ok=True)   # the part is untouched: finalizing can be tried again
        raise with_path(error, tmp) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _encode(source: _PartSamples, pieces: list[tuple[bool, int]], frames: int, sink: soundfile.SoundFile) -> int:
    """The line's timeline into `sink`, up to `frames`: the part's samples, silence in the gaps."""
    written = 0
    for from_part, count in pieces:
        count = min(count, frames - written)
        while count > 0:
            step = min(count, BLOCK_FRAMES)
            samples = source.read(step) if from_part else np.zeros(step, dtype="<i2")
            if not len(samples):
                break
            sink.write(samples)
            written += len(samples)
            count -= len(samples)
    return written


def keep_encrypted_part(part_path: Path) -> FinalFile:
    """An encrypted part whose ephemeral key died with the process, registered as it is: the
    frames a crash tore are cut off, and the file becomes `<call_id>.pcm.age-frames`, which the
    office decrypts (`callrec decrypt`). No key is needed on the device."""
    info = scan_frames(part_path)
    if part_path.stat().st_size > info.whole_bytes:
        os.truncate(part_path, info.whole_bytes)
    out_path = part_path.with_name(call_id_of(part_path) + RECOVERED_FRAMES_SUFFIX)
    with open(part_path, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part_path, out_path)
    fsync_directory(out_path.parent)
    with open(out_path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return FinalFile(out_path, "pcm", out_path.stat().st_size, digest, info.frames, info.rate, "age-frames")


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


def timeline_frames(available: int, gaps: list[dict[str, Any]], max_frames: int | None = None) -> int:
    """The frames of the line's timeline a part of `available` audio frames and its `gaps` cover,
    up to `max_frames`: what `finalize` writes, and what a recovered age-frames part (audio only,
    its gaps stated in the record) covers of the call."""
    return _kept(_timeline(available, gaps), max_frames)


def _kept(pieces: list[tuple[bool, int]], max_frames: int | None) -> int:
    total = sum(n for _, n in pieces)
    return total if max_frames is None else min(max_frames, total)


def gaps_in_call(gaps: list[dict[str, Any]], rate: int, preroll_s: float,
                 max_frames: int | None = None) -> list[dict[str, Any]]:
    """The part's gaps as the call record states them: from the off-hook edge, in line seconds, and
    within the `max_frames` of the line's timeline the recording keeps (the audio handed over after
    the hang-up edge, written or refused, is not the call's)."""
    out, before = [], 0
    for gap in sorted(gaps, key=lambda g: int(g["frame"])):
        start = int(gap["frame"]) + before
        frames = int(gap["frames"])
        before += frames
        if max_frames is not None:
            frames = min(frames, max_frames - start)
            if frames <= 0:
                continue
        out.append({"at_s": round(start / rate - preroll_s, 3), "duration_s": round(frames / rate, 3),
                    "cause": gap.get("cause", "unknown")})
    return out
