"""The core: the one owner of line and call state, on one thread, on injected time.

Hardware threads (GPIO callbacks, capture, playback) only post what they saw into the core's queue;
the core decides and tells the writers (recorder, players, LEDs) and the event bus what to do.
Nothing reaches back into a hardware thread, so every decision is taken in one order, and tests can
drive the core with edges and periods at any pace.

Time: every input carries `t` on the core clock (monotonic seconds on a Pi, line-audio seconds in
simulation). Audio periods are the heartbeat: each advances the line monitor, so debounce, flash and
hang-up decisions fall on the right sample. `wall_of(t)` labels times for records and events.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from callrec.audio.capture import AudioPeriod, CaptureEnded, CaptureFault
from callrec.audio.detect import LineDetectors
from callrec.audio.playback import PlaybackFailed, PlaybackStarted
from callrec.audio.preroll import PreRoll
from callrec.audio.sound import Sound
from callrec.config import Config
from callrec.core.call import Call, new_call_id
from callrec.core.commands import ControlApi
from callrec.core.progress import CallProgress
from callrec.core.state import (
    AUDIO_BATCH_PERIODS,
    OVERRUN_QUIET_S,
    PREROLL_SLACK_S,
    ControlRequest,
    LineState,
    Player,
    Shutdown,
)
from callrec.events import Event, EventBus, StampedEvent, utc_iso
from callrec.line import LedState, LineMonitor, MonitorSettings, RawEdge
from callrec.line import monitor as sig
from callrec.recording import (
    Audio,
    Begin,
    Finish,
    Gap,
    Note,
    Recorder,
    RecordingFailed,
    RecordingOpened,
    StorageChanged,
    day_dir,
)

log = logging.getLogger(__name__)


class Core(CallProgress, ControlApi):
    """One thread, one queue of inputs, all line and call state. Commands and line intelligence
    live in the mixins of core/control.py and core/progress.py; they share this state."""

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        recorder: Recorder,
        players: dict[int, Player],
        set_led: Callable[[int, LedState], None],
        wall_of: Callable[[float], float],
        announcement: Sound | None,
        *,
        expected_captures: int | None = None,
        queue_size: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.recorder = recorder
        self.players = players
        self.set_led = set_led
        self.wall_of = wall_of
        self.announcement = announcement
        self.rate = config.audio.sample_rate
        # On hardware the core clock is monotonic and the core wakes itself when a decision falls
        # due (debounce, flash window), however the audio is batched. In simulation time is the
        # line audio's and only audio moves it: no clock.
        self.clock = clock
        profile = config.profile()
        settings = MonitorSettings(
            debounce_s=config.hook.debounce_ms / 1000,
            ring_gap_s=config.hook.ring_gap_ms / 1000,
            inbound_window_s=config.hook.inbound_window_s,
            flash_min_s=profile.flash_min_ms / 1000,
            flash_max_s=profile.flash_max_ms / 1000,
            nd_enabled=config.number_display(),
            nd_car_max_s=config.hook.number_display_car_max_s,
            nd_max_offhook_s=config.hook.number_display_max_offhook_s,
        )
        capacity = int((config.audio.preroll_seconds + PREROLL_SLACK_S) * self.rate)
        self.lines = {
            line.id: LineState(line.id, LineMonitor(line.id, settings), PreRoll(capacity))
            for line in config.lines
        }
        if config.signals.enabled:
            for line in self.lines.values():
                line.detectors = LineDetectors(config.region, self.rate)
        self.preroll_frames = int(round(config.audio.preroll_seconds * self.rate))
        # audio goes to the recorder at least this much at a time (a few periods: one hand-over)
        self.batch_frames = AUDIO_BATCH_PERIODS * self.rate * config.audio.period_ms // 1000
        self._warning = None
        if config.announcement.warning_tone:
            from callrec.audio.sound import tone

            a = config.announcement
            self._warning = tone(a.warning_tone_hz, a.warning_tone_s, self.rate, a.warning_tone_dbfs)
        self._queue: queue.Queue[object] = queue.Queue()
        # Simulation paces capture by bounding the audio waiting here; only audio ever waits for
        # room: edges, commands and the recorder's answers go in at once (the recorder waits on
        # the core's decisions, and the core on it: both waiting for room would be a deadlock).
        self._audio_room = threading.BoundedSemaphore(queue_size) if queue_size else None
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._alarms: dict[str, dict[str, Any]] = {}
        self._states: dict[int, dict[str, Any]] = {}
        self._overrun_at: dict[str, float] = {}   # PCM -> core time of its last overrun
        self.storage_problem: str | None = None    # the recorder says recordings cannot be written
        bus.subscribe(self._track_alarms)
        for line in self.lines.values():
            self._publish_state(line)
        self._expected_captures = expected_captures
        self._ended_captures = 0
        self.finished = threading.Event()
        self.started_monotonic = time.monotonic()
        self.last_loop_monotonic = time.monotonic()
        self.last_audio_monotonic = 0.0
        self.capture_overruns = 0

    # ---- threads -------------------------------------------------------------------------------

    def post(self, item: object) -> None:
        """Called from any thread; blocks only audio, and only when simulation bounds it (pacing)."""
        if self._audio_room is not None and isinstance(item, AudioPeriod):
            self._audio_room.acquire()
        self._queue.put(item)

    def wait_caught_up(self) -> None:
        """Block until every input posted so far has been decided on (simulation pacing)."""
        self._queue.join()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="core", daemon=True)
        self._thread.start()

    def stop(self, reason: str = "service stopping") -> None:
        self.post(Shutdown(reason))
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._wake_in())
            except queue.Empty:
                self.last_loop_monotonic = time.monotonic()
                try:
                    self._advance_all(self.clock() if self.clock else 0.0)
                except Exception:  # as for inputs: a failed decision must not stop the core
                    log.exception("core failed on a timed decision")
                continue
            self.last_loop_monotonic = time.monotonic()
            if isinstance(item, Shutdown):
                self._shutdown(item.reason)
                self._queue.task_done()
                return
            try:
                self.process(item)
            except Exception:  # a bug in one decision must not stop the recorder
                log.exception("core failed handling %s", type(item).__name__)
            finally:
                if self._audio_room is not None and isinstance(item, AudioPeriod):
                    self._audio_room.release()
                self._queue.task_done()

    def _wake_in(self) -> float | None:
        """Seconds until the earliest pending decision, at most a second (the watchdog's heartbeat)."""
        if self.clock is None:
            return None
        dues = [due for line in self.lines.values() if (due := line.monitor.next_due()) is not None]
        if not dues:
            return 1.0
        return min(1.0, max(0.0, min(dues) - self.clock()))

    def _advance_all(self, now: float) -> None:
        for line in self.lines.values():
            self._signals(line, line.monitor.advance(now))
            self._timers(line, now)

    def process(self, item: object) -> None:
        """Take one input on the caller's thread (the core thread, or a test driving it directly)."""
        if isinstance(item, AudioPeriod):
            self._audio(item)
        elif isinstance(item, RawEdge):
            line = self.lines.get(item.line)
            if line is not None:
                self._signals(line, line.monitor.edge(item))
        elif isinstance(item, PlaybackStarted):
            self._playback_started(item)
        elif isinstance(item, PlaybackFailed):
            self._playback_failed(item)
        elif isinstance(item, CaptureFault):
            self._capture_fault(item)
        elif isinstance(item, CaptureEnded):
            self._capture_ended(item)
        elif isinstance(item, ControlRequest):
            self._control(item)
        elif isinstance(item, RecordingOpened | RecordingFailed):
            self._recording_state(item)
        elif isinstance(item, StorageChanged):
            self._storage_changed(item)
        else:
            log.warning("core ignored an unknown input %r", type(item).__name__)

    # ---- audio ---------------------------------------------------------------------------------

    def _audio(self, period: AudioPeriod) -> None:
        line = self.lines.get(period.line)
        if line is None:
            return
        self.last_audio_monotonic = time.monotonic()
        start = period.frame_end - len(period.samples)
        if start > line.frame_end:
            self._capture_gap(line, start - line.frame_end)
        if self._overrun_at:
            for pcm, at in list(self._overrun_at.items()):
                if period.t_end - at > OVERRUN_QUIET_S:   # overruns have stopped: the alarm is over
                    del self._overrun_at[pcm]
                    self._clear_alarm(f"overrun:{pcm}", period.t_end)
        line.preroll.append(period.samples)
        line.frame_end = period.frame_end
        line.t_end = period.t_end
        call = line.call
        if call is not None:
            call.audio.append(np.zeros_like(period.samples) if call.paused else period.samples)
            call.audio_frames += len(period.samples)
            if call.audio_frames >= self.batch_frames:
                self._flush_audio(call)
        self._signals(line, line.monitor.advance(period.t_end))
        if line.detectors is not None:
            t0 = period.t_end - len(period.samples) / self.rate
            for detection in line.detectors.feed(period.samples, t0):
                self._detection(line, detection)
            if line.call is not None and line.call.answer_pending and line.ringback:
                self._voice_after_ringback(line, line.call, period, t0)
        self._timers(line, period.t_end)

    def _capture_gap(self, line: LineState, frames: int) -> None:
        """The capture came back after its card was away: the line went on unheard for `frames`.
        Frame numbers keep the line's time, so the pre-roll and the call's file get silence there
        and the call record says where and how long."""
        line.preroll.silence(frames)
        line.frame_end += frames
        call = line.call
        if call is None:
            return
        self._flush_audio(call)
        call.errors.append(f"the line was not heard for {frames / self.rate:.1f} s (capture card away)")
        self.recorder.submit(Gap(call.call_id, frames, "capture"))

    def frame_at(self, line: LineState, t: float) -> int:
        return line.frame_end - int(round((line.t_end - t) * self.rate))

    # ---- line signals → calls ----------------------------------------------------------------------

    def _signals(self, line: LineState, signals: list[sig.LineSignal]) -> None:
        for signal in signals:
            self._signal(line, signal)

    def _signal(self, line: LineState, s: sig.LineSignal) -> None:
        call_id = line.call.call_id if line.call else None
        if isinstance(s, sig.RingStarted):
            self._emit("line.ring", line.id, None, s.t, state="on")
            self._set_state(line, "ringing", s.t)
        elif isinstance(s, sig.RingEnded):
            self._emit("line.ring", line.id, None, s.t, state="off", count=s.count,
                       duration_s=round(s.duration_s, 3), car=s.car)
        elif isinstance(s, sig.RingingStopped):
            self._emit("line.ring", line.id, None, s.t, state="stopped", count=s.rings)
            line.caller = None   # a missed call: its caller ID must not label the next call
            self._set_state(line, "idle", s.t)
        elif isinstance(s, sig.HookChanged):
            self._emit("line.hook", line.id, call_id, s.t, state="offhook" if s.offhook else "onhook")
            if s.offhook and line.call is None:
                self._set_state(line, "offhook", s.t)
            elif not s.offhook and line.call is None:
                self._set_state(line, "idle", s.t)
        elif isinstance(s, sig.NumberDisplaySeen):
            log.info("line %d: Number Display exchange (%.2f s off-hook), not a call", line.id,
                     s.t - s.t_off)
        elif isinstance(s, sig.CallBegan):
            self._begin_call(line, s)
        elif isinstance(s, sig.FlashSeen):
            if line.call is None and line.monitor.in_call:
                # The far end hung up (busy tone ended our call) and the office flashed to go on:
                # a new call from the end of the flash, so nothing after it goes unrecorded.
                self._begin_call(line, sig.CallBegan(s.t + s.duration_s, "outbound", 0))
                return
            if line.call is not None:
                line.call.flashes.append({"at_s": round(s.t - line.call.started_t, 3),
                                          "duration_s": round(s.duration_s, 3)})
            self._emit("line.flash", line.id, call_id, s.t, duration_s=round(s.duration_s, 3))
        elif isinstance(s, sig.CallEnded):
            self._end_call(line, s.t)

    def _begin_call(self, line: LineState, s: sig.CallBegan) -> None:
        wall = self.wall_of(s.t)
        call = Call(
            call_id=new_call_id(wall, line.id),
            line=line.id,
            direction=s.direction,
            rings=s.rings,
            started_t=s.t,
            started_wall=wall,
            start_frame=max(0, self.frame_at(line, s.t) - self.preroll_frames),
            preroll_s=0.0,
        )
        call.preroll_s = round((self.frame_at(line, s.t) - max(call.start_frame, line.preroll.start_frame))
                               / self.rate, 4)
        if call.direction == "inbound" and line.caller is not None:
            call.caller = line.caller   # before the state goes out: dashboards show who is calling
        line.caller = None
        line.voice_since = None
        line.call = call
        initial = line.preroll.since(call.start_frame)
        call.start_frame = line.preroll.end_frame - len(initial)
        self.recorder.submit(Begin(call.call_id, line.id, day_dir(self.config.storage.data_dir, wall),
                                   self._meta(call), initial))
        self._set_state(line, "recording", s.t)
        self._emit("call.started", line.id, call.call_id, s.t, direction=call.direction, rings=call.rings,
                   preroll_s=call.preroll_s)
        signals = self.config.signals
        if call.direction == "outbound" and signals.enabled and signals.outbound_announcement == "far_end_answer":
            call.answer_pending = True   # the announcement waits for someone to be there
            call.answer_fallback_t = s.t + signals.answer_fallback_s
        else:
            self._answer(line, call, s.t, "offhook")

    def _answer(self, line: LineState, call: Call, t: float, source: str) -> None:
        """Someone is there: inbound at our off-hook; outbound when ringback stops (or at the
        off-hook, or at the fallback, as configured). The announcement starts now."""
        call.answer_pending = False
        call.answer_source = source
        call.answered_t = t
        call.answered_wall = self.wall_of(t)
        self._emit("call.answered", line.id, call.call_id, t, direction=call.direction)
        if self.config.announcement.enabled:
            call.announce_pending = True
            self._announce(line, call, t)
        if self._warning is not None:
            call.next_warning_t = t + self.config.announcement.warning_tone_every_s
        self.recorder.submit(Note(call.call_id, {"record": call.record()}))

    def _announce(self, line: LineState, call: Call, t: float) -> None:
        """Play the notice once the call is answered *and* really being recorded: a caller is never
        told "this call is recorded" when it is not (the recorder could not open its file)."""
        if not call.announce_pending or call.recording != "open":
            return
        call.announce_pending = False
        player = self.players.get(line.id)
        if self.announcement is not None and player is not None:
            call.announcement = {
                "file": self.announcement.source,
                "sha256": self.announcement.sha256,
                "started_s": None,
                "ended_s": None,
            }
            player.play(line.id, self.announcement.samples, "announcement")
        else:
            call.errors.append("announcement not played: no playback path for this line")
            self._raise_alarm(f"announcement:{line.id}", line.id, "announcement",
                              f"line {line.id} has no working playback: calls are not announced", t)

    def _recording_state(self, item: RecordingOpened | RecordingFailed) -> None:
        """What the recorder made of a call's Begin: it is recorded (announce it), or it cannot be
        (no announcement, the line shows `fault`; the storage alarm says why)."""
        line = next((x for x in self.lines.values() if x.call is not None and x.call.call_id == item.call_id),
                    None)
        if line is None or line.call is None:
            return
        call = line.call
        if isinstance(item, RecordingOpened):
            late = call.recording == "failed"
            call.recording = "open"
            if late:
                call.errors.append("recording started late: the storage was failing at the off-hook")
            self._announce(line, call, line.t_end)
        else:
            call.recording = "failed"
            call.errors.append(f"not recorded: {item.message}")
        self._refresh(line, line.t_end)

    def _storage_changed(self, item: StorageChanged) -> None:
        self.storage_problem = None if item.ok else item.message
        for line in self.lines.values():
            self._refresh(line, line.t_end)

    def _end_call(self, line: LineState, t_onhook: float) -> None:
        call = line.call
        if call is None:
            return
        line.call = None
        self._flush_audio(call)
        player = self.players.get(line.id)
        if player is not None:
            player.cancel(line.id)
        self._close_pause(call, t_onhook)
        self._report_announcement(line, call, t_onhook)
        duration = max(0.0, t_onhook - call.started_t)
        if call.end_reason is None:
            call.end_reason = "unanswered" if call.answer_pending and call.ringback_heard else "hangup"
        discard = duration < self.config.storage.min_call_seconds
        frames = max(0, self.frame_at(line, t_onhook) - call.start_frame)
        ended_wall = self.wall_of(t_onhook)
        if call.announce_pending:
            call.errors.append("announcement not played: the call was never recorded")
        self.recorder.submit(Finish(call.call_id, call.record(ended_wall, duration), frames, discard, ended_wall))
        self._set_state(line, "offhook" if line.monitor.offhook else "idle", t_onhook)

    def _set_paused(self, line: LineState, call: Call, paused: bool, by: str) -> float:
        """Pause or resume the recording from the next audio on; logged in the record with who did it.

        Paused audio is written as silence, so the file keeps the call's timeline."""
        at = round(line.t_end - call.started_t, 3)
        if paused:
            call.pauses.append({"start_s": at, "end_s": None, "by": by})
        else:
            call.pauses[-1]["end_s"] = at
        self.recorder.submit(Note(call.call_id, {"record": call.record()}))
        return at

    def _close_pause(self, call: Call, t: float) -> None:
        if call.paused:
            call.pauses[-1]["end_s"] = round(t - call.started_t, 3)

    def _flush_audio(self, call: Call) -> None:
        if call.audio:
            self.recorder.submit(Audio(call.call_id, np.concatenate(call.audio)))
            call.audio.clear()
            call.audio_frames = 0

    def _meta(self, call: Call) -> dict[str, Any]:
        return {
            "call_id": call.call_id,
            "line": call.line,
            "sample_rate": self.rate,
            "started_wall": call.started_wall,
            "preroll_s": call.preroll_s,
            "record": call.record(),
        }

    # ---- announcement and timers -------------------------------------------------------------

    def _playback_started(self, item: PlaybackStarted) -> None:
        self._clear_alarm(f"playback:{item.line}", item.t)   # the path works again
        line = self.lines.get(item.line)
        call = line.call if line else None
        if line is None or call is None or item.kind != "announcement" or call.announcement is None:
            return
        assert call.answered_t is not None and self.announcement is not None
        started = item.t - call.answered_t
        call.announcement["started_s"] = round(started, 4)
        call.announcement["ended_s"] = round(started + self.announcement.duration_s, 4)
        call.announcement_end_t = item.t + self.announcement.duration_s
        self.recorder.submit(Note(call.call_id, {"record": call.record()}))

    def _playback_failed(self, item: PlaybackFailed) -> None:
        line = self.lines.get(item.line)
        if line is not None and line.call is not None:
            line.call.errors.append(f"{item.kind} playback failed: {item.message}")
        self._raise_alarm(f"playback:{item.line}", item.line, "playback",
                          f"announcement playback failed on line {item.line}: {item.message}", item.t)

    def _timers(self, line: LineState, now: float) -> None:
        call = line.call
        if call is None:
            return
        if call.answer_pending and not line.ringback and call.answer_fallback_t is not None:
            heard = line.detectors.last_tone_t if line.detectors is not None else None
            if heard is not None and heard > call.started_t:
                # a tone burst (maybe a ringback not yet recognised) restarts the wait
                call.answer_fallback_t = max(call.answer_fallback_t, heard + self.config.signals.answer_fallback_s)
            if now >= call.answer_fallback_t:
                self._answer(line, call, call.answer_fallback_t, "fallback")
        if call.announcement_end_t is not None and now >= call.announcement_end_t:
            self._report_announcement(line, call, now)
        if call.next_warning_t is not None and now >= call.next_warning_t and self._warning is not None:
            call.next_warning_t += self.config.announcement.warning_tone_every_s
            player = self.players.get(line.id)
            if player is not None and not player.busy(line.id):
                player.play(line.id, self._warning, "warning_tone")

    def _report_announcement(self, line: LineState, call: Call, now: float) -> None:
        """Once per announced call: when it finished, or when the call ended first (then it says
        `completed: false`, with null times if not one sample had reached the line)."""
        if call.announcement is None or call.announcement_reported:
            return
        call.announcement_reported = True
        end_t = call.announcement_end_t
        completed = end_t is not None and now >= end_t
        if not completed:
            call.errors.append("the call ended before the announcement finished" if end_t is not None
                               else "the call ended before the announcement reached the line")
        self._emit("announcement.played", line.id, call.call_id, now if end_t is None else min(now, end_t),
                   file=call.announcement["file"], sha256=call.announcement["sha256"],
                   started_s=call.announcement["started_s"], ended_s=call.announcement["ended_s"],
                   completed=completed)

    # ---- faults ----------------------------------------------------------------------------------

    def _capture_fault(self, fault: CaptureFault) -> None:
        alarm_id = f"capture:{fault.pcm}"
        if fault.kind == "overrun":
            self.capture_overruns += 1
            log.warning("capture overrun on %s (%d so far)", fault.pcm, self.capture_overruns)
            self._raise_alarm(f"overrun:{fault.pcm}", None, "capture_overrun",
                              f"capture overruns on {fault.pcm}: {self.capture_overruns}", fault.t)
            self._overrun_at[fault.pcm] = fault.t
            return
        for line_id in fault.lines:
            line = self.lines[line_id]
            line.fault = fault.kind == "device"
            if line.call is not None and fault.kind == "device":
                line.call.errors.append(f"capture interrupted: {fault.message}")
            self._refresh(line, fault.t)
        if fault.kind == "device":
            self._raise_alarm(alarm_id, None, "capture",
                              f"capture from {fault.pcm} failed ({fault.message}); lines "
                              f"{', '.join(map(str, fault.lines))} are not recorded until it returns",
                              fault.t)
        else:
            self._clear_alarm(alarm_id, fault.t)

    def _raise_alarm(self, alarm_id: str, line: int | None, kind: str, message: str, t: float) -> None:
        with self._state_lock:
            known = alarm_id in self._alarms
            if known:
                self._alarms[alarm_id]["message"] = message
        if not known:
            self._emit("alarm.raised", line, None, t, id=alarm_id, kind=kind, message=message)

    def _clear_alarm(self, alarm_id: str, t: float) -> None:
        with self._state_lock:
            alarm = self._alarms.get(alarm_id)
        if alarm is not None:
            self._emit("alarm.cleared", alarm["line"], None, t, id=alarm_id, kind=alarm["kind"])

    def _track_alarms(self, stamped: StampedEvent) -> None:
        """Active alarms are whatever the bus says: the core's own, MQTT's, the recorder's."""
        event = stamped.event
        alarm_id = event.fields.get("id")
        if alarm_id is None:
            return
        with self._state_lock:
            if event.type == "alarm.raised":
                self._alarms.setdefault(alarm_id, {
                    "id": alarm_id, "line": event.line, "kind": event.fields.get("kind"),
                    "message": event.fields.get("message"), "since": utc_iso(event.wall)})
            elif event.type == "alarm.cleared":
                self._alarms.pop(alarm_id, None)

    def _capture_ended(self, item: CaptureEnded) -> None:
        self._ended_captures += 1
        if self._expected_captures is not None and self._ended_captures >= self._expected_captures:
            self._end_all_calls("the simulated line audio ended during the call")
            self.finished.set()

    def _end_all_calls(self, why: str) -> None:
        for line in self.lines.values():
            if line.call is not None:
                line.call.errors.append(why)
                self._end_call(line, line.t_end)

    def _shutdown(self, reason: str) -> None:
        self._end_all_calls(f"recording stopped: {reason}")

    # ---- helpers -----------------------------------------------------------------------------------

    def _set_state(self, line: LineState, state: str, t: float) -> None:
        """What the line is doing (idle, ringing, offhook, recording); `fault` overrides it while the
        line cannot record (`_refresh`)."""
        line.activity = state
        self._refresh(line, t)

    def _refresh(self, line: LineState, t: float) -> None:
        call = line.call
        cannot_record = (line.fault or self.storage_problem is not None
                         or (call is not None and call.recording == "failed"))
        state = "fault" if cannot_record else line.activity
        led: LedState = "blink" if cannot_record else (
            "on" if call is not None and call.recording == "open" else "off")
        if led != line.led:
            line.led = led
            self.set_led(line.id, led)
        published = self._states.get(line.id, {}).get("call_id")
        if state == line.state and published == (call.call_id if call else None):
            return
        if state != line.state:
            line.state = state
            line.since_wall = self.wall_of(t)
        self._publish_state(line)   # a call begun or ended while the line shows `fault` is news too

    def _publish_state(self, line: LineState) -> None:
        call = line.call
        with self._state_lock:
            self._states[line.id] = {
                "line": line.id,
                "state": line.state,
                "call_id": call.call_id if call else None,
                "since": utc_iso(line.since_wall),
                "direction": call.direction if call else None,
                "caller_number": (call.caller or {}).get("number") if call else
                (line.caller or {}).get("number"),
            }

    def _emit(self, type_: str, line: int | None, call_id: str | None, t: float, **fields: Any) -> None:
        self.bus.emit(Event(type_, line, call_id, self.wall_of(t), fields))


