"""The simulator's sound cards: the audio port's simulated twin, over real alsa-lib.

Each simulated card is a pair of ALSA `file`-plugin PCMs (sim/lineaudio.py writes them): capture
reads the lines' audio from a raw infile, playback writes what the device played to a WAV. Around
them the card does what the telephone line and the wire of a real installation do:

- it carries the line: the scenario's hook and ring edges fire at the exact sample of their `at`,
  right after the audio before them was handed over (`handover`), and what the device plays comes
  back into the captured audio on the line's channel, a period after it was written, as through
  the tap's hybrid;
- it has the faults the scenario schedules: unplugged for a while (`capture_gone`: reads fail,
  the line goes on unheard, the reopen reports how long it was away);
- unpaced, it paces the simulation: it reads no further than a real line would be heard before
  the device acts (the pipeline settles after every edge and while a call waits for its far end,
  both told by the event stream), and several cards keep in step (`Lockstep`).

With `--realtime` the same PCMs read through a private PulseAudio: the line runs at wall-clock pace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from callrec.audio import AudioDeviceError, PcmSink, PcmSource, PcmSpec, SourceEnded
from callrec.dsp import saturate
from callrec.events import StampedEvent
from callrec.line import SimulatedLine
from callrec.sim.scenario import ScenarioEvent

log = logging.getLogger(__name__)

URGENT_AFTER_EDGE_S = 0.15   # after an edge, read in step with the device for this long (debounce, act)
PLAYED_ROOM_PERIODS = 4      # the playback buffer of the simulated card, as ALSA's (4 periods)


class Lockstep:
    """Keeps unpaced capture threads within a few periods of each other: one timeline for events."""

    def __init__(self, cards: list[str], slack_frames: int) -> None:
        self._positions: dict[str, int] = dict.fromkeys(cards, 0)
        self.slack = slack_frames
        self._cond = threading.Condition()

    def wait_turn(self, card: str, frame: int) -> None:
        if len(self._positions) < 2:
            return
        with self._cond:
            self._positions[card] = frame
            self._cond.notify_all()
            while True:
                others = [pos for other, pos in self._positions.items() if other != card]
                if not others or frame <= min(others) + self.slack:
                    return
                self._cond.wait(timeout=0.5)

    def done(self, card: str) -> None:
        with self._cond:
            self._positions.pop(card, None)
            self._cond.notify_all()


class WallClock:
    """The wall clock of the simulated appliance: labels for line times, as a Pi gives them.

    A label is the wall clock read now minus how long ago the moment was (app/service.py's
    hardware backend does the same with the monotonic clock), so a step of the wall clock moves
    labels and never a duration. Paced, "now" is the real wall clock and line time 0 is when a card
    delivered its first period (PulseAudio takes about a second after the open: labels taken from
    the start of the program would run that much ahead of the line). Unpaced, the wall runs with
    line time. Scenario `clock_step` faults step it at a line time, by their `seconds`.
    """

    def __init__(self, paced: bool, steps: list[tuple[float, float]],
                 unsynchronised: list[tuple[float, float]] | None = None) -> None:
        self._paced = paced
        self._steps = sorted(steps)
        self._unsynchronised = list(unsynchronised or [])
        self._mono0: float | None = None
        self._fallback = time.monotonic()
        self._start_wall = time.time()
        self._now_t = 0.0

    def mark(self, t_end: float) -> None:
        """A card read up to line time `t_end`."""
        if self._mono0 is None:
            self._mono0 = time.monotonic() - t_end
        self._now_t = max(self._now_t, t_end)

    def status(self) -> dict[str, object]:
        """The clock port's twin: synchronised but while a `clock_unsynchronised` fault lasts."""
        unsynced = any(at <= self._now_t < at + seconds for at, seconds in self._unsynchronised)
        return {"synchronised": not unsynced, "source": "simulated", "offset_s": None if unsynced else 0.0,
                "max_error_s": None}

    def wall_of(self, t: float) -> float:
        step = sum(seconds for at, seconds in self._steps if self._now_t >= at)
        if not self._paced:
            return self._start_wall + step + t
        mono0 = self._mono0 if self._mono0 is not None else self._fallback
        return time.time() + step - (time.monotonic() - (mono0 + t))


@dataclass
class CardLine:
    """A line on a card: its channel and the edges still to fire, in time order."""

    line: int
    channel: int
    events: list[ScenarioEvent]
    awaiting_answer: bool = False   # a call on it waits for its far end (from the event stream)


