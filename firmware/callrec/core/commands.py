"""The commands of the control API as the core carries them out, on its own thread.

Front ends (MQTT, the control socket) ask through `Core.command`, which hands a `ControlRequest`
to the core's queue and waits for its answer: every decision stays on one thread. Line states,
alarms and stats are not here: front ends build them from the event stream (events/boards.py) and
the service's stats probe (app/stats.py).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

import numpy as np

from callrec.audio import Sound
from callrec.config import Config
from callrec.control import CommandError
from callrec.core.calls import Calls
from callrec.core.state import ControlRequest, LineState, Player
from callrec.recording import Mark, Recorder

log = logging.getLogger(__name__)

# The injection-level check: 1 kHz (the reference frequency of telephone levels) at -10 dBFS RMS.
TEST_TONE_HZ = 1000
TEST_TONE_DBFS = -10.0
TEST_TONE_S = 2.0


class Commands:
    def __init__(self, lines: dict[int, LineState], players: dict[int, Player], announcement: Sound | None,
                 calls: Calls, recorder: Recorder, rate: int, config: Config | None = None) -> None:
        self.pins = {line.id: (line.hook_gpio, line.ring_gpio) for line in config.lines} if config else {}
        self.lines = lines
        self.players = players
        self.announcement = announcement
        self.calls = calls
        self.recorder = recorder
        self.rate = rate

    def handle(self, request: ControlRequest) -> None:
        if not request.reply.set_running_or_notify_cancel():
            log.info("command %s was given up by its caller before the core reached it", request.name)
            return
        try:
            result = self.run(request.name, request.args)
        except CommandError as error:
            request.reply.set_exception(error)
        except Exception as error:
            log.exception("command %s failed", request.name)
            request.reply.set_exception(CommandError(f"internal error: {error}"))
        else:
            if isinstance(result, Future):   # answered by whoever the core handed it to
                result.add_done_callback(lambda done: _relay(done, request.reply))
            else:
                request.reply.set_result(result)

    def _line_arg(self, args: dict[str, Any]) -> LineState:
        number = args.get("line")
        if not isinstance(number, int) or isinstance(number, bool) or number not in self.lines:
            raise CommandError(f"`line` must be one of {sorted(self.lines)}, got {number!r}")
        return self.lines[number]

    def run(self, name: str, args: dict[str, Any]) -> dict[str, Any] | Future[dict[str, Any]]:
        """Carry out a command on the core's thread; a Future when someone else answers it."""
        if name == "announcement.test":
            line = self._idle_line(args, "the test announcement")
            player = self.players.get(line.id)
            if player is None or self.announcement is None:
                raise CommandError(f"line {line.id} has no playback path")
            player.play(line.id, self.announcement.samples, "test")
            return {"line": line.id, "duration_s": round(self.announcement.duration_s, 3)}
        if name == "tone.test":
            line = self._idle_line(args, "the test tone")
            player = self.players.get(line.id)
            if player is None:
                raise CommandError(f"line {line.id} has no playback path")
            if player.busy(line.id):
                raise CommandError(f"line {line.id} is playing a test already; try again when it ends")
            seconds = float(args.get("seconds", TEST_TONE_S))
            player.play(line.id, test_tone(self.rate, seconds), "test")
            return {"line": line.id, "duration_s": seconds, "frequency_hz": TEST_TONE_HZ, "level_dbfs": TEST_TONE_DBFS}
        if name == "gpio":
            return {"lines": [self._gpio(line) for line in self.lines.values()]}
        if name in ("recording.pause", "recording.resume"):
            line = self._line_arg(args)
            call = line.call
            if call is None:
                raise CommandError(f"line {line.id} has no call in progress")
            pause = name == "recording.pause"
            if pause == call.paused:
                raise CommandError(f"the recording of line {line.id} is {'already' if pause else 'not'} paused")
            at = self.calls.set_paused(line, call, pause, by="command")
            return {"line": line.id, "call_id": call.call_id, "at_s": at}
        if name == "levels":
            tone_hz = args.get("tone_hz")
            return {"lines": [self._levels(line, tone_hz=tone_hz if isinstance(tone_hz, int | float) else None)
                              for line in self.lines.values()]}
        if name == "call.mark":
            call_id, tag = args.get("call_id"), args.get("tag")
            if not isinstance(call_id, str) or not isinstance(tag, str) or not tag:
                raise CommandError("`call_id` and `tag` must be non-empty strings")
            for line in self.lines.values():
                if line.call is not None and line.call.call_id == call_id:
                    if tag not in line.call.tags:
                        line.call.tags.append(tag)
                    return {"call_id": call_id, "tags": list(line.call.tags)}
            # An ended call is in the index, which only the recorder writes: it answers.
            answer: Future[dict[str, Any]] = Future()
            self.recorder.submit(Mark(call_id, tag, answer))
            return answer
        raise CommandError(f"unknown command {name!r}")

    def _idle_line(self, args: dict[str, Any], what: str) -> LineState:
        line = self._line_arg(args)
        if line.call is not None or line.monitor.offhook or line.monitor.ringing:
            raise CommandError(f"line {line.id} is not idle; {what} plays only when idle")
        return line

    def _gpio(self, line: LineState) -> dict[str, Any]:
        """Raw levels as the line source last reported them, beside what the monitor made of them
        (debounced hook, ringing): what a technician wiring the tap needs to see move."""
        hook_pin, ring_pin = self.pins.get(line.id, (None, None))
        return {"line": line.id, "hook_pin": hook_pin, "ring_pin": ring_pin,
                "hook_raw": line.raw.get("hook"), "ring_raw": line.raw.get("ring"),
                "offhook": line.monitor.offhook, "ringing": line.monitor.ringing,
                "hook_edges": line.edges.get("hook", 0), "ring_edges": line.edges.get("ring", 0)}

    def _levels(self, line: LineState, window_s: float = 0.2, tone_hz: float | None = None) -> dict[str, Any]:
        """RMS and peak of the last `window_s` the line carried, in dBFS: computed on request from
        the pre-roll buffer, so live levels cost the audio path nothing. With `tone_hz`, also the
        RMS of that one frequency (a single DFT bin): the selftest hears its test tone come back
        under speech or noise louder than the tone."""
        recent = line.preroll.since(line.preroll.end_frame - int(window_s * self.rate)).astype(np.float64)
        if not len(recent):
            return {"line": line.id, "rms_dbfs": None, "peak_dbfs": None, "window_s": window_s}
        rms = float(np.sqrt(np.mean(recent * recent))) / 32768.0
        peak = float(np.max(np.abs(recent))) / 32768.0
        row = {"line": line.id, "rms_dbfs": _db(rms), "peak_dbfs": _db(peak), "window_s": window_s}
        if tone_hz:
            phase = np.exp(-2j * np.pi * tone_hz * np.arange(len(recent)) / self.rate)
            amplitude = 2 * abs(np.dot(recent * np.hanning(len(recent)), phase)) / (len(recent) * 0.5) / 32768.0
            row["tone_dbfs"] = _db(amplitude / np.sqrt(2))
        return row


def _db(ratio: float) -> float:
    return round(20 * float(np.log10(max(ratio, 1e-6))), 1)


def test_tone(rate: int, seconds: float) -> np.ndarray:
    """A 1 kHz sine at TEST_TONE_DBFS (RMS) with 10 ms ramps, so the start and end do not click."""
    t = np.arange(int(rate * seconds)) / rate
    amplitude = 32767 * np.sqrt(2) * 10 ** (TEST_TONE_DBFS / 20)
    wave = amplitude * np.sin(2 * np.pi * TEST_TONE_HZ * t)
    ramp = min(len(wave) // 2, int(rate * 0.01))
    if ramp:
        wave[:ramp] *= np.linspace(0, 1, ramp)
        wave[-ramp:] *= np.linspace(1, 0, ramp)
    tone: np.ndarray = np.round(wave).astype(np.int16)
    return tone


def _relay(done: Future[dict[str, Any]], reply: Future[dict[str, Any]]) -> None:
    if reply.done():
        return   # the caller gave up waiting
    error = done.exception()
    if error is None:
        reply.set_result(done.result())
    elif isinstance(error, CommandError):
        reply.set_exception(error)
    else:
        reply.set_exception(CommandError(f"internal error: {error}"))
