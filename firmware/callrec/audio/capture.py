"""Capture: one thread per PCM source, turning what the card delivers into `AudioPeriod`s.

A stereo card carries two lines: the thread reads interleaved frames once and splits them by
channel. Trouble never ends the thread: an overrun is counted and reported; a device that fails is
closed, reported, and reopened after a back-off until it comes back, and the frames the line
carried meanwhile are counted, so frame numbers keep the line's time (the core marks the gap in a
call). The journal says it once: the failure, each distinct refusal to reopen (a WARNING, not one
per attempt) and the return. Only a PCM that cannot be opened at start is an error, raised from
`open()`.

Written against the audio port only (port.py): ALSA, the simulator's cards and the scripted twin
are all just sources.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from callrec.audio.port import AudioDeviceError, Overrun, PcmSource, ReopenLog, SourceEnded

log = logging.getLogger(__name__)

Clock = Callable[[int], float]          # frames read so far -> core time of the last of them
Handover = Callable[[int], bool]        # frames read so far -> hand the batch to the core now?


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


class CaptureGroup:
    """Captures one PCM source that carries one or more lines (a channel each)."""

    def __init__(
        self,
        source: PcmSource,
        channels: dict[int, int],
        sink: Callable[[object], None],
        clock: Clock,
        *,
        backoff_s: float = 1.0,
        batch_periods: int = 1,
        handover: Handover | None = None,
    ) -> None:
        self.source = source
        self.pcm = source.spec.name
        self.channels = channels
        self.period = source.spec.period
        self.rate = source.spec.rate
        self._sink = sink
        self._clock = clock
        self.backoff_s = backoff_s
        # Periods are read one by one but handed to the core in batches: a queue hand-over per
        # period is most of the pipeline's CPU. Timed decisions do not wait for audio (the core
        # wakes itself), so batching costs no latency. `handover` may ask for the batch earlier
        # (the simulator does, before an edge it is about to fire).
        self._batch = max(1, batch_periods)
        self._handover = handover
        self._batched: dict[int, list[np.ndarray]] = {line: [] for line in channels}
        self._batched_end = (0, 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.overruns = 0
        self.reopens = 0
        self.last_period_monotonic = 0.0
        # Last sign of life: a period read, or an attempt to reopen a failed device. The watchdog
        # restarts a capture that is stuck, not one that is patiently waiting for its card.
        self.last_activity_monotonic = time.monotonic()

    @property
    def lines(self) -> tuple[int, ...]:
        return tuple(sorted(self.channels))

    def open(self) -> None:
        self.source.open()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"capture:{self.pcm}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.source.close()

    def _run(self) -> None:
        try:
            self._read_loop()
        finally:
            self._flush()   # a stop during a call keeps the batched periods: no audio lost

    def _read_loop(self) -> None:
        pending = np.zeros((0, self.source.spec.channels), dtype=np.int16)
        while not self._stop.is_set():
            try:
                data = self.source.read()
            except SourceEnded:
                self._flush()
                self._sink(CaptureEnded(self.pcm, self.lines, self._clock(self.frames)))
                return
            except Overrun as error:
                self.overruns += 1
                self._sink(CaptureFault(self.pcm, self.lines, "overrun", str(error), self._clock(self.frames)))
                continue
            except AudioDeviceError as error:
                self._device_failed(str(error))
                pending = pending[:0]
                continue
            if not len(data):
                continue
            pending = np.concatenate([pending, data]) if len(pending) else data
            while len(pending) >= self.period:
                self._deliver(pending[: self.period])
                pending = pending[self.period :]

    def _deliver(self, block: np.ndarray) -> None:
        self.frames += len(block)
        t_end = self._clock(self.frames)
        self.last_period_monotonic = self.last_activity_monotonic = time.monotonic()
        for line, channel in self.channels.items():
            self._batched[line].append(np.ascontiguousarray(block[:, channel]))
        self._batched_end = (self.frames, t_end)
        if len(self._batched[next(iter(self.channels))]) >= self._batch or (
            self._handover is not None and self._handover(self.frames)
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
        self._sink(CaptureFault(self.pcm, self.lines, "device", message, self._clock(self.frames)))
        self.source.close()
        reopen_log = ReopenLog(log, f"capture PCM {self.pcm}", self.backoff_s)
        while not self._stop.wait(self.backoff_s):
            self.last_activity_monotonic = time.monotonic()
            try:
                self.source.open()
            except AudioDeviceError as error:
                reopen_log.refused(str(error))
                continue
            reopen_log.reopened()
            # The line went on while the card was away: count its frames, so that frame numbers
            # keep the line's time and the core can mark (and pad) the gap in a call.
            self.frames += self.source.lost_frames()
            self.reopens += 1
            self._sink(CaptureFault(self.pcm, self.lines, "recovered", "capture reopened",
                                    self._clock(self.frames)))
            return