@dataclass
class SimCard:
    """One simulated card: its capture and playback PCMs and the lines it carries."""

    name: str
    capture: PcmSource               # the real alsa-lib file-plugin capture PCM
    playback: PcmSink                # the real alsa-lib file-plugin playback PCM
    lines: dict[int, CardLine]
    max_frames: int
    source_line: SimulatedLine
    lockstep: Lockstep
    clock: WallClock
    gone: list[tuple[int, int]] = field(default_factory=list)   # frame windows the card is unplugged
    settle: Callable[[], None] = lambda: None                     # the pipeline has taken what it heard
    player_idle: Callable[[], bool] = lambda: True                # the card's player has nothing to play
    paced: bool = False                                           # a real clock (PulseAudio) runs the line
    edge_monotonic: dict[float, float] = field(default_factory=dict)   # scenario at -> monotonic (latency)

    def __post_init__(self) -> None:
        self.rate = self.capture.spec.rate
        self.position = 0                # frames of the line delivered (or passed while unplugged)
        self._urgent_until = -1.0
        self._gated_at = -(10**9)
        self._played: list[np.ndarray] = []   # written by the player, not yet back on the line
        self._played_frames = 0
        self._cond = threading.Condition()
        self._unplugged: tuple[int, int] | None = None
        self._lost = 0
        self._capture_open = False
        self._carry = np.zeros((0, self.capture.spec.channels), dtype=np.int16)   # read, not yet handed over

    # ---- the line ------------------------------------------------------------------------------

    def on_event(self, stamped: StampedEvent) -> None:
        """Bus listener (quick, on the emitter's thread): which lines wait for a far end to answer."""
        event = stamped.event
        line = self.lines.get(event.line) if event.line is not None else None
        if line is None:
            return
        if event.type == "call.started":
            line.awaiting_answer = True
        elif event.type in ("call.answered", "call.ended"):
            line.awaiting_answer = False

    def _edge_frame(self, event: ScenarioEvent) -> int:
        return int(round(event.at * self.rate))

    def _next_edge_frame(self) -> int | None:
        frames = [self._edge_frame(line.events[0]) for line in self.lines.values() if line.events]
        return min(frames) if frames else None

    def handover(self, frames: int) -> bool:
        """Hand the batch to the core now: an edge falls in the next period (the audio before an
        edge reaches the core before the edge, as on a Pi, where edges come at once and audio in
        batches), the core is to act on what it hears (right after an edge, while a far end may
        answer), or the line is over."""
        edge = self._next_edge_frame()
        t = frames / self.rate
        return ((edge is not None and edge <= frames + self.capture.spec.period)
                or t < self._urgent_until or any(line.awaiting_answer for line in self.lines.values())
                or frames >= self.max_frames)

    def _fire_edges(self) -> None:
        """The edges at or before the audio handed over so far, each at its own sample."""
        for line in self.lines.values():
            while line.events and self._edge_frame(line.events[0]) <= self.position:
                event = line.events.pop(0)
                self._urgent_until = event.at + URGENT_AFTER_EDGE_S
                # when the edge happened on the paced line: the read ended (position - at) after it
                self.edge_monotonic[event.at] = time.monotonic() - (self.position / self.rate - event.at)
                if event.signal == "isdn":
                    self.source_line.inform(event.info)
                else:
                    self.source_line.drive(line.line, event.signal, event.active, event.at)  # type: ignore[arg-type]

    def _pace(self) -> None:
        if self.position - self._gated_at >= self.lockstep.slack // 2:
            self._gated_at = self.position
            self.lockstep.wait_turn(self.name, self.position)
        t = self.position / self.rate
        if t < self._urgent_until or any(line.awaiting_answer for line in self.lines.values()):
            self.settle()

    # ---- capture -------------------------------------------------------------------------------

    def open_capture(self) -> None:
        if self._unplugged is not None:
            start, end = self._unplugged
            while self.position < end:   # the line goes on while nobody listens (the player too)
                frames = self._carry if len(self._carry) else self.capture.read()
                frames, self._carry = frames[: end - self.position], frames[end - self.position:]
                self._mix_played(frames)
                self.position = min(self.position + len(frames), self.max_frames)
            self._fire_edges()
            self._lost = end - start
            self._unplugged = None
        if not self._capture_open:
            self.capture.open()
            self._capture_open = True

    def read(self) -> np.ndarray:
        self._fire_edges()
        if self.position >= self.max_frames:
            self.lockstep.done(self.name)
            raise SourceEnded(self.name)
        window = next(((s, e) for s, e in self.gone if s <= self.position < e), None)
        if window is not None:
            self._unplugged = window
            raise AudioDeviceError(f"{self.capture.spec.describe()} failed: the simulated card was unplugged")
        self._pace()
        self._keep_player_in_step()
        if not len(self._carry):
            self._carry = self.capture.read()
        # A read ends at the next edge, so the edge fires between the audio before and after it.
        limit = min(len(self._carry), self.max_frames - self.position)
        edge = self._next_edge_frame()
        if edge is not None and self.position < edge < self.position + limit:
            limit = edge - self.position
        frames, self._carry = self._carry[:limit], self._carry[limit:]
        frames = self._mix_played(frames)
        self.position += len(frames)
        self.clock.mark(self.position / self.rate)
        return frames

    def lost_frames(self) -> int:
        lost, self._lost = self._lost, 0
        return lost

    def _mix_played(self, frames: np.ndarray) -> np.ndarray:
        """What the device played comes back on the line (the tap hears both directions)."""
        with self._cond:
            if not self._played_frames:
                return frames
            need = len(frames)
            taken: list[np.ndarray] = []
            while need and self._played:
                head = self._played[0]
                part, rest = head[:need], head[need:]
                taken.append(part)
                need -= len(part)
                if len(rest):
                    self._played[0] = rest
                else:
                    self._played.pop(0)
            got = sum(len(part) for part in taken)
            self._played_frames -= got
            self._cond.notify_all()
        played = np.concatenate(taken)
        mixed = frames.astype(np.int32)
        for line in self.lines.values():
            mixed[:got, line.channel] += played[:, min(line.channel, played.shape[1] - 1)]
        return saturate(mixed)

    # ---- playback ------------------------------------------------------------------------------

    def _keep_player_in_step(self) -> None:
        """Unpaced, the card's one clock is this read: while a sound plays, the player is let run
        until it waits for room in the card's buffer, so each period read carries the next period
        played, as a real card's common clock would have it."""
        if self.paced:
            return
        room = PLAYED_ROOM_PERIODS * self.playback.spec.period
        deadline = time.monotonic() + 5.0
        with self._cond:
            while self._played_frames < room and not self.player_idle() and time.monotonic() < deadline:
                self._cond.wait(0.002)

    def play_clock(self) -> float:
        """Line time at which the next frame written to the card sounds on the line."""
        with self._cond:
            return (self.position + self._played_frames) / self.rate

    def write_played(self, frames: np.ndarray) -> None:
        """The player's write: into the card's buffer (waiting for room, as ALSA's write does)."""
        self.playback.write(frames)
        room = PLAYED_ROOM_PERIODS * self.playback.spec.period
        with self._cond:
            self._cond.wait_for(lambda: self._played_frames < room or self.position >= self.max_frames, 5.0)
            self._played.append(np.array(frames, copy=True))
            self._played_frames += len(frames)


