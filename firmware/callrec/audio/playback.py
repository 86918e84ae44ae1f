"""ALSA playback: announcements and warning tones injected into the line through the tap.

One thread per playback PCM (a stereo card can serve two lines, one channel each). The PCM is opened
at start, so a wrong name is a start-up error, and then written only while something plays: the
first sample of an announcement is handed to ALSA as soon as the core asks, with no ramp-up.
Who says when playback started: on hardware the thread, when it hands over the first period; in
simulation the simulated wire, when the sound starts to sound on the line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from callrec.audio.capture import AudioDeviceError, PcmGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlaybackStarted:
    line: int
    kind: str             # "announcement" | "warning_tone" | "test"
    t: float              # core clock of the first sample on the line
    monotonic: float      # wall monotonic of the hand-over (for latency figures)


@dataclass(frozen=True)
class PlaybackFailed:
    line: int
    kind: str
    message: str
    t: float


class Wire(Protocol):
    """Simulation's line: takes what the device plays and mixes it into what the line carries."""

    def expect(self, line: int) -> None:
        """Called by `play()` on the core's thread: a sound for this line is on its way."""
        ...

    def inject(self, line: int, samples: np.ndarray, kind: str) -> None: ...


@dataclass
class _Request:
    line: int
    samples: np.ndarray
    kind: str
    pos: int = 0


class PlaybackGroup(PcmGroup):
    """Plays into one PCM that serves one or more lines."""

    kind = "playback"

    def __init__(
        self,
        pcm: str,
        channels: dict[int, int],
        rate: int,
        period_frames: int,
        sink: Callable[[object], None],
        clock: Callable[[], float],
        *,
        wire: Wire | None = None,
    ) -> None:
        super().__init__(pcm, channels, rate, period_frames, sink)
        self._clock = clock
        self._wire = wire
        self._requests: dict[int, _Request] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.handovers: list[tuple[int, str, float]] = []   # (line, kind, monotonic): latency figures

    def start(self) -> None:
        if self._handle is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name=f"playback:{self.pcm}", daemon=True)
        self._thread.start()

    def play(self, line: int, samples: np.ndarray, kind: str) -> None:
        """Start playing on the line's channel, replacing whatever it was playing."""
        if self._wire is not None:
            self._wire.expect(line)
        with self._cond:
            self._requests[line] = _Request(line, samples, kind)
            self._cond.notify()

    def cancel(self, line: int) -> None:
        with self._cond:
            self._requests.pop(line, None)

    def busy(self, line: int) -> bool:
        with self._cond:
            return line in self._requests

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._handle is not None:
            self._handle.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._requests and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                frame = np.zeros((self.period, self.n_channels), dtype=np.int16)
                starting: list[_Request] = []
                for line, request in list(self._requests.items()):
                    chunk = request.samples[request.pos : request.pos + self.period]
                    if request.pos == 0:
                        starting.append(request)
                    frame[: len(chunk), self.channels[line]] = chunk
                    request.pos += len(chunk)
                    if request.pos >= len(request.samples):
                        del self._requests[line]
            now = time.monotonic()
            for request in starting:
                self.handovers.append((request.line, request.kind, now))
                if self._wire is not None:
                    self._wire.inject(request.line, request.samples, request.kind)
                else:
                    self._sink(PlaybackStarted(request.line, request.kind, self._clock(), now))
            try:
                self._handle.write(frame.tobytes())
            except self._alsa.ALSAAudioError as error:
                self._failed(str(error))

    def _failed(self, message: str) -> None:
        log.warning("playback PCM %s failed: %s", self.pcm, message)
        with self._cond:
            failed = list(self._requests.values())
            self._requests.clear()
        for request in failed:
            self._sink(PlaybackFailed(request.line, request.kind, message, self._clock()))
        try:
            self._handle.close()
            self.open()
        except (AudioDeviceError, self._alsa.ALSAAudioError) as error:
            log.warning("playback PCM %s reopen failed: %s", self.pcm, error)
