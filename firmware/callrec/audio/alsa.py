"""The ALSA backend of the audio port: pyalsaaudio, and the only module that imports it.

Thin on purpose, like the RPi.GPIO backend of the line port: it opens PCMs as the port specs
say, hands frames over and turns alsaaudio's errors into the port's typed ones. Everything else
(splitting channels, batching, reopening, alarms) is capture.py's and playback.py's.
"""

from __future__ import annotations

import contextlib
import time
from types import ModuleType
from typing import Any, cast

import numpy as np

from callrec.audio.port import AudioDeviceError, ChannelMissing, Overrun, PcmSpec


def _alsa() -> ModuleType:
    import alsaaudio

    return cast(ModuleType, alsaaudio)


def hardware_name(device: str) -> str | None:
    """`hw:…` for a `plughw:…`/`hw:…` PCM name: the card itself, without ALSA's plug conversions."""
    for prefix in ("plughw:", "hw:"):
        if device.startswith(prefix):
            return "hw:" + device[len(prefix):]
    return None


def native_channels(kind: str, device: str) -> int | None:
    """How many channels the card behind `device` really has, or None when that cannot be told.

    `plughw` makes any channel count "work" by duplicating or dropping channels, so a line set to
    channel 5 of a stereo card would record a copy of another line. Asking the card itself tells.
    A card that is busy or absent, or a PCM that is not a card (a plugin of the user's asound.conf),
    cannot be asked; then the open below is the only check.
    """
    hardware = hardware_name(device)
    if hardware is None:
        return None
    try:
        alsaaudio = _alsa()
    except ImportError:   # a machine without pyalsaaudio has no cards to ask
        return None
    pcm_type = alsaaudio.PCM_CAPTURE if kind == "capture" else alsaaudio.PCM_PLAYBACK
    try:
        handle = alsaaudio.PCM(pcm_type, device=hardware, format=alsaaudio.PCM_FORMAT_S16_LE)
    except alsaaudio.ALSAAudioError:
        return None
    try:
        counts = handle.getchannels()
        return max(counts) if counts else None
    except alsaaudio.ALSAAudioError:
        return None
    finally:
        handle.close()


def open_pcm(spec: PcmSpec) -> Any:
    """An open alsaaudio PCM as `spec` says, or AudioDeviceError naming it and what to check."""
    alsaaudio = _alsa()
    available = native_channels(spec.kind, spec.name)
    if available is not None and spec.channels > available:
        raise ChannelMissing(spec.kind, spec.name, spec.channels, available)
    pcm_type = alsaaudio.PCM_CAPTURE if spec.kind == "capture" else alsaaudio.PCM_PLAYBACK
    try:
        handle = alsaaudio.PCM(pcm_type, device=spec.name, channels=spec.channels, rate=spec.rate,
                               format=alsaaudio.PCM_FORMAT_S16_LE, periodsize=spec.period)
    except alsaaudio.ALSAAudioError as error:
        raise AudioDeviceError(f"cannot open {spec.describe()}: {error}; check the lines' {spec.kind}_pcm "
                               "setting and `arecord -L` / `aplay -L`") from None
    # alsa-lib settles on what the device can do; fewer channels than asked would shift every
    # line's samples (a hw: PCM of a stereo card asked for 3 channels gives 2).
    actual = int(handle.info().get("channels", spec.channels))
    if actual != spec.channels:
        handle.close()
        raise ChannelMissing(spec.kind, spec.name, spec.channels, actual)
    return handle


class AlsaSource:
    """A capture PCM. After a failure the line went on: `lost_frames` is how long it was away."""

    def __init__(self, spec: PcmSpec) -> None:
        self.spec = spec
        self._handle: Any = None
        self._failed_at: float | None = None
        self._lost = 0

    def open(self) -> None:
        self._handle = open_pcm(self.spec)
        if self._failed_at is not None:
            self._lost = int((time.monotonic() - self._failed_at) * self.spec.rate)
            self._failed_at = None

    def read(self) -> np.ndarray:
        alsaaudio = _alsa()
        try:
            size, data = self._handle.read()
        except alsaaudio.ALSAAudioError as error:
            self._failed_at = time.monotonic()
            raise AudioDeviceError(f"{self.spec.describe()} failed: {error}") from None
        if size < 0:
            raise Overrun(f"capture overrun on {self.spec.name} ({size})")
        return np.frombuffer(data, dtype="<i2").reshape(-1, self.spec.channels)

    def lost_frames(self) -> int:
        lost, self._lost = self._lost, 0
        return lost

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):   # a broken handle: closing is best effort
                self._handle.close()
            self._handle = None


class AlsaSink:
    """A playback PCM; `write` blocks while ALSA's buffer is full."""

    def __init__(self, spec: PcmSpec) -> None:
        self.spec = spec
        self._handle: Any = None

    def open(self) -> None:
        self._handle = open_pcm(self.spec)

    def write(self, frames: np.ndarray) -> None:
        alsaaudio = _alsa()
        try:
            self._handle.write(np.ascontiguousarray(frames, dtype="<i2").tobytes())
        except alsaaudio.ALSAAudioError as error:
            raise AudioDeviceError(f"{self.spec.describe()} failed: {error}") from None

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None


class AlsaBackend:
    """The sound cards of this machine, through alsa-lib."""

    def source(self, spec: PcmSpec) -> AlsaSource:
        return AlsaSource(spec)

    def sink(self, spec: PcmSpec) -> AlsaSink:
        return AlsaSink(spec)
