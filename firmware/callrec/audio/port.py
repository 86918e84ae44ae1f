"""The audio port: what a sound card must provide, the second seam where the hardware stops.

Like the line port (line/port.py) it decides nothing: a source hands over frames as the card
delivers them, a sink takes frames to play, and trouble is a typed error. Capture and playback
(capture.py, playback.py) are written against these protocols only, so the same code runs on
ALSA (alsa.py, the only importer of alsaaudio), on the simulator's cards (sim/cards.py) and on the
scripted twin of the tests (twin.py), which plays device loss, overruns and short reads in
milliseconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from callrec.errors import CallrecError

PcmKind = Literal["capture", "playback"]


class AudioDeviceError(CallrecError, OSError):
    """A PCM could not be opened or failed; the message names it and says what to check."""


class ChannelMissing(AudioDeviceError):
    """A line's channel is not on the card; the service names the configuration key it came from."""

    def __init__(self, kind: str, device: str, needed: int, available: int) -> None:
        self.kind = kind
        self.device = device
        self.needed = needed
        self.available = available
        super().__init__(f"{kind} PCM {device!r} has {available} channel(s), {needed} needed")


class Overrun(AudioDeviceError):
    """Capture frames were lost (the reader was late); the device goes on without a reopen."""


class SourceEnded(CallrecError, EOFError):
    """A source of known length (a simulated line) has delivered all of it."""


@dataclass(frozen=True)
class PcmSpec:
    """One PCM as the configuration asks for it: interleaved S16_LE frames of `channels`."""

    name: str
    kind: PcmKind
    channels: int
    rate: int
    period: int   # frames per read or write

    def describe(self) -> str:
        return f"{self.kind} PCM {self.name!r} ({self.channels} ch, {self.rate} Hz)"


class PcmSource(Protocol):
    """Where captured audio comes from. Not thread-safe: one capture thread owns it."""

    spec: PcmSpec

    def open(self) -> None:
        """Open (or reopen) the device; AudioDeviceError (ChannelMissing) when it cannot be."""
        ...

    def read(self) -> np.ndarray:
        """The next frames as int16 of shape (frames, channels): usually a period, maybe fewer,
        maybe none. Raises Overrun (frames were lost, read on), AudioDeviceError (the device is
        gone: close, reopen later) or SourceEnded."""
        ...

    def lost_frames(self) -> int:
        """After a reopen: how many frames the line carried while the device was away."""
        ...

    def close(self) -> None: ...


class PcmSink(Protocol):
    """Where played audio goes. `write` blocks while the device buffer is full (its clock)."""

    spec: PcmSpec

    def open(self) -> None: ...

    def write(self, frames: np.ndarray) -> None:
        """Play int16 frames of shape (frames, channels); AudioDeviceError when the device failed."""
        ...

    def check(self) -> None:
        """Between sounds: AudioDeviceError when the open device has gone away (a card unplugged or
        unbound from its driver). Playback keeps its device open between sounds, so that an
        announcement's first sample goes out at once; but while a vanished card has an open file the
        kernel cannot free it (an unbind waits for the last one), and a write, the only other sign,
        comes with the next sound. So the idle playback thread asks about once a second. Cheap and
        non-blocking; a closed sink has nothing to check."""
        ...

    def close(self) -> None: ...


class ReopenLog:
    """What the journal says while a failed PCM is being reopened: each distinct refusal once, as a
    WARNING (a card away for hours would otherwise fill the journal, or, at DEBUG, say nothing), and
    its return as INFO. On an appliance this is what the technician reads."""

    def __init__(self, logger: logging.Logger, what: str, every_s: float) -> None:
        self._log = logger
        self._what = what        # "capture PCM hw:…"
        self._every_s = every_s
        self._said: str | None = None

    def refused(self, message: str) -> None:
        if message != self._said:
            self._said = message
            self._log.warning("%s is not back: %s; trying again every %.1f s", self._what, message, self._every_s)

    def reopened(self) -> None:
        self._said = None
        self._log.info("%s reopened", self._what)


class AudioBackend(Protocol):
    """Makes the sources and sinks of one machine (or one simulation)."""

    def source(self, spec: PcmSpec) -> PcmSource: ...

    def sink(self, spec: PcmSpec) -> PcmSink: ...
