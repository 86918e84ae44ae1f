"""Capture and playback against the audio port's scripted twin: the recovery paths in milliseconds.

The same paths under a real PulseAudio that dies and returns: tests/test_capture_faults.py.
"""

from __future__ import annotations

import time

import numpy as np
from callrec.audio import AudioPeriod, CaptureEnded, CaptureFault, CaptureGroup, PcmSpec, PlaybackGroup
from callrec.audio.playback import PlaybackFailed, PlaybackStarted
from callrec.audio.twin import Gone, Overflow, ScriptedSink, ScriptedSource, Short

RATE, PERIOD = 8000, 160
STEREO = PcmSpec("twin", "capture", 2, RATE, PERIOD)


def _line_audio(seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    ramp = np.arange(n, dtype=np.int64) % 30000
    return np.stack([ramp, -ramp], axis=1).astype(np.int16)   # the sample value tells its position


def _capture(source: ScriptedSource, **kwargs) -> list[object]:
    items: list[object] = []
    group = CaptureGroup(source, {1: 0, 2: 1}, items.append, lambda frames: frames / RATE, backoff_s=0.001,
                         **kwargs)
    group.open()
    group.start()
    deadline = time.monotonic() + 5
    while not any(isinstance(i, CaptureEnded) for i in items) and time.monotonic() < deadline:
        time.sleep(0.001)
    group.stop()
    return items


def _line(items: list[object], line: int) -> tuple[np.ndarray, list[int]]:
    periods = [i for i in items if isinstance(i, AudioPeriod) and i.line == line]
    return np.concatenate([p.samples for p in periods]), [p.frame_end for p in periods]


def test_each_line_gets_its_channel_of_a_stereo_card_in_whole_periods():
    audio = _line_audio(1.0)
    items = _capture(ScriptedSource(STEREO, audio))
    left, ends = _line(items, 1)
    right, _ = _line(items, 2)
    assert np.array_equal(left, audio[:, 0]) and np.array_equal(right, audio[:, 1])
    assert ends == list(range(PERIOD, len(audio) + 1, PERIOD))
    assert isinstance(items[-1], CaptureEnded) and items[-1].lines == (1, 2)


def test_short_reads_are_assembled_into_whole_periods_with_nothing_lost():
    audio = _line_audio(0.5)
    items = _capture(ScriptedSource(STEREO, audio, [Short(800, 50), Short(850, 1), Short(2000, 159)]))
    left, ends = _line(items, 1)
    assert np.array_equal(left, audio[:len(left), 0]) and all(end % PERIOD == 0 for end in ends)


def test_an_overrun_is_reported_and_capture_goes_on_counting_the_lost_frames():
    audio = _line_audio(1.0)
    items = _capture(ScriptedSource(STEREO, audio, [Overflow(1600, 320)]))
    faults = [i for i in items if isinstance(i, CaptureFault)]
    assert [f.kind for f in faults] == ["overrun"]
    left, _ = _line(items, 1)
    assert np.array_equal(left[:1600], audio[:1600, 0])
    assert np.array_equal(left[1600:1760], audio[1920:2080, 0]), "after the overrun the line's audio goes on"


def test_a_card_gone_mid_call_is_reopened_after_refusals_and_the_gap_keeps_the_line_time():
    audio = _line_audio(2.0)
    source = ScriptedSource(STEREO, audio, [Gone(at=4000, away=2400, refusals=3)])
    items = _capture(source)
    kinds = [i.kind for i in items if isinstance(i, CaptureFault)]
    assert kinds == ["device", "recovered"] and source.opens == 2 and source.closes >= 1
    periods = [i for i in items if isinstance(i, AudioPeriod) and i.line == 1]
    after = next(p for p in periods if p.frame_end > 4000)
    assert after.frame_end == 4000 + 2400 + PERIOD, "frame numbers count the frames the line carried meanwhile"
    assert np.array_equal(after.samples, audio[6400:6560, 0])


def test_batches_hand_over_early_when_the_handover_policy_asks():
    audio = _line_audio(1.0)
    items = _capture(ScriptedSource(STEREO, audio), batch_periods=10, handover=lambda frames: frames == 800)
    ends = [i.frame_end for i in items if isinstance(i, AudioPeriod) and i.line == 1]
    assert ends[:2] == [800, 800 + 10 * PERIOD], "early at 800, then full batches again"


def test_playback_says_when_a_sound_started_and_a_failed_write_is_reported_and_reopened():
    sink = ScriptedSink(PcmSpec("twin", "playback", 2, RATE, PERIOD), fail_writes={4})
    posted: list[object] = []
    player = PlaybackGroup(sink, {1: 0, 2: 1}, posted.append, lambda: 42.0)
    player.open()
    player.start()
    player.play(2, np.full(PERIOD * 2 + 10, 1000, dtype=np.int16), "announcement")
    deadline = time.monotonic() + 5
    while player.busy(2) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert player.wait_started()
    played = sink.played()
    assert np.all(played[:, 0] == 0) and np.all(played[:PERIOD * 2, 1] == 1000)
    (started,) = [i for i in posted if isinstance(i, PlaybackStarted)]
    assert (started.line, started.kind, started.t) == (2, "announcement", 42.0)
    player.play(1, np.full(PERIOD * 3, 500, dtype=np.int16), "test")   # its first write is write 4: it fails
    deadline = time.monotonic() + 5
    while not any(isinstance(i, PlaybackFailed) for i in posted) and time.monotonic() < deadline:
        time.sleep(0.001)
    player.stop()
    (failed,) = [i for i in posted if isinstance(i, PlaybackFailed)]
    assert failed.line == 1 and sink.opens == 2, "a failed sink is reopened"
