"""ALSA capture: one thread per PCM, turning periods into `AudioPeriod`s for the core.

A stereo card carries two lines: the thread reads interleaved frames once and splits them by
channel. Trouble never ends the thread: an overrun is counted and reported; a device that fails is
closed, reported, and reopened after a back-off until it comes back. Only a PCM that cannot be opened
at start is an error, raised from `open()` with a message naming the PCM.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


class AudioDeviceError(Exception):
    """A PCM could not be opened; the message names it and says what to check."""


@dataclass(frozen=True)
class AudioPeriod:
    line: int
    samples: np.ndarray   # int16 mono
    frame_end: int        # absolute frame index one past the last sample
    t_end: float          # core clock at the last sample


@dataclass(frozen=True)
class CaptureFault:
    pcm: str
    lines: tuple[int, ...]
    kind: str             # "overrun" | "device" | "recovered"
    message: str
    t: float


@dataclass(frozen=True)
class CaptureEnded:
    """A capture source with a known length (simulation) has delivered all of it."""

    pcm: str
    lines: tuple[int, ...]
    t: float


class CaptureTap(Protocol):
    """Simulation's hook into a capture thread: paces it and adds what the wire carries."""

    max_frames: int

    def before_read(self, frame: int) -> None: ...

    def due(self, t_end: float) -> bool: ...

    def urgent(self) -> bool: ...

    def on_period(self, line: int, frame_start: int, samples: np.ndarray) -> np.ndarray: ...

    def gone(self, frame: int) -> bool:
        """The simulated card is unplugged at this frame: what is read is the line unheard."""
        ...

    def read_done(self, frame_end: int, rate: int) -> None: ...


class ChannelMissing(AudioDeviceError):
    """A line's channel is not on the card; the service names the configuration key it came from."""

    def __init__(self, kind: str, device: str, needed: int, available: int) -> None:
        self.kind = kind
        self.device = device
        self.needed = needed
        self.available = available
        super().__init__(f"{kind} PCM {device!r} has {available} channel(s), {needed} needed")


def hardware_name(device: str) -> str | None:
    """`hw:…` for a `plughw:…`/`hw:…` PCM name: the card itself, without ALSA's plug conversions."""
    for prefix in ("plughw:", "hw:"):
        if device.startswith(prefix):
            return "hw:" + device[len(prefix):]
    return None


def native_channels(alsaaudio: Any, kind: str, device: str) -> int | None:
    """How many channels the card behind `device` really has, or None when that cannot be told.

    `plughw` makes any channel count "work" by duplicating or dropping channels, so a line set to
    channel 5 of a stereo card would record a copy of another line. Asking the card itself tells.
    A card that is busy or absent, or a PCM that is not a card (a plugin of the user's asound.conf),
    cannot be asked; then the open below is the only check.
    """
    hardware = hardware_name(device)
    if hardware is None:
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


def open_pcm(alsaaudio: Any, kind: str, device: str, channels: int, rate: int, period: int) -> Any:
    available = native_channels(alsaaudio, kind, device)
    if available is not None and channels > available:
        raise ChannelMissing(kind, device, channels, available)
    pcm_type = alsaaudio.PCM_CAPTURE if kind == "capture" else alsaaudio.PCM_PLAYBACK
    try:
        handle = alsaaudio.PCM(
            pcm_type,
            device=device,
            channels=channels,
            rate=rate,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=period,
        )
    except alsaaudio.ALSAAudioError as error:
        raise AudioDeviceError(
            f"cannot open {kind} PCM {device!r} ({channels} ch, {rate} Hz): {error}; check the "
            f"lines' {kind}_pcm setting and `arecord -L` / `aplay -L`"
        ) from None
    # alsa-lib settles on what the device can do; fewer channels than asked would shift every
    # line's samples (a hw: PCM of a stereo card asked for 3 channels gives 2).
    actual = int(handle.info().get("channels", channels))
    if actual != channels:
        handle.close()
        raise ChannelMissing(kind, device, channels, actual)
    return handle


class PcmGroup:
    """One ALSA PCM serving one or more lines (a channel each), on a thread of its own."""

    kind = "capture"

    def __init__(self, pcm: str, channels: dict[int, int], rate: int, period_frames: int,
                 sink: Callable[[object], None]) -> None:
        import alsaaudio

        self._alsa = alsaaudio
        self.pcm = pcm
        self.channels = channels
        self.n_channels = max(channels.values()) + 1
        self.rate = rate
        self.period = period_frames
        self._sink = sink
        self._handle: Any = None

    def open(self) -> None:
        self._handle = open_pcm(self._alsa, self.kind, self.pcm, self.n_channels, self.rate, self.period)

    @property
    def lines(self) -> tuple[int, ...]:
        return tuple(sorted(self.channels))


