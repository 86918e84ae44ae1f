"""Scripted twins of the audio port: a card that does exactly what a test tells it to.

They let the recovery paths of capture and playback (a device that vanishes and comes back, an
overrun, a short read, a playback that fails) be tested in milliseconds and deterministically,
next to the real PulseAudio test of the same paths. They ship in the package, as the simulated
line does, so a test reads like the behaviour it pins:

    source = ScriptedSource(spec, audio, [Gone(at=1600, away=800, refusals=2)])
    sink.unplug()   # the card is unbound between two sounds
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from callrec.audio.port import AudioDeviceError, Overrun, PcmSpec, SourceEnded


@dataclass(frozen=True)
class Gone:
    """At frame `at` the card vanishes; it refuses `refusals` reopens, then is back `away` frames later."""

    at: int
    away: int
    refusals: int = 0


@dataclass(frozen=True)
class Overflow:
    """At frame `at` the reader was late: `lost` frames are gone and the read reports an overrun."""

    at: int
    lost: int


@dataclass(frozen=True)
class Short:
    """The read at frame `at` hands over only `frames` frames (a period split across reads)."""

    at: int
    frames: int


Fault = Gone | Overflow | Short


@dataclass
class ScriptedSource:
    """Plays `audio` (int16, frames x channels) a period per read, doing the script's faults."""

    spec: PcmSpec
    audio: np.ndarray
    script: list[Fault] = field(default_factory=list)
    opens: int = 0
    closes: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        self._pending = sorted(self.script, key=lambda f: f.at)
        self._gone: Gone | None = None
        self._refused = 0
        self._lost = 0
        self._open = False

    def open(self) -> None:
        if self._gone is not None:
            if self._refused < self._gone.refusals:
                self._refused += 1
                raise AudioDeviceError(f"{self.spec.describe()}: no such device (scripted)")
            self.position += self._gone.away
            self._lost = self._gone.away
            self._gone = None
        self.opens += 1
        self._open = True

    def read(self) -> np.ndarray:
        if not self._open:
            raise AudioDeviceError(f"{self.spec.describe()} is not open")
        if self.position >= len(self.audio):
            raise SourceEnded(self.spec.name)
        due = self._pending[0] if self._pending and self._pending[0].at <= self.position else None
        count = self.spec.period
        if due is not None:
            self._pending.pop(0)
            if isinstance(due, Gone):
                self._gone, self._refused, self._open = due, 0, False
                raise AudioDeviceError(f"{self.spec.describe()} failed: device gone (scripted)")
            if isinstance(due, Overflow):
                self.position += due.lost
                raise Overrun(f"capture overrun on {self.spec.name} (scripted)")
            count = due.frames
        frames = self.audio[self.position:self.position + count]
        self.position += len(frames)
        return frames

    def lost_frames(self) -> int:
        lost, self._lost = self._lost, 0
        return lost

    def close(self) -> None:
        self.closes += 1
        self._open = False


@dataclass
class ScriptedSink:
    """Keeps what is played; the writes numbered in `fail_writes` fail as a vanished device would.

    `unplug()` takes the card away as an unbind does: the open device reports itself gone (`check`,
    `write`) and opens are refused until `plug_in()`. Writing to a closed sink fails, as it would on a
    card, so a player that forgot to reopen is caught."""

    spec: PcmSpec
    fail_writes: set[int] = field(default_factory=set)
    written: list[np.ndarray] = field(default_factory=list)
    opens: int = 0
    closes: int = 0
    refused: int = 0   # opens refused while unplugged
    writes: int = 0
    is_open: bool = False
    present: bool = True

    def unplug(self) -> None:
        self.present = False

    def plug_in(self) -> None:
        self.present = True

    def open(self) -> None:
        if not self.present:
            self.refused += 1
            raise AudioDeviceError(f"cannot open {self.spec.describe()}: no such device (scripted)")
        self.opens += 1
        self.is_open = True

    def check(self) -> None:
        if self.is_open and not self.present:
            raise AudioDeviceError(f"{self.spec.describe()} is gone: disconnected (scripted)")

    def write(self, frames: np.ndarray) -> None:
        self.writes += 1
        if not self.is_open:
            raise AudioDeviceError(f"{self.spec.describe()} is not open (scripted)")
        if not self.present or self.writes in self.fail_writes:
            raise AudioDeviceError(f"{self.spec.describe()} failed (scripted)")
        self.written.append(np.array(frames, copy=True))

    def close(self) -> None:
        if self.is_open:
            self.closes += 1
        self.is_open = False

    def played(self) -> np.ndarray:
        channels = self.spec.channels
        return np.concatenate(self.written) if self.written else np.zeros((0, channels), dtype=np.int16)
