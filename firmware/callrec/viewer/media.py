"""A call's audio for the browser: decrypted on the server for the one request, never written.

Plain recordings are served as they are; `.flac.age` is decrypted in memory with the office
identity; a recovered `.pcm.age-frames` part is decrypted frame by frame into a FLAC in memory.
Peaks (min/max per pixel column) are computed from the decoded samples for the waveform.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from callrec.privacy import FRAMES_MAGIC, CryptoError, decrypt_age, decrypt_frames


def playable(data: bytes, record: dict[str, Any], identities: list[Any]) -> tuple[bytes, str]:
    """(bytes, media type) of the recording as a browser plays it."""
    encryption = (record.get("recording") or {}).get("encryption")
    fmt = (record.get("recording") or {}).get("format") or "flac"
    if encryption == "age":
        if not identities:
            raise CryptoError("the recording is encrypted and the viewer has no --identity")
        out = io.BytesIO()
        decrypt_age(io.BytesIO(data), out, identities, str(record.get("call_id")))
        return out.getvalue(), f"audio/{fmt}"
    if encryption == "age-frames" or data.startswith(FRAMES_MAGIC):
        if not identities:
            raise CryptoError("the recording is encrypted and the viewer has no --identity")
        return _frames_to_flac(data, identities, int((record.get("recording") or {}).get("sample_rate") or 8000))
    return data, f"audio/{fmt}"


def _frames_to_flac(data: bytes, identities: list[Any], rate: int) -> tuple[bytes, str]:
    # decrypt_frames reads a file: a memory-only file (memfd), so nothing goes to a disk
    fd = os.memfd_create("callrec-frames")
    try:
        os.write(fd, data)
        path = Path(f"/proc/self/fd/{fd}")
        out = io.BytesIO()
        with soundfile.SoundFile(out, "w", samplerate=rate, channels=1, subtype="PCM_16", format="FLAC") as sink:
            for samples in decrypt_frames(path, identities):
                sink.write(np.asarray(samples))
        return out.getvalue(), "audio/flac"
    finally:
        os.close(fd)


def peaks(audio: bytes, width: int) -> dict[str, Any]:
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="int16", always_2d=False)
    samples = np.asarray(samples)
    if samples.ndim > 1:
        samples = samples[:, 0]
    width = max(1, min(width, 4000))
    if len(samples) == 0:
        return {"width": width, "duration_s": 0.0, "min": [0] * width, "max": [0] * width}
    edges = np.linspace(0, len(samples), width + 1).astype(int)
    lows, highs = [], []
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        chunk = samples[start:max(end, start + 1)]
        lows.append(round(float(chunk.min()) / 32768, 4))
        highs.append(round(float(chunk.max()) / 32768, 4))
    return {"width": width, "duration_s": round(len(samples) / rate, 3), "min": lows, "max": highs}
