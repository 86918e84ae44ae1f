"""The ALSA backend of the audio port: pyalsaaudio, and the only module that imports it.

Thin on purpose, like the RPi.GPIO backend of the line port: it opens PCMs as the port specs
say, hands frames over and turns alsaaudio's errors into the port's typed ones. Everything else
(splitting channels, batching, reopening, alarms) is capture.py's and playback.py's.

A `hw:` device (a USB card, snd-aloop) does not convert: it may settle on another rate, sample
format, channel count, period or buffer than asked, and alsa-lib (through pyalsaaudio, which
ignores a refused setting) still opens it. So every open reads back what was settled and checks it
(`Negotiated`): another rate or sample format would record silently wrong audio and is refused,
naming the `plughw:` that converts; fewer channels is ChannelMissing; more channels, another period
or buffer are used as they are and logged once. The capture buffer holds half a second, so a late
read is not an overrun; pyalsaaudio (0.10, 0.11) reports an overrun as a read of -EPIPE and has the
stream prepared again, so an Overrun needs no recovery here; any other error (ENODEV: the card was
unplugged or unbound) is AudioDeviceError, and capture.py reopens after its back-off. An idle
playback PCM is not written, so it learns that its card went away from the PCM's state
(`AlsaSink.check`), which the kernel sets to DISCONNECTED at the unbind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import numpy as np

from callrec.audio.port import AudioDeviceError, ChannelMissing, Overrun, PcmSpec

log = logging.getLogger(__name__)

# Capture: how long the card may hold frames for a late reader before it overruns. A bigger capture
# buffer costs no latency (a read returns as soon as a period is in), so it is generous.
CAPTURE_BUFFER_S = 0.5
# Playback: periods queued ahead of what is played. While a sound plays the queue is full, and a sound
# for another line of the same card (or a cancel) waits behind it: the capture side's margin would be
# latency here, so keep it short.
PLAYBACK_PERIODS = 4
SAMPLE_FORMAT = "S16_LE"


def _alsa() -> ModuleType:
    import alsaaudio

    return cast(ModuleType, alsaaudio)


def hardware_name(device: str) -> str | None:
    """`hw:…` for a `plughw:…`/`hw:…` PCM name: the card itself, without ALSA's plug conversions."""
    for prefix in ("plughw:", "hw:"):
        if device.startswith(prefix):
            return "hw:" + device[len(prefix):]
    return None


def converting_name(device: str) -> str:
    """The PCM that has alsa-lib convert rate, format and channels for `device`: `plughw:` for a
    card, else the `plug` plugin in front of the PCM."""
    if device.startswith("hw:"):
        return "plug" + device
    return device if device.startswith(("plughw:", "plug:")) else f"plug:{device}"


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


def buffer_periods(spec: PcmSpec) -> int:
    """Periods to ask for: half a second for capture (see CAPTURE_BUFFER_S), a few for playback."""
    if spec.kind == "capture":
        return max(PLAYBACK_PERIODS, math.ceil(CAPTURE_BUFFER_S * spec.rate / spec.period))
    return PLAYBACK_PERIODS


@dataclass(frozen=True)
class Negotiated:
    """What alsa-lib settled on for an open PCM, which a `hw:` device may have changed."""

    rate: int
    channels: int
    period: int    # frames per read
    buffer: int    # frames the device holds
    sample_format: str

    @classmethod
    def of(cls, handle: Any) -> Negotiated:
        info = handle.info()
        return cls(int(info["rate"]), int(info["channels"]), int(info["period_size"]), int(info["buffer_size"]),
                   str(info["format_name"]))

    def ms(self, frames: int) -> str:
        return f"{frames} frames ({1000 * frames / self.rate:.1f} ms)"


def frame_width(spec: PcmSpec, got: Negotiated | None) -> int:
    """Channels in one frame on the device: the negotiated ones (maybe more than the lines use)."""
    return spec.channels if got is None else got.channels


def check_negotiated(spec: PcmSpec, got: Negotiated) -> None:
    """AudioDeviceError when audio read or played as `spec` says would be wrong on this device."""
    where = f"{spec.kind} PCM {spec.name!r}"
    if got.rate != spec.rate:
        raise AudioDeviceError(
            f"{where} runs at {got.rate} Hz, not the {spec.rate} Hz asked (audio.sample_rate): its audio "
            f"would be recorded or played at the wrong speed. Use {converting_name(spec.name)!r}, which "
            f"converts the rate, or a card that runs at {spec.rate} Hz (a loopback card runs at the rate its "
            "other end was opened with)")
    if got.sample_format != SAMPLE_FORMAT:
        raise AudioDeviceError(
            f"{where} gives {got.sample_format} samples, not the {SAMPLE_FORMAT} that callrec reads and "
            f"writes. Use {converting_name(spec.name)!r}, which converts them")
    # Fewer channels than asked would shift every line's samples (a hw: PCM of a stereo card asked
    # for 3 channels gives 2); more are fine: the lines' channels are the first ones.
    if got.channels < spec.channels:
        raise ChannelMissing(spec.kind, spec.name, spec.channels, got.channels)


_logged: set[tuple[str, str, Negotiated]] = set()   # setups already logged: a reopen does not repeat them


def log_negotiated(spec: PcmSpec, got: Negotiated) -> None:
    """One INFO line per PCM and setup: what the journal needs to explain latency or overruns."""
    key = (spec.kind, spec.name, got)
    if key in _logged:
        return
    _logged.add(key)
    asked = "" if got.period == spec.period else f" (the device's; {spec.period} asked)"
    channels = "" if got.channels == spec.channels else f" ({spec.channels} used)"
    log.info("%s PCM %r: %d Hz, %d channel(s)%s, period %s%s, buffer %s", spec.kind, spec.name, got.rate,
             got.channels, channels, got.ms(got.period), asked, got.ms(got.buffer))


