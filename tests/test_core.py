"""The core on injected time, driven input by input: LEDs, alarms, commands, the warning tone.

Everything past the sound card is real (recorder, index, journal, bus); the players stand at the
sound-card seam and record what they were asked to play.
"""

from __future__ import annotations

import json
import queue
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import soundfile
from callrec.audio.capture import AudioPeriod, CaptureFault
from callrec.audio.playback import PlaybackStarted
from callrec.audio.sound import load_announcement
from callrec.config import parse
from callrec.control import CommandError
from callrec.core import ControlRequest, Core
from callrec.events import AlarmBoard, EventBus, LineBoard
from callrec.line import RawEdge
from callrec.recording import Recorder, RecordingFailed, RecordingOpened, StorageChanged
from callrec.store import CallIndex, Journal

RATE = 8000
PERIOD = 160


class SeamPlayer:
    def __init__(self) -> None:
        self.played: list[tuple[int, str, int]] = []
        self.active: set[int] = set()

    def play(self, line: int, samples: np.ndarray, kind: str) -> None:
        self.played.append((line, kind, len(samples)))
        self.active.add(line)

    def cancel(self, line: int) -> None:
        self.active.discard(line)

    def busy(self, line: int) -> bool:
        return line in self.active


class Rig:
    def __init__(self, tmp: Path, *, recorder_answers: bool = True, **overrides: object) -> None:
        # Outbound calls announce at off-hook here: these tests are about the core, not call progress.
        overrides.setdefault("signals", {"outbound_announcement": "offhook"})
        self.config = parse({"storage": {"data_dir": str(tmp)}, **overrides})
        self.journal = Journal(tmp / "journal.sqlite")
        self.index = CallIndex(tmp / "index.sqlite")
        self.bus = EventBus(self.journal)
        self.events: list[dict] = []
        self.bus.subscribe(lambda e: self.events.append(e.as_dict()))
        self.lines_board, self.alarms_board = LineBoard(), AlarmBoard()   # as the service wires them
        self.bus.subscribe(self.lines_board)
        self.bus.subscribe(self.alarms_board)
        # What the recorder answers (a call's file opened or failed) reaches the core as it does in
        # the service, as inputs, here taken on the test's thread before the next input.
        self.reports: queue.SimpleQueue[object] = queue.SimpleQueue()
        report = self.reports.put if recorder_answers else (lambda item: None)   # else the test answers
        self.recorder = Recorder(tmp, "flac", RATE, self.index, self.bus, report=report)
        self.recorder.start()
        self.player = SeamPlayer()
        self.leds: list[tuple[int, str]] = []
        sound = load_announcement(self.config.announcement_file(), RATE)
        self.core = Core(self.config, self.bus, self.recorder, {1: self.player, 2: self.player},
                         lambda line, on: self.leds.append((line, on)), lambda t: 1_800_000_000 + t, sound)
        self.core.show_states()
        self.frames = {1: 0, 2: 0}
        self.level = 1000

    def settle(self) -> None:
        assert self.recorder.wait_idle(5, finished=False)
        while not self.reports.empty():
            self.core.process(self.reports.get())

    def audio(self, seconds: float, line: int = 1) -> None:
        for _ in range(int(round(seconds * RATE / PERIOD))):
            self.settle()
            self.frames[line] += PERIOD
            samples = np.full(PERIOD, self.level, dtype=np.int16)
            self.core.process(AudioPeriod(line, samples, self.frames[line], self.frames[line] / RATE))

    def edge(self, signal: str, active: bool, line: int = 1) -> None:
        self.settle()
        self.core.process(RawEdge(line, signal, active, self.frames[line] / RATE))  # type: ignore[arg-type]

    def command(self, name: str, **args: object) -> dict:
        self.settle()
        reply: Future = Future()
        self.core.process(ControlRequest(name, args, reply))
        return reply.result(timeout=1)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def close(self) -> None:
        self.recorder.stop()
        self.index.close()
        self.journal.close()


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path)
    yield rig
    rig.close()


def test_recording_led_is_lit_for_the_call_only(rig):
    rig.audio(1)
    rig.edge("hook", True)
    rig.audio(3)
    assert rig.leds == [(1, "on")]
    rig.edge("hook", False)
    rig.audio(2)
    assert rig.leds == [(1, "on"), (1, "off")]


