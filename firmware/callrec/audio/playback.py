"""Playback: announcements and warning tones injected into the line through the tap.

One thread per playback sink (a stereo card can serve two lines, one channel each). The sink is
opened at start, so a wrong name is a start-up error, and then written only while something
plays: the first sample of an announcement is handed over as soon as the core asks, with no
ramp-up. The thread says when playback started (`PlaybackStarted`), on the clock it is given: on
a Pi the monotonic clock at the hand-over, in simulation the line time at which the sample will
sound. Written against the audio port only (port.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from callrec.audio.port import AudioDeviceError, PcmSink

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


@dataclass
class _Request:
    line: int
    samples: np.ndarray
    kind: str
    pos: int = 0


class PlaybackGroup:
    """Plays into one sink that serves one or more lines."""

    def __init__(
        self,
        sink: PcmSink,
        channels: dict[int, int],
        post: Callable[[object], None],
        clock: Callable[[], float],
    ) -> None:
        self.sink = sink
        self.pcm = sink.spec.name
        self.channels = channels
        self.period = sink.spec.period
        self.n_channels = sink.spec.channels
        self._post = post
        self._clock = clock
        self._requests: dict[int, _Request] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._writing = False
        self._thread: threading.Thread | None = None
        self.handovers: list[tuple[int, str, float]] = []   # (line, kind, monotonic): latency figures

    def open(self) -> None:
        self.sink.open()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"playback:{self.pcm}", daemon=True)
        self._thread.start()

    def play(self, line: int, samples: np.ndarray, kind: str) -> None:
        """Start playing on the line's channel, replacing whatever it was playing."""
        with self._cond:
            self._requests[line] = _Request(line, samples, kind)
            self._cond.notify_all()

    def cancel(self, line: int) -> None:
        with self._cond:
            self._requests.pop(line, None)
            self._cond.notify_all()

    def busy(self, line: int) -> bool:
        with self._cond:
            return line in self._requests

    @property
    def idle(self) -> bool:
        """Nothing to play on any line of this sink, and nothing on its way to it."""
        with self._cond:
            return not self._requests and not self._writing

    def wait_started(self, timeout: float = 5.0) -> bool:
        """Until every sound asked for has its first period handed to the sink (or the thread waits
        for the sink's room): what the simulator waits for before the line goes on."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopping or self._writing or all(r.pos > 0 for r in self._requests.values()),
                timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.sink.close()

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
                self._writing = True
                self._cond.notify_all()
            now = time.monotonic()
            for request in starting:
                self.handovers.append((request.line, request.kind, now))
                self._post(PlaybackStarted(request.line, request.kind, self._clock(), now))
            try:
                self.sink.write(frame)
            except AudioDeviceError as error:
                self._failed(str(error))
            finally:
                with self._cond:
                    self._writing = False

    def _failed(self, message: str) -> None:
        log.warning("playback PCM %s failed: %s", self.pcm, message)
        with self._cond:
            failed = list(self._requests.values())
            self._requests.clear()
        for request in failed:
            self._post(PlaybackFailed(request.line, request.kind, message, self._clock()))
        self.sink.close()
        try:
            self.sink.open()
        except AudioDeviceError as error:
            log.warning("playback PCM %s reopen failed: %s", self.pcm, error)
