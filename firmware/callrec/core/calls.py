"""The life of a call in the core: begin, answer, announce, pause, end; what it tells the recorder.

A collaborator of the engine (core/engine.py), on the core's thread: the engine decides *that* a
call began or ended (from the line monitor), this decides what follows for the call: its record,
its recording (Begin, Audio, Note, Finish to the recorder), its announcement (played once the call
is answered and really being recorded), its warning tone and what the line shows.

A call found in progress when the service started (the monitor's `in_progress`: a restart or a
reboot during it) is answered already: its announcement plays at once, whatever the direction
rules say, because every recorded call is announced and this one could not be at its beginning.
Its record says that its beginning was not heard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from callrec.audio import PlaybackFailed, PlaybackStarted, Sound, tone
from callrec.config import Config
from callrec.core.alarms import CoreAlarms, Emit
from callrec.core.call import Call, new_call_id
from callrec.core.display import LineDisplay
from callrec.core.state import AUDIO_BATCH_PERIODS, LineState, Player, frame_at
from callrec.line import CallBegan
from callrec.recording import Audio, Begin, Finish, Note, Recorder, RecordingFailed, RecordingOpened, day_dir


def isdn_record(facts: dict[str, Any]) -> dict[str, Any]:
    """The call record's `isdn`: what the D-channel said, in a fixed shape."""
    return {key: facts.get(key) for key in ("call_ref", "b_channel", "direction", "calling", "called", "cause")}


