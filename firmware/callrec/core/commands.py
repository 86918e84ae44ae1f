"""The control API side of the core: commands, live levels, line states, alarms and stats.

Front ends (MQTT, the control socket) call these from their own threads; commands are handed to the
core thread as `ControlRequest`s and answered through a future, so every decision stays on one
thread. A mixin of `Core`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from callrec.control import CommandError
from callrec.core.call import Call
from callrec.core.state import ControlRequest, LineState
from callrec.recording import Mark

log = logging.getLogger(__name__)


class ControlApi:
    config: Any
    recorder: Any
    players: dict[int, Any]
    announcement: Any
    lines: dict[int, LineState]
    rate: int
    started_monotonic: float
    capture_overruns: int
    _state_lock: threading.Lock
    _states: dict[int, dict[str, Any]]
    _alarms: dict[str, dict[str, Any]]

    def post(self, item: object) -> None: ...
    def _set_paused(self, line: LineState, call: Call, paused: bool, by: str) -> float: ...

    def command(self, name: str, args: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        if name == "ping":
            return {"pong": True}
        reply: Future[dict[str, Any]] = Future()
        self.post(ControlRequest(name, args, reply))
        try:
            return reply.result(timeout=timeout)
        except TimeoutError:
            reply.cancel()   # the caller has given up: the core must not act on it later
            raise

    def _control(self, request: ControlRequest) -> None:
        if not request.reply.set_running_or_notify_cancel():
            log.info("command %s was given up by its caller before the core reached it", request.name)
            return
        try:
            result = self._run_command(request.name, request.args)
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

    def _run_command(self, name: str, args: dict[str, Any]) -> dict[str, Any] | Future[dict[str, Any]]:
        if name == "announcement.test":
            line = self._line_arg(args)
            if line.call is not None or line.monitor.offhook or line.monitor.ringing:
                raise CommandError(f"line {line.id} is not idle; the test announcement plays only when idle")
            player = self.players.get(line.id)
            if player is None or self.announcement is None:
                raise CommandError(f"line {line.id} has no playback path")
            player.play(line.id, self.announcement.samples, "test")
            return {"line": line.id, "duration_s": round(self.announcement.duration_s, 3)}
        if name in ("recording.pause", "recording.resume"):
            line = self._line_arg(args)
            call = line.call
            if call is None:
                raise CommandError(f"line {line.id} has no call in progress")
            pause = name == "recording.pause"
            if pause == call.paused:
                raise CommandError(f"the recording of line {line.id} is {'already' if pause else 'not'} paused")
            at = self._set_paused(line, call, pause, by="command")
            return {"line": line.id, "call_id": call.call_id, "at_s": at}
        if name == "levels":
            return {"lines": [self._levels(line) for line in self.lines.values()]}
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

    def _levels(self, line: LineState, window_s: float = 0.2) -> dict[str, Any]:
        """RMS and peak of the last `window_s` the line carried, in dBFS: computed on request from
        the pre-roll buffer, so live levels cost the audio path nothing."""
        recent = line.preroll.since(line.preroll.end_frame - int(window_s * self.rate)).astype(np.float64)
        if not len(recent):
            return {"line": line.id, "rms_dbfs": None, "peak_dbfs": None, "window_s": window_s}
        rms = float(np.sqrt(np.mean(recent * recent))) / 32768.0
        peak = float(np.max(np.abs(recent))) / 32768.0
        return {"line": line.id, "rms_dbfs": round(20 * np.log10(max(rms, 1e-6)), 1),
                "peak_dbfs": round(20 * np.log10(max(peak, 1e-6)), 1), "window_s": window_s}

    def line_states(self) -> list[dict[str, Any]]:
        with self._state_lock:
            return [dict(self._states[number]) for number in sorted(self._states)]

    def active_alarms(self) -> list[dict[str, Any]]:
        with self._state_lock:
            return [dict(alarm) for alarm in self._alarms.values()]

    def stats(self) -> dict[str, Any]:
        data_dir = self.config.storage.data_dir
        try:
            free = shutil.disk_usage(data_dir).free
        except OSError:
            free = None
        today = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
        return {
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
            "disk_free_bytes": free,
            "calls_today": self.recorder.index.calls_since(today),
            "recordings_stored": self.recorder.index.count(),
            "calls_discarded": self.recorder.stats.discarded,
            "capture_overruns": self.capture_overruns,
            "cpu_temp_c": _cpu_temp(),
        }



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


def _cpu_temp() -> float | None:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp") as handle:
            return round(int(handle.read().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None