class SimSource:
    """The audio port's source side of a simulated card."""

    def __init__(self, card: SimCard) -> None:
        self.card = card
        self.spec: PcmSpec = card.capture.spec

    def open(self) -> None:
        self.card.open_capture()

    def read(self) -> np.ndarray:
        return self.card.read()

    def lost_frames(self) -> int:
        return self.card.lost_frames()

    def close(self) -> None:
        pass   # unplugged or not, the line (the infile) goes on: the real PCM closes with the card


class SimSink:
    """The audio port's sink side of a simulated card."""

    def __init__(self, card: SimCard) -> None:
        self.card = card
        self.spec: PcmSpec = card.playback.spec

    def open(self) -> None:
        self.card.playback.open()

    def write(self, frames: np.ndarray) -> None:
        self.card.write_played(frames)

    def check(self) -> None:
        self.card.playback.check()   # the real file-plugin PCM: a simulated card does not vanish from it

    def close(self) -> None:
        self.card.playback.close()


class SimulatedCards:
    """The audio backend of a simulation: its cards, found by the names of their PCMs."""

    def __init__(self, cards: list[SimCard]) -> None:
        self.cards = cards
        self._by_capture = {card.capture.spec.name: card for card in cards}
        self._by_playback = {card.playback.spec.name: card for card in cards}

    def source(self, spec: PcmSpec) -> SimSource:
        return SimSource(self._by_capture[spec.name])

    def sink(self, spec: PcmSpec) -> SimSink:
        return SimSink(self._by_playback[spec.name])

    def close(self) -> None:
        for card in self.cards:
            card.capture.close()
            card.playback.close()
