"""Loading and making sounds: announcements from any WAV, tones for the warning beep.

libsndfile (soundfile) reads any WAV width and layout; soxr resamples with a proper anti-alias
filter. Both are better than anything we would write by hand, and both ship wheels for the Pi.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from callrec.dsp import saturate
from callrec.errors import CallrecError


class SoundError(CallrecError, ValueError):
    """A sound file could not be used; the message says which file and why."""


@dataclass(frozen=True)
class Sound:
    """Mono int16 samples at the line rate, with where they came from (the proof of notice)."""

    samples: np.ndarray
    rate: int
    source: str
    sha256: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def stream_mono(path: Path, rate: int, channel: int | None = None, blocksize: int = 65536) -> Iterator[np.ndarray]:
    """Any WAV/FLAC as float32 mono blocks at `rate`: one channel if given, else the mix of all.

    The one audio file reader of callrec. Block by block (libsndfile in, soxr's streaming
    resampler with its state across blocks), so an hour of audio costs no more memory than a block.
    SoundError names the file when it cannot be read.
    """
    try:
        info = soundfile.info(str(path))
        blocks = soundfile.blocks(str(path), blocksize=blocksize, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise SoundError(f"{path}: not a readable audio file ({error})") from None
    if channel is not None and channel >= info.channels:
        raise SoundError(f"{path}: has {info.channels} channel(s), channel {channel} asked for")
    resampler = soxr.ResampleStream(info.samplerate, rate, 1, dtype="float32", quality="HQ") \
        if info.samplerate != rate else None
    delivered = 0
    try:
        for block in blocks:
            mono = block[:, channel] if channel is not None else block.mean(axis=1)
            if resampler is not None:
                mono = resampler.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32))
            delivered += len(mono)
            yield np.asarray(mono, dtype=np.float32)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise SoundError(f"{path}: not a readable audio file ({error})") from None
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        delivered += len(tail)
        yield np.asarray(tail, dtype=np.float32)
    if delivered == 0:
        raise SoundError(f"{path}: the file holds no audio")


def read_mono(path: Path, rate: int, channel: int | None = None) -> np.ndarray:
    """A whole audio file as float32 mono at `rate` (see stream_mono)."""
    return np.concatenate(list(stream_mono(path, rate, channel)))


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale ±1, as libsndfile reads them) as int16: exact for int16 sources."""
    return saturate(samples * 32768.0)


def load_announcement(path: Path, rate: int, gain_db: float = 0.0) -> Sound:
    digest = _file_sha256(path)
    mono = read_mono(path, rate) * (10 ** (gain_db / 20))
    return Sound(to_int16(mono), rate, str(path), digest)


def tone(freq_hz: float, seconds: float, rate: int, dbfs: float = -20.0) -> np.ndarray:
    """A sine burst with 5 ms ramps (no clicks on the line)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    wave = np.sin(2 * np.pi * freq_hz * t) * (10 ** (dbfs / 20))
    ramp = min(n // 2, int(0.005 * rate))
    if ramp:
        envelope = np.linspace(0.0, 1.0, ramp)
        wave[:ramp] *= envelope
        wave[-ramp:] *= envelope[::-1]
    return to_int16(wave)


def _file_sha256(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise SoundError(f"{path}: cannot read: {error.strerror}") from None