def test_line_state_follows_ringing_and_recording(rig):
    assert rig.lines_board.states()[0]["state"] == "idle"
    rig.edge("ring", True)
    rig.audio(1.0)
    assert rig.lines_board.states()[0]["state"] == "ringing"
    rig.edge("hook", True)
    rig.audio(0.5)
    state = rig.lines_board.states()[0]
    assert state["state"] == "recording" and state["direction"] == "inbound" and state["call_id"]


def test_announcement_proof_is_taken_from_when_the_first_sample_reached_the_line(rig):
    rig.audio(1)
    rig.edge("hook", True)
    rig.audio(0.5)
    assert rig.player.played == [(1, "announcement", pytest.approx(rig.core.calls.announcement.samples.size))]
    rig.core.process(PlaybackStarted(1, "announcement", rig.frames[1] / RATE, 0.0))
    rig.audio(8)
    played = [e for e in rig.events if e["type"] == "announcement.played"][0]
    assert played["completed"] and played["started_s"] == pytest.approx(0.5, abs=0.001)
    assert played["ended_s"] - played["started_s"] == pytest.approx(rig.core.calls.announcement.duration_s, abs=0.001)


def test_capture_failure_raises_one_alarm_and_faults_the_line_until_it_recovers(rig):
    rig.audio(1)
    fault = CaptureFault("hw:1", (1, 2), "device", "No such device", 1.0)
    rig.core.process(fault)
    rig.core.process(fault)
    assert rig.types().count("alarm.raised") == 1
    assert [s["state"] for s in rig.lines_board.states()] == ["fault", "fault"]
    assert rig.alarms_board.alarms()[0]["kind"] == "capture"
    rig.core.process(CaptureFault("hw:1", (1, 2), "recovered", "capture reopened", 2.0))
    assert rig.types().count("alarm.cleared") == 1
    assert rig.alarms_board.alarms() == []
    assert [s["state"] for s in rig.lines_board.states()] == ["idle", "idle"]


