"""Playback: announcements and warning tones injected into the line through the tap.

One thread per playback sink (a stereo card can serve two lines, one channel each). The sink is
opened at start, so a wrong name is a start-up error, and kept open between sounds: the first
sample of an announcement is handed over as soon as the core asks, with no open and no ramp-up.
The thread says when playback started (`PlaybackStarted`), on the clock it is given: on a Pi the
monotonic clock at the hand-over, in simulation the line time at which the sample will sound.

A card can vanish (unplugged, unbound from its driver) while nothing plays, and the kernel frees it
only once its last open file is closed, so an idle sink that held on until the next sound would
hold the card's removal (and the unbind) until then. So the idle thread asks the sink every
`check_s` whether its device is still there; a gone one is closed and reported to the core as a
failed playback of each of its lines (the playback alarm), and reopened at the next check (or by
the next sound) once the card is back. Written against the audio port only (port.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from callrec.audio.port import AudioDeviceError, PcmSink, ReopenLog

log = logging.getLogger(__name__)

# How often an idle player asks its sink whether the card is still there (and retries a closed one):
# an unbind waits this long at most for playback to let go. The check costs one ioctl.
IDLE_CHECK_S = 1.0


@dataclass(frozen=True)
class PlaybackStarted:
    line: int
    kind: str             # "announcement" | "warning_tone" | "test"
    t: float              # core clock of the first sample on the line
    monotonic: float      # wall monotonic of the hand-over (for latency figures)


@dataclass(frozen=True)
class PlaybackFailed:
    line: int
    kind: str             # the sound's, or "device": the card went away while nothing played
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
        *,
        check_s: float = IDLE_CHECK_S,
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
        self.check_s = check_s
        self._sink_open = False   # only the playback thread changes it once started
        self._reopen_log = ReopenLog(log, f"playback PCM {self.pcm}", check_s)
        self.handovers: list[tuple[int, str, float]] = []   # (line, kind, monotonic): latency figures

    def open(self) -> None:
        self.sink.open()
        self._sink_open = True

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
        self._sink_open = False

    def _has_work(self) -> bool:
        return bool(self._requests) or self._stopping

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(self._has_work, self.check_s):
                    work = None
                elif self._stopping:
                    return
                else:
                    work = self._next_frame()
            if work is None:
                self._look_after_sink()
            else:
                self._hand_over(*work)

    def _next_frame(self) -> tuple[np.ndarray, list[_Request]]:
        """The next period of every line's sound, mixed by channel (under the lock)."""
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
        return frame, starting

    def _hand_over(self, frame: np.ndarray, starting: list[_Request]) -> None:
        now = time.monotonic()
        for request in starting:
            self.handovers.append((request.line, request.kind, now))
            self._post(PlaybackStarted(request.line, request.kind, self._clock(), now))
        try:
            if not self._sink_open:   # the card went away earlier: this sound tries it again
                self._open_sink()
            self.sink.write(frame)
        except AudioDeviceError as error:
            self._failed(str(error))
        finally:
            with self._cond:
                self._writing = False

    def _look_after_sink(self) -> None:
        """Idle: let a device that went away go, and take a closed one back once it is there."""
        if not self._sink_open:
            self._reopen()
            return
        try:
            self.sink.check()
        except AudioDeviceError as error:
            self._gone(str(error))

    def _gone(self, message: str) -> None:
        log.warning("playback PCM %s went away while idle: %s; closed it so that the card can go, "
                    "it is reopened when it is back", self.pcm, message)
        self._let_go()
        t = self._clock()
        for line in sorted(self.channels):
            self._post(PlaybackFailed(line, "device", message, t))

    def _failed(self, message: str) -> None:
        """A write, or the open before it, failed: the sounds playing are dropped and reported. A
        sink that was open is reopened at once (most failures are the stream's, not the card's); a
        refused one is left to the idle checks."""
        log.warning("playback PCM %s failed: %s", self.pcm, message)
        with self._cond:
            failed = list(self._requests.values())
            self._requests.clear()
        for request in failed:
            self._post(PlaybackFailed(request.line, request.kind, message, self._clock()))
        if self._sink_open:
            self._let_go()
            self._reopen()

    def _open_sink(self) -> None:
        self.sink.open()
        self._sink_open = True
        self._reopen_log.reopened()

    def _reopen(self) -> None:
        try:
            self._open_sink()
        except AudioDeviceError as error:
            self._reopen_log.refused(str(error))

    def _let_go(self) -> None:
        self.sink.close()
        self._sink_open = False