class CaptureGroup(PcmGroup):
    """Captures one PCM that carries one or more lines."""

    def __init__(
        self,
        pcm: str,
        channels: dict[int, int],
        rate: int,
        period_frames: int,
        sink: Callable[[object], None],
        clock: Callable[[int], float],
        *,
        tap: CaptureTap | None = None,
        backoff_s: float = 1.0,
        batch_periods: int = 1,
    ) -> None:
        super().__init__(pcm, channels, rate, period_frames, sink)
        self._clock = clock
        self._tap = tap
        self.backoff_s = backoff_s
        # Periods are read one by one but handed to the core in batches: a queue hand-over per
        # period is most of the pipeline's CPU. Timed decisions do not wait for audio (the core
        # wakes itself), so batching costs no latency.
        self._batch = max(1, batch_periods)
        self._batched: dict[int, list[np.ndarray]] = {line: [] for line in channels}
        self._batched_end = (0, 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.overruns = 0
        self.reopens = 0
        self._outage = False
        self.last_period_monotonic = 0.0
        # Last sign of life: a period read, or an attempt to reopen a failed device. The watchdog
        # restarts a capture that is stuck, not one that is patiently waiting for its card.
        self.last_activity_monotonic = time.monotonic()

    def start(self) -> None:
        if self._handle is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name=f"capture:{self.pcm}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._read_loop()
        finally:
            self._flush()   # a stop during a call keeps the batched periods: no audio lost

    def _read_loop(self) -> None:
        pending = np.zeros((0, self.n_channels), dtype=np.int16)
        while not self._stop.is_set():
            if self._tap is not None:
                if self.frames >= self._tap.max_frames:
                    self._sink(CaptureEnded(self.pcm, self.lines, self._clock(self.frames)))
                    return
                self._tap.before_read(self.frames)
                if self._simulated_outage(pending):
                    pending = pending[:0]
                    continue
            try:
                size, data = self._handle.read()
            except self._alsa.ALSAAudioError as error:
                self._device_failed(str(error))
                pending = pending[:0]
                continue
            if size < 0:
                self.overruns += 1
                self._sink(CaptureFault(self.pcm, self.lines, "overrun", f"capture overrun ({size})",
                                        self._clock(self.frames)))
                continue
            if size == 0:
                continue
            frames = np.frombuffer(data, dtype="<i2").reshape(-1, self.n_channels)
            pending = np.concatenate([pending, frames]) if len(pending) else frames
            while len(pending) >= self.period:
                self._deliver(pending[: self.period])
                pending = pending[self.period :]

    def _simulated_outage(self, pending: np.ndarray) -> bool:
        """The simulated card is unplugged (a scenario fault): report it as a real failure would be,
        and let the line run on unheard, so the frame count keeps the line's time."""
        assert self._tap is not None
        gone = self._tap.gone(self.frames)
        if gone != self._outage:
            self._outage = gone
            self._flush()
            if gone:
                log.warning("capture PCM %s failed: simulated card unplugged; reopening", self.pcm)
                self._sink(CaptureFault(self.pcm, self.lines, "device", "simulated: the card was unplugged",
                                        self._clock(self.frames)))
            else:
                self.reopens += 1
                self._sink(CaptureFault(self.pcm, self.lines, "recovered", "capture reopened",
                                        self._clock(self.frames)))
        if not gone:
            return False
        size, data = self._handle.read()   # the line goes on while nobody listens
        if size > 0:
            self.frames = min(self.frames + size, self._tap.max_frames)
            self.last_activity_monotonic = time.monotonic()
        return True

    def _deliver(self, block: np.ndarray) -> None:
        start = self.frames
        self.frames += len(block)
        if self._tap is not None and self.frames > self._tap.max_frames:
            block = block[: self._tap.max_frames - start]
            self.frames = self._tap.max_frames
        t_end = self._clock(self.frames)
        self.last_period_monotonic = self.last_activity_monotonic = time.monotonic()
        if self._tap is not None:
            self._tap.read_done(self.frames, self.rate)
        if self._tap is not None and self._tap.due(t_end):
            self._flush()  # the audio before an edge reaches the core before the edge
        for line, channel in self.channels.items():
            samples = np.ascontiguousarray(block[:, channel])
            if self._tap is not None:
                samples = self._tap.on_period(line, start, samples)
            self._batched[line].append(samples)
        self._batched_end = (self.frames, t_end)
        if len(self._batched[next(iter(self.channels))]) >= self._batch or (
            self._tap is not None and (self._tap.urgent() or self.frames >= self._tap.max_frames)
        ):
            self._flush()

    def _flush(self) -> None:
        frame_end, t_end = self._batched_end
        for line, parts in self._batched.items():
            if parts:
                samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
                parts.clear()
                self._sink(AudioPeriod(line, samples, frame_end, t_end))

    def _device_failed(self, message: str) -> None:
        self._flush()
        log.warning("capture PCM %s failed: %s; reopening", self.pcm, message)
        failed_at = time.monotonic()
        self._sink(CaptureFault(self.pcm, self.lines, "device", message, self._clock(self.frames)))
        with contextlib.suppress(Exception):  # the handle is already broken; closing is best effort
            self._handle.close()
        while not self._stop.wait(self.backoff_s):
            self.last_activity_monotonic = time.monotonic()
            try:
                self.open()
            except AudioDeviceError as error:
                log.debug("reopen of %s failed: %s", self.pcm, error)
                continue
            # The line went on while the card was away: count its frames, so that frame numbers
            # keep the line's time and the core can mark (and pad) the gap in a call.
            self.frames += int((time.monotonic() - failed_at) * self.rate)
            self.reopens += 1
            self._sink(CaptureFault(self.pcm, self.lines, "recovered", "capture reopened",
                                    self._clock(self.frames)))
            return
