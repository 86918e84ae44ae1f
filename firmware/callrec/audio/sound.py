"""Loading and making sounds: announcements from any WAV, tones for the warning beep.

libsndfile (soundfile) reads any WAV width and layout; soxr resamples with a proper anti-alias
filter. Both are better than anything we would write by hand, and both ship wheels for the Pi.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr


class SoundError(Exception):
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


def read_mono(path: Path, rate: int, channel: int | None = None) -> np.ndarray:
    """Any WAV/FLAC as float mono at `rate`: one channel if given, else the mix of all."""
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise SoundError(f"{path}: not a readable audio file ({error})") from None
    if data.shape[0] == 0:
        raise SoundError(f"{path}: the file holds no audio")
    if channel is not None:
        if channel >= data.shape[1]:
            raise SoundError(f"{path}: has {data.shape[1]} channel(s), channel {channel} asked for")
        mono = data[:, channel]
    else:
        mono = data.mean(axis=1)
    if file_rate != rate:
        mono = soxr.resample(mono, file_rate, rate, quality="HQ")
    return np.asarray(mono, dtype=np.float32)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


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