def test_pause_and_resume_are_logged_in_the_call_record_and_paused_audio_is_silence(rig):
    rig.audio(1)
    rig.edge("hook", True)
    rig.audio(2)
    paused = rig.command("recording.pause", line=1)
    rig.audio(1)
    resumed = rig.command("recording.resume", line=1)
    rig.audio(1)
    rig.edge("hook", False)
    rig.audio(2)
    assert rig.recorder.wait_idle(5)
    call_id = paused["call_id"]
    record = rig.index.get(call_id)
    assert record["pauses"] == [{"start_s": paused["at_s"], "end_s": resumed["at_s"], "by": "command"}]
    import soundfile

    audio, _ = soundfile.read(str(rig.config.storage.data_dir / record["recording"]["path"]), dtype="int16")
    start = int((1.0 + paused["at_s"]) * RATE)
    assert not audio[start + PERIOD : start + RATE - PERIOD].any()
    assert audio[: RATE // 2].all()


def test_commands_refuse_wrong_lines_and_states_and_change_nothing(rig):
    with pytest.raises(CommandError, match="`line` must be one of"):
        rig.command("recording.pause", line=7)
    with pytest.raises(CommandError, match="no call in progress"):
        rig.command("recording.pause", line=1)
    with pytest.raises(CommandError, match="unknown command"):
        rig.command("format.disk")
    rig.edge("hook", True)
    rig.audio(1)
    with pytest.raises(CommandError, match="not idle"):
        rig.command("announcement.test", line=1)
    assert rig.command("announcement.test", line=2)["line"] == 2
    assert rig.player.played[-1][:2] == (2, "test")


def test_call_mark_tags_the_running_call_and_ended_calls(rig):
    rig.edge("hook", True)
    rig.audio(3)
    call_id = rig.lines_board.states()[0]["call_id"]
    assert rig.command("call.mark", call_id=call_id, tag="complaint")["tags"] == ["complaint"]
    rig.edge("hook", False)
    rig.audio(2)
    assert rig.recorder.wait_idle(5)
    assert rig.index.get(call_id)["tags"] == ["complaint"]
    assert rig.command("call.mark", call_id=call_id, tag="keep")["tags"] == ["complaint", "keep"]
    with pytest.raises(CommandError, match="no call"):
        rig.command("call.mark", call_id="nope", tag="x")


def test_warning_tone_plays_every_15_seconds_when_enabled(tmp_path):
    rig = Rig(tmp_path, announcement={"warning_tone": True})
    try:
        rig.edge("hook", True)
        rig.audio(0.1)
        for _ in range(3):
            rig.player.active.clear()      # what played before has finished
            rig.audio(15.3)
        tones = [p for p in rig.player.played if p[1] == "warning_tone"]
        assert len(tones) == 3 and tones[0][2] == RATE // 2
    finally:
        rig.close()


def test_an_unknown_input_is_logged_not_fatal(rig, caplog):
    rig.core.process(object())
    assert "unknown input" in caplog.text
    assert json.dumps(rig.lines_board.states())


def test_levels_report_what_each_line_carried_in_dbfs(rig):
    rig.level = 16384   # a constant -6 dBFS
    rig.audio(1)
    levels = {entry["line"]: entry for entry in rig.command("levels")["lines"]}
    assert levels[1]["rms_dbfs"] == pytest.approx(-6.0, abs=0.1)
    assert levels[1]["peak_dbfs"] == pytest.approx(-6.0, abs=0.1)
    assert levels[2]["rms_dbfs"] is None, "no audio yet on line 2"


def test_announcement_played_is_reported_even_when_the_call_ends_before_it_sounded(rig):
    rig.edge("ring", True)
    rig.audio(1.2)
    rig.edge("hook", True)
    rig.audio(0.1)
    rig.edge("hook", False)   # hung up before the player reported the first sample
    rig.audio(2)
    played = [e for e in rig.events if e["type"] == "announcement.played"]
    assert len(played) == 1 and played[0]["completed"] is False and played[0]["started_s"] is None


def test_an_overrun_alarm_clears_after_a_quiet_minute(rig):
    rig.audio(1)
    rig.core.process(CaptureFault("hw:1", (1, 2), "overrun", "capture overrun (-32)", 1.0))
    assert rig.alarms_board.alarms()[0]["kind"] == "capture_overrun"
    rig.audio(62)
    assert rig.alarms_board.alarms() == []
    assert rig.types().count("alarm.cleared") == 1


def test_a_call_whose_recording_cannot_start_is_not_announced_and_its_line_blinks_fault(tmp_path):
    rig = Rig(tmp_path, recorder_answers=False)   # the test says what the recorder made of the call
    rig.audio(1)
    rig.core.process(StorageChanged(False, "the disk is full"))
    assert rig.leds == [(1, "blink"), (2, "blink")] and rig.lines_board.states()[0]["state"] == "fault"
    rig.edge("hook", True)
    rig.audio(0.1)   # past the debounce: the call began and its Begin went to the recorder
    call_id = rig.lines_board.states()[0]["call_id"]
    assert call_id is not None
    rig.core.process(RecordingFailed(call_id, "the disk is full"))
    rig.audio(2)
    assert rig.player.played == [], "no notice for a call that is not being recorded"
    assert rig.lines_board.states()[0]["state"] == "fault"
    rig.core.process(StorageChanged(True, ""))
    rig.core.process(RecordingOpened(call_id))   # room again: recorded from now on, announced now
    rig.audio(0.5)
    assert [kind for _, kind, _ in rig.player.played] == ["announcement"]
    assert rig.lines_board.states()[0]["state"] == "recording" and rig.leds[-2:] == [(2, "off"), (1, "on")]
    rig.close()


def test_a_capture_outage_during_a_call_is_a_gap_handed_to_the_recorder(rig):
    rig.audio(1)
    rig.edge("hook", True)
    rig.audio(1)
    rig.frames[1] += 2 * RATE    # the card was away for 2 s: the next period comes 2 s later
    rig.audio(1)
    rig.edge("hook", False)
    rig.audio(2)
    assert rig.recorder.wait_idle(5)
    (record,) = [r for r in rig.index.latest(5)]
    assert record["gaps"] == [{"at_s": pytest.approx(1.0, abs=0.03), "duration_s": 2.0, "cause": "capture"}]
    assert abs(soundfile.info(str(rig.config.storage.data_dir / record["recording"]["path"])).duration
               - (1.0 + record["duration_s"])) < 0.03