def open_pcm(spec: PcmSpec) -> tuple[Any, Negotiated]:
    """An open alsaaudio PCM as `spec` says and what it settled on, or AudioDeviceError naming it
    and what to check."""
    alsaaudio = _alsa()
    available = native_channels(spec.kind, spec.name)
    if available is not None and spec.channels > available:
        raise ChannelMissing(spec.kind, spec.name, spec.channels, available)
    pcm_type = alsaaudio.PCM_CAPTURE if spec.kind == "capture" else alsaaudio.PCM_PLAYBACK
    try:
        handle = alsaaudio.PCM(pcm_type, device=spec.name, channels=spec.channels, rate=spec.rate,
                               format=alsaaudio.PCM_FORMAT_S16_LE, periodsize=spec.period,
                               periods=buffer_periods(spec))
    except alsaaudio.ALSAAudioError as error:
        raise AudioDeviceError(f"cannot open {spec.describe()}: {error}; check the lines' {spec.kind}_pcm "
                               "setting and `arecord -L` / `aplay -L`") from None
    try:
        got = Negotiated.of(handle)
        check_negotiated(spec, got)
    except alsaaudio.ALSAAudioError as error:
        handle.close()
        raise AudioDeviceError(f"cannot read the setup of {spec.describe()}: {error}") from None
    except AudioDeviceError:
        handle.close()
        raise
    log_negotiated(spec, got)
    return handle, got


class AlsaSource:
    """A capture PCM. After a failure the line went on: `lost_frames` is how long it was away."""

    def __init__(self, spec: PcmSpec) -> None:
        self.spec = spec
        self.negotiated: Negotiated | None = None   # what the open device settled on
        self._handle: Any = None
        self._failed_at: float | None = None
        self._lost = 0

    def open(self) -> None:
        self._handle, self.negotiated = open_pcm(self.spec)
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
        if size < 0:   # -EPIPE: the buffer filled up before this read; pyalsaaudio prepared the stream again
            buffer = "" if self.negotiated is None else f" of {self.negotiated.ms(self.negotiated.buffer)}"
            raise Overrun(f"capture overrun on {self.spec.name}: a read came later than the buffer{buffer} "
                          f"lasts; frames were lost ({size})")
        # Whatever count the device hands over (its period, maybe fewer): capture assembles periods.
        frames = np.frombuffer(data, dtype="<i2").reshape(-1, frame_width(self.spec, self.negotiated))
        return frames if frames.shape[1] == self.spec.channels else frames[:, : self.spec.channels]

    def lost_frames(self) -> int:
        lost, self._lost = self._lost, 0
        return lost

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):   # a broken handle: closing is best effort
                self._handle.close()
            self._handle = None


class AlsaSink:
    """A playback PCM; `write` blocks while ALSA's buffer is full, and opens a sink left closed."""

    # Between sounds nothing is written, so a real device runs dry (XRUN). pyalsaaudio 0.11 then
    # answers the next write with -EPIPE, prepares the stream and drops that write's frames: the first
    # period of every sound after a pause, and a period of a sound written late. They are written
    # again (0.10 prepared before writing, but raised on an underrun mid-write, which reopened the
    # sink). Bounded: a device that takes nothing fails the write.
    WRITE_ATTEMPTS = 3

    def __init__(self, spec: PcmSpec) -> None:
        self.spec = spec
        self.negotiated: Negotiated | None = None   # what the open device settled on
        self.underruns = 0
        self._handle: Any = None

    def open(self) -> None:
        self._handle, self.negotiated = open_pcm(self.spec)

    def write(self, frames: np.ndarray) -> None:
        alsaaudio = _alsa()
        if self._handle is None:   # closed after a failure whose reopen was refused: the card may be back
            self.open()
        channels = frame_width(self.spec, self.negotiated)
        if channels > frames.shape[1]:   # a card with more channels than the lines use: silence on the rest
            frames = np.pad(frames, ((0, 0), (0, channels - frames.shape[1])))
        pending = np.ascontiguousarray(frames, dtype="<i2").tobytes()
        for _ in range(self.WRITE_ATTEMPTS):
            try:
                written = self._handle.write(pending)
            except alsaaudio.ALSAAudioError as error:
                raise AudioDeviceError(f"{self.spec.describe()} failed: {error}") from None
            if written < 0:
                self.underruns += 1
                log.debug("playback underrun on %s (%d): writing the period again", self.spec.name, written)
                continue
            pending = pending[written * channels * 2:]
            if not pending:
                return
        raise AudioDeviceError(f"{self.spec.describe()} did not take a period in {self.WRITE_ATTEMPTS} writes "
                               f"({self.underruns} underrun(s) so far)")

    def check(self) -> None:
        """AudioDeviceError when the open card went away. At an unplug or unbind the kernel marks the
        card's open PCMs DISCONNECTED, and alsa-lib reports that (read from the status page it maps,
        or from a status query refused with ENODEV). A query that fails otherwise is a negative error,
        which pyalsaaudio (0.11) hands over as an unsigned number: read back as the C long it was."""
        if self._handle is None:
            return
        alsaaudio = _alsa()
        try:
            state = int(self._handle.state())
        except alsaaudio.ALSAAudioError as error:
            raise AudioDeviceError(f"{self.spec.describe()} cannot say its state: {error}") from None
        code = ctypes.c_long(state).value
        if code < 0 or state == alsaaudio.PCM_STATE_DISCONNECTED:
            why = "DISCONNECTED" if code >= 0 else os.strerror(-code)
            raise AudioDeviceError(f"{self.spec.describe()} is gone ({why}): its card was unplugged or unbound "
                                   "from its driver; check `aplay -l` and the card's cable or module")

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
