"""The core: the one owner of line and call state, on one thread, on injected time.

Hardware threads (GPIO callbacks, capture, playback) and the recorder only post what they saw into
the core's queue; the core decides and tells the writers (recorder, players, LEDs) and the event
bus what to do. Nothing reaches back into a hardware thread, so every decision is taken in one
order, and tests can drive the core with edges and periods at any pace.

Start: once started, the core takes the first hook and ring input of each line as the level the line
port reports when it claims the inputs (`LineMonitor.report`): a hook found off-hook then is a call
already in progress, not one beginning. Driven directly (`process`, in tests), every input is an edge.

Time: every input carries `t` on the core clock (monotonic seconds on a Pi, line-audio seconds in
simulation). Audio periods are the heartbeat: each advances the line monitor, so debounce, flash and
hang-up decisions fall on the right sample. `wall_of(t)` labels times for records and events.

The engine turns inputs into decisions about lines; its collaborators, each with its own narrow
interface, carry them out: `Calls` (a call's life: record, recording, announcement), `CallProgress`
(what DTMF, caller ID and tones mean for it), `Commands` (the control API), `LineDisplay` (what a
line shows: `line.state` events and its LED) and `CoreAlarms` (the alarms the core raises itself).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from callrec.audio import (
    AudioPeriod,
    CaptureEnded,
    CaptureFault,
    LineDetectors,
    PlaybackFailed,
    PlaybackStarted,
    PreRoll,
    Sound,
)
from callrec.config import Config
from callrec.core.alarms import CoreAlarms
from callrec.core.calls import Calls
from callrec.core.clocktrust import CoreClock
from callrec.core.commands import Commands
from callrec.core.display import LineDisplay
from callrec.core.health import TapHealth
from callrec.core.isdn import IsdnFacts
from callrec.core.progress import CallProgress
from callrec.core.state import OVERRUN_QUIET_S, PREROLL_SLACK_S, ControlRequest, LineState, Player, Shutdown
from callrec.events import Event, EventBus
from callrec.line import (
    CallBegan,
    CallEnded,
    FlashSeen,
    HookChanged,
    IsdnInfo,
    LedState,
    LineMonitor,
    LineSignal,
    MonitorSettings,
    NumberDisplaySeen,
    RawEdge,
    RingEnded,
    RingingStopped,
    RingStarted,
)
from callrec.recording import Gap, Recorder, RecordingFailed, RecordingOpened, StorageChanged

log = logging.getLogger(__name__)


class Core:
    """One thread, one queue of inputs, all line and call state."""

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
        clock_status: Callable[[], dict[str, Any] | None] | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.recorder = recorder
        self.wall_of = wall_of
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
        # An ISDN line's edges are the D-channel's messages, exact and final: no debounce to wait out,
        # no hook flash (a new call right after a release is a new call), no Number Display exchange.
        isdn = replace(settings, debounce_s=0.001, flash_min_s=0.0, flash_max_s=0.0, nd_enabled=False)
        self.lines = {
            line.id: LineState(line.id, LineMonitor(line.id, isdn if line.kind == "isdn_bri" else settings),
                               PreRoll(capacity))
            for line in config.lines
        }
        if config.signals.enabled:
            for line in self.lines.values():
                line.detectors = LineDetectors(config.region, self.rate)
        self.alarms = CoreAlarms(self._emit)
        self.display = LineDisplay(set_led, self._emit, wall_of)
        self.calls = Calls(config, recorder, players, announcement, self._emit, wall_of, self.alarms, self.display)
        self.isdn = IsdnFacts(self.calls, self._emit)
        self.health = TapHealth(config, self.alarms, self.rate)
        self.calls.health = self.health
        self.clock_trust = CoreClock(clock_status, wall_of, recorder)
        self.calls.clock_stamp = self.clock_trust.stamp
        bus.use_clock(self.clock_trust.current)
        self.progress = CallProgress(config, self._emit, self.calls, self.display)
        self.commands = Commands(self.lines, players, announcement, self.calls, recorder, self.rate, config)
        self._queue: queue.Queue[object] = queue.Queue()
        # Simulation paces capture by bounding the audio waiting here; only audio ever waits for
        # room: edges, commands and the recorder's answers go in at once (the recorder waits on
        # the core's decisions, and the core on it: both waiting for room would be a deadlock).
        self._audio_room = threading.BoundedSemaphore(queue_size) if queue_size else None
        self._thread: threading.Thread | None = None
        self._overrun_at: dict[str, float] = {}   # PCM -> core time of its last overrun
        self._expected_captures = expected_captures
        self._ended_captures = 0
        self._unreported: set[tuple[int, str]] = set()   # (line, input) whose start report is still to come
        self.finished = threading.Event()
        self.last_loop_monotonic = time.monotonic()
        self.last_audio_monotonic = 0.0

    # ---- threads -------------------------------------------------------------------------------

    def post(self, item: object) -> None:
        """Called from any thread; blocks only audio, and only when simulation bounds it (pacing)."""
        if self._audio_room is not None and isinstance(item, AudioPeriod):
            self._audio_room.acquire()
        self._queue.put(item)

    def command(self, name: str, args: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Run a control-API command on the core's thread (from any thread); CommandError if refused."""
        if name == "ping":
            return {"pong": True}
        reply: Future[dict[str, Any]] = Future()
        self.post(ControlRequest(name, args, reply))
        try:
            return reply.result(timeout=timeout)
        except TimeoutError:
            reply.cancel()   # the caller has given up: the core must not act on it later
            raise

    def wait_caught_up(self) -> None:
        """Block until every input posted so far has been decided on (simulation pacing)."""
        self._queue.join()

    def show_states(self) -> None:
        """Every line's state goes out (once at start: the boards learn the lines)."""
        now = self.clock() if self.clock else 0.0
        for line in self.lines.values():
            self.display.refresh(line, now)

    def start(self) -> None:
        """Run the core's thread; the line source starts after this and reports its levels first."""
        self.show_states()
        self._unreported = {(line, signal) for line in self.lines for signal in ("hook", "ring")}
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
                self._end_all_calls(f"recording stopped: {item.reason}")
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

    def _timers(self, line: LineState, now: float) -> None:
        self.clock_trust.observe(now)
        self.calls.timers(line, now)
        self.health.check(now)
        call = line.call
        split = self.health.split_due(call, now) if call is not None else None
        if call is not None and split is not None:
            # A week-long "call" is a handset left off or a miswired input: parts of at most
            # max_call_hours, each a recording of its own, so none grows without bound.
            self.calls.end(line, split)
            self.calls.begin(line, CallBegan(split, call.direction or "outbound", 0))

    def process(self, item: object) -> None:
        """Take one input on the caller's thread (the core thread, or a test driving it directly)."""
        if isinstance(item, AudioPeriod):
            self._audio(item)
        elif isinstance(item, RawEdge):
            line = self.lines.get(item.line)
            if line is not None:
                if item.signal in line.raw and line.raw[item.signal] != item.active:
                    line.edges[item.signal] = line.edges.get(item.signal, 0) + 1   # a change, not a report
                line.raw[item.signal] = item.active
                if (item.line, item.signal) in self._unreported:
                    self._unreported.discard((item.line, item.signal))
                    self._signals(line, line.monitor.report(item))
                else:
                    self._signals(line, line.monitor.edge(item))
        elif isinstance(item, IsdnInfo):
            line = self.lines.get(item.line)
            if line is not None:
                self.isdn.info(line, item)
        elif isinstance(item, PlaybackStarted):
            self.alarms.clear(f"playback:{item.line}", item.t)   # the path works again
            if item.line in self.lines:
                self.calls.playback_started(self.lines[item.line], item)
        elif isinstance(item, PlaybackFailed):
            if item.line in self.lines:
                self.calls.playback_failed(self.lines[item.line], item)
            self.alarms.raise_(f"playback:{item.line}", item.line, "playback",
                               f"announcement playback failed on line {item.line}: {item.message}", item.t)
        elif isinstance(item, CaptureFault):
            self._capture_fault(item)
        elif isinstance(item, CaptureEnded):
            self._capture_ended(item)
        elif isinstance(item, ControlRequest):
            self.commands.handle(item)
        elif isinstance(item, RecordingOpened | RecordingFailed):
            line = self._line_of_call(item.call_id)
            if line is not None:
                self.calls.recording_state(line, item)
        elif isinstance(item, StorageChanged):
            self.display.storage_problem = None if item.ok else item.message
            for line in self.lines.values():
                self.display.refresh(line, line.t_end)
        else:
            log.warning("core ignored an unknown input %r", type(item).__name__)

    def _line_of_call(self, call_id: str) -> LineState | None:
        return next((line for line in self.lines.values() if line.call is not None and line.call.call_id == call_id),
                    None)

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
                    self.alarms.clear(f"overrun:{pcm}", period.t_end)
        line.preroll.append(period.samples)
        line.frame_end = period.frame_end
        line.t_end = period.t_end
        if line.call is not None:
            self.calls.audio(line.call, period.samples)
        self.health.audio(line, period.samples, period.t_end)
        self._signals(line, line.monitor.advance(period.t_end))
        if line.detectors is not None:
            t0 = period.t_end - len(period.samples) / self.rate
            in_call = line.call is not None or line.monitor.in_call   # off-hook after a far-end hang-up too
            for detection in line.detectors.feed(period.samples, t0, in_call=in_call):
                self.progress.detection(line, detection)
            if line.call is not None and line.call.answer_pending and line.ringback:
                self.progress.voice_after_ringback(line, line.call, period, t0)
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
        self.calls.flush_audio(call)
        call.errors.append(f"the line was not heard for {frames / self.rate:.1f} s (capture card away)")
        self.recorder.submit(Gap(call.call_id, frames, "capture"))

    # ---- line signals → calls ----------------------------------------------------------------------

    def _signals(self, line: LineState, signals: list[LineSignal]) -> None:
        for signal in signals:
            self._signal(line, signal)

    def _signal(self, line: LineState, s: LineSignal) -> None:
        call_id = line.call.call_id if line.call else None
        if isinstance(s, RingStarted | HookChanged):
            self.health.activity(line.id, s.t)
        if isinstance(s, HookChanged) and not s.offhook:
            self.health.onhook(line.id, s.t)
        if isinstance(s, RingStarted):
            self._emit("line.ring", line.id, None, s.t, state="on")
            self.display.set_activity(line, "ringing", s.t)
        elif isinstance(s, RingEnded):
            self._emit("line.ring", line.id, None, s.t, state="off", count=s.count,
                       duration_s=round(s.duration_s, 3), car=s.car)
        elif isinstance(s, RingingStopped):
            self._emit("line.ring", line.id, None, s.t, state="stopped", count=s.rings)
            line.caller = None   # a missed call: its caller ID must not label the next call
            self.display.set_activity(line, "idle", s.t)
        elif isinstance(s, HookChanged):
            self._emit("line.hook", line.id, call_id, s.t, state="offhook" if s.offhook else "onhook")
            if line.call is None:
                self.display.set_activity(line, "offhook" if s.offhook else "idle", s.t)
        elif isinstance(s, NumberDisplaySeen):
            log.info("line %d: Number Display exchange (%.2f s off-hook), not a call", line.id,
                     s.t - s.t_off)
        elif isinstance(s, CallBegan):
            self.health.activity(line.id, s.t, call=True)
            self.calls.begin(line, s)
        elif isinstance(s, FlashSeen):
            if line.call is None and line.monitor.in_call:
                # The far end hung up (busy tone ended our call) and the office flashed to go on:
                # a new call from the end of the flash, so nothing after it goes unrecorded.
                self.calls.begin(line, CallBegan(s.t + s.duration_s, "outbound", 0))
                return
            if line.call is not None:
                line.call.flashes.append({"at_s": round(s.t - line.call.started_t, 3),
                                          "duration_s": round(s.duration_s, 3)})
            self._emit("line.flash", line.id, call_id, s.t, duration_s=round(s.duration_s, 3))
        elif isinstance(s, CallEnded):
            self.calls.end(line, s.t)

    # ---- faults ----------------------------------------------------------------------------------

    def _capture_fault(self, fault: CaptureFault) -> None:
        if fault.kind == "overrun":
            log.warning("capture overrun on %s", fault.pcm)
            self.alarms.raise_(f"overrun:{fault.pcm}", None, "capture_overrun",
                               f"capture overruns on {fault.pcm}: audio periods were lost", fault.t)
            self._overrun_at[fault.pcm] = fault.t
            return
        for line_id in fault.lines:
            line = self.lines[line_id]
            line.fault = fault.kind == "device"
            if line.call is not None and fault.kind == "device":
                line.call.errors.append(f"capture interrupted: {fault.message}")
            self.display.refresh(line, fault.t)
        alarm_id = f"capture:{fault.pcm}"
        if fault.kind == "device":
            self.alarms.raise_(alarm_id, None, "capture",
                               f"capture from {fault.pcm} failed ({fault.message}); lines "
                               f"{', '.join(map(str, fault.lines))} are not recorded until it returns", fault.t)
        else:
            self.alarms.clear(alarm_id, fault.t)

    def _capture_ended(self, item: CaptureEnded) -> None:
        self._ended_captures += 1
        if self._expected_captures is not None and self._ended_captures >= self._expected_captures:
            self._end_all_calls("the simulated line audio ended during the call")
            self.finished.set()

    def _end_all_calls(self, why: str) -> None:
        for line in self.lines.values():
            if line.call is not None:
                line.call.errors.append(why)
                self.calls.end(line, line.t_end)

    def _emit(self, type_: str, line: int | None, call_id: str | None, t: float, **fields: Any) -> None:
        self.bus.emit(Event(type_, line, call_id, self.wall_of(t), fields, self.clock_trust.trusted(t)))