class Calls:
    def __init__(self, config: Config, recorder: Recorder, players: dict[int, Player], announcement: Sound | None,
                 emit: Emit, wall_of: Callable[[float], float], alarms: CoreAlarms, display: LineDisplay) -> None:
        self.config = config
        self.recorder = recorder
        self.players = players
        self.announcement = announcement
        self.emit = emit
        self.wall_of = wall_of
        self.alarms = alarms
        self.display = display
        self.rate = config.audio.sample_rate
        self.preroll_frames = int(round(config.audio.preroll_seconds * self.rate))
        # audio goes to the recorder at least this much at a time (a few periods: one hand-over)
        self.batch_frames = AUDIO_BATCH_PERIODS * self.rate * config.audio.period_ms // 1000
        self.health: Any = None                                  # core/health.py TapHealth, set by the core
        self.clock_stamp: Callable[[str, float, float], bool] | None = None   # core/clocktrust.py
        a = config.announcement
        self.warning = tone(a.warning_tone_hz, a.warning_tone_s, self.rate, a.warning_tone_dbfs) \
            if a.warning_tone else None

    # ---- begin and answer ----------------------------------------------------------------------

    def begin(self, line: LineState, s: CallBegan) -> None:
        wall = self.wall_of(s.t)
        # Before the line's first audio there is no frame to date the edge from (extrapolating from
        # nothing would invent a pre-roll): the recording starts with the first audio to come.
        edge_frame = frame_at(line, s.t, self.rate) if line.preroll.end_frame else line.frame_end
        call = Call(
            call_id=new_call_id(wall, line.id),
            line=line.id,
            direction=s.direction,
            rings=s.rings,
            started_t=s.t,
            started_wall=wall,
            start_frame=max(0, edge_frame - self.preroll_frames),
            preroll_s=0.0,
        )
        call.preroll_s = round(max(0, edge_frame - max(call.start_frame, line.preroll.start_frame)) / self.rate, 4)
        if line.isdn is not None and line.isdn.get("direction") in ("inbound", "outbound"):
            call.direction = str(line.isdn["direction"])   # the D-channel says, not the ring timing
        if call.direction == "inbound" and line.caller is not None:
            call.caller = line.caller   # before the state goes out: dashboards show who is calling
        line.caller = None
        if self.clock_stamp is not None:
            call.clock_trusted = self.clock_stamp(call.call_id, s.t, wall)
        if line.isdn is not None:   # the D-channel's facts, known before the edge that began the call
            call.isdn = isdn_record(line.isdn)
            if call.direction == "outbound" and line.isdn.get("called"):
                call.dialed = str(line.isdn["called"])
        line.voice_since = None
        line.call = call
        initial = line.preroll.since(call.start_frame)
        call.start_frame = line.preroll.end_frame - len(initial)
        self.recorder.submit(Begin(call.call_id, line.id, day_dir(self.config.storage.data_dir, wall),
                                   self._meta(call), initial))
        self.display.set_activity(line, "recording", s.t)
        self.emit("call.started", line.id, call.call_id, s.t, direction=call.direction, rings=call.rings,
                  preroll_s=call.preroll_s)
        signals = self.config.signals
        if s.in_progress:
            call.errors.append("the call was already in progress when recording began (the service started "
                               "during it): its beginning, ringing and direction were not heard")
            self.answer(line, call, s.t, "in_progress")
        elif call.direction == "outbound" and signals.enabled and signals.outbound_announcement == "far_end_answer":
            call.answer_pending = True   # the announcement waits for someone to be there
            call.answer_fallback_t = s.t + signals.answer_fallback_s
        else:
            self.answer(line, call, s.t, "offhook")

    def answer(self, line: LineState, call: Call, t: float, source: str) -> None:
        """Someone is there: inbound at our off-hook; outbound when ringback stops (or at the
        off-hook, or at the fallback, as configured); a call found in progress at once. The
        announcement starts now."""
        call.answer_pending = False
        call.answer_source = source
        call.answered_t = t
        call.answered_wall = self.wall_of(t)
        self.emit("call.answered", line.id, call.call_id, t, direction=call.direction)
        if self.config.announcement.enabled:
            call.announce_pending = True
            self._announce(line, call, t)
        if self.warning is not None:
            call.next_warning_t = t + self.config.announcement.warning_tone_every_s
        self.note(call)

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
                "purpose": self.config.privacy.purpose,
            }
            player.play(line.id, self.announcement.samples, "announcement")
        else:
            call.errors.append("announcement not played: no playback path for this line")
            self.alarms.raise_(f"announcement:{line.id}", line.id, "announcement",
                               f"line {line.id} has no working playback: calls are not announced", t)

    def recording_state(self, line: LineState, item: RecordingOpened | RecordingFailed) -> None:
        """What the recorder made of the call's Begin: it is recorded (announce it), or it cannot be
        (no announcement, the line shows `fault`; the storage alarm says why)."""
        call = line.call
        assert call is not None
        if isinstance(item, RecordingOpened):
            late = call.recording == "failed"
            call.recording = "open"
            if late:
                call.errors.append("recording started late: the storage was failing at the off-hook")
            self._announce(line, call, line.t_end)
        else:
            call.recording = "failed"
            call.errors.append(f"not recorded: {item.message}")
        self.display.refresh(line, line.t_end)

    # ---- during the call -----------------------------------------------------------------------

    def audio(self, call: Call, samples: np.ndarray) -> None:
        call.audio.append(np.zeros_like(samples) if call.paused else samples)
        call.audio_frames += len(samples)
        if call.audio_frames >= self.batch_frames:
            self.flush_audio(call)

    def flush_audio(self, call: Call) -> None:
        if call.audio:
            self.recorder.submit(Audio(call.call_id, np.concatenate(call.audio)))
            call.audio.clear()
            call.audio_frames = 0

    def note(self, call: Call) -> None:
        """The record as known so far into the part's metadata (what a crash recovery will find)."""
        self.recorder.submit(Note(call.call_id, {"record": call.record()}))

    def set_paused(self, line: LineState, call: Call, paused: bool, by: str) -> float:
        """Pause or resume the recording from the next audio on; logged in the record with who did it.

        Paused audio is written as silence, so the file keeps the call's timeline."""
        at = round(line.t_end - call.started_t, 3)
        if paused:
            call.pauses.append({"start_s": at, "end_s": None, "by": by})
        else:
            call.pauses[-1]["end_s"] = at
        self.note(call)
        return at

    def playback_started(self, line: LineState, item: PlaybackStarted) -> None:
        call = line.call
        if call is None or item.kind != "announcement" or call.announcement is None:
            return
        assert call.answered_t is not None and self.announcement is not None
        started = item.t - call.answered_t
        call.announcement["started_s"] = round(started, 4)
        call.announcement["ended_s"] = round(started + self.announcement.duration_s, 4)
        call.announcement_end_t = item.t + self.announcement.duration_s
        self.note(call)

    def playback_failed(self, line: LineState, item: PlaybackFailed) -> None:
        if line.call is not None:
            line.call.errors.append(f"{item.kind} playback failed: {item.message}")

    def timers(self, line: LineState, now: float) -> None:
        call = line.call
        if call is None:
            return
        if call.answer_pending and not line.ringback and call.answer_fallback_t is not None:
            heard = line.detectors.last_tone_t if line.detectors is not None else None
            if heard is not None and heard > call.started_t:
                # a tone burst (maybe a ringback not yet recognised) restarts the wait
                call.answer_fallback_t = max(call.answer_fallback_t, heard + self.config.signals.answer_fallback_s)
            if now >= call.answer_fallback_t:
                self.answer(line, call, call.answer_fallback_t, "fallback")
        if call.announcement_end_t is not None and now >= call.announcement_end_t:
            self._report_announcement(line, call, now)
        if call.next_warning_t is not None and now >= call.next_warning_t and self.warning is not None:
            call.next_warning_t += self.config.announcement.warning_tone_every_s
            player = self.players.get(line.id)
            if player is not None and not player.busy(line.id):
                player.play(line.id, self.warning, "warning_tone")

    # ---- the end -------------------------------------------------------------------------------

    def end(self, line: LineState, t_onhook: float) -> None:
        call = line.call
        if call is None:
            return
        line.call = None
        self.flush_audio(call)
        player = self.players.get(line.id)
        if player is not None:
            player.cancel(line.id)
        if call.paused:
            call.pauses[-1]["end_s"] = round(t_onhook - call.started_t, 3)
        self._report_announcement(line, call, t_onhook)
        duration = max(0.0, t_onhook - call.started_t)
        if call.end_reason is None:
            call.end_reason = "unanswered" if call.answer_pending and call.ringback_heard else "hangup"
        discard = duration < self.config.storage.min_call_seconds
        frames = max(0, frame_at(line, t_onhook, self.rate) - call.start_frame)
        ended_wall = self.wall_of(t_onhook)
        if call.announce_pending:
            call.errors.append("announcement not played: the call was never recorded")
        line.isdn = None
        if self.health is not None:
            call.health = self.health.verdict(call, t_onhook)
        self.recorder.submit(Finish(call.call_id, call.record(ended_wall, duration), frames, discard, ended_wall))
        self.display.set_activity(line, "offhook" if line.monitor.offhook else "idle", t_onhook)

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
        self.emit("announcement.played", line.id, call.call_id, now if end_t is None else min(now, end_t),
                  file=call.announcement["file"], sha256=call.announcement["sha256"],
                  started_s=call.announcement["started_s"], ended_s=call.announcement["ended_s"],
                  completed=completed)

    def _meta(self, call: Call) -> dict[str, Any]:
        return {
            "call_id": call.call_id,
            "line": call.line,
            "sample_rate": self.rate,
            "started_wall": call.started_wall,
            "preroll_s": call.preroll_s,
            "record": call.record(),
        }
