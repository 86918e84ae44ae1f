"""A sound card that vanishes between sounds (unplugged, or unbound from its driver) and comes back.

The kernel frees a vanished card only when its last open file is closed: an idle playback sink that
kept its PCM open until the next sound held `echo … > /sys/bus/platform/drivers/snd_aloop/unbind`
for as long as no call came. These tests pin, through the audio port's scripted twin, that the idle
player lets a gone device go, says so, and takes it back when it returns, with the next sound whole.
A card cannot be unbound here; the same path on snd-aloop is the VM test's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from callrec.audio import CaptureEnded, CaptureGroup, PcmSpec, PlaybackGroup
from callrec.audio.playback import PlaybackFailed, PlaybackStarted
from callrec.audio.twin import Gone, ScriptedSink, ScriptedSource
from test_alsa_hw import run_alsa

RATE, PERIOD = 8000, 160
STEREO_OUT = PcmSpec("twin_out", "playback", 2, RATE, PERIOD)
STEREO_IN = PcmSpec("twin_in", "capture", 2, RATE, PERIOD)
SOON = 0.01          # the idle check's interval in these tests: the order of events, not its speed, is pinned


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`; the deadline only keeps a broken build from hanging the run."""
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.002)


def messages(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def sound(value: int, frames: int) -> np.ndarray:
    return np.full(frames, value, dtype=np.int16)


def test_an_idle_sink_whose_card_went_away_is_closed_reported_and_reopened_when_the_card_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callrec.audio")
    sink = ScriptedSink(STEREO_OUT)
    posted: list[object] = []
    player = PlaybackGroup(sink, {1: 0, 2: 1}, posted.append, lambda: 7.0, check_s=SOON)
    player.open()
    player.start()
    try:
        sink.unplug()   # the card is unbound while nothing plays
        until(lambda: sum(isinstance(i, PlaybackFailed) for i in posted) >= 2, "the loss was reported")
        assert not sink.is_open, "the idle player closed the gone device"
        failed = [i for i in posted if isinstance(i, PlaybackFailed)]
        assert sorted(f.line for f in failed) == [1, 2], "both lines of the card are told their playback is gone"
        assert all(f.kind == "device" and "gone" in f.message for f in failed)
        assert messages(caplog, logging.WARNING, "twin_out"), "the journal says the playback device went away"
        until(lambda: sink.refused >= 3, "the idle player kept trying to reopen")
        refusals = messages(caplog, logging.WARNING, "no such device")
        assert len(refusals) == 1, f"a lasting refusal is logged once, not at every attempt: {refusals}"
        assert sink.writes == 0, "nothing was written to the gone device"

        sink.plug_in()
        until(lambda: bool(messages(caplog, logging.INFO, "reopened")), "the idle player reopened the device")
        assert sink.is_open and sink.opens == 2 and sink.writes == 0, "reopened without waiting for a sound"

        player.play(1, sound(1234, 3 * PERIOD + 10), "announcement")
        until(lambda: player.idle, "the sound was played")
    finally:
        player.stop()
        player.close()
    played = sink.played()
    assert np.count_nonzero(played[:, 0] == 1234) == 3 * PERIOD + 10, "the next sound was played whole"
    assert [i.line for i in posted if isinstance(i, PlaybackStarted)] == [1]


def test_a_sink_that_stays_present_is_kept_open_between_sounds() -> None:
    sink = ScriptedSink(STEREO_OUT)
    player = PlaybackGroup(sink, {1: 0}, lambda item: None, lambda: 0.0, check_s=SOON)
    player.open()
    player.start()
    try:
        for value in (1, 2, 3):
            player.play(1, sound(value, PERIOD), "announcement")
            until(lambda: player.idle, "the sound was played")
            time.sleep(10 * SOON)   # idle checks happen meanwhile
    finally:
        player.stop()
    assert sink.opens == 1 and sink.closes == 0, "no reopen per sound: the handle stays open while the card is there"
    assert [int(v) for v in sink.played()[::PERIOD, 0]] == [1, 2, 3]


def test_a_sound_asked_while_the_card_is_away_fails_and_the_first_sound_after_it_returns_is_played_whole() -> None:
    sink = ScriptedSink(STEREO_OUT)
    posted: list[object] = []
    # No idle checks in this test: only sounds meet the device, as with a card that goes mid-call.
    player = PlaybackGroup(sink, {1: 0, 2: 1}, posted.append, lambda: 7.0, check_s=3600)
    player.open()
    player.start()
    try:
        sink.unplug()
        player.play(2, sound(99, 2 * PERIOD), "warning_tone")
        until(lambda: any(isinstance(i, PlaybackFailed) for i in posted), "the failed sound was reported")
        until(lambda: player.idle, "the failed sound was dropped")
        assert not sink.is_open
        sink.plug_in()
        player.play(1, sound(555, 2 * PERIOD + 1), "announcement")
        until(lambda: player.idle, "the sound after the card came back was played")
    finally:
        player.stop()
    (failed,) = [i for i in posted if isinstance(i, PlaybackFailed)]
    assert (failed.line, failed.kind) == (2, "warning_tone")
    assert sink.opens == 2, "the sound reopened the device"
    assert np.count_nonzero(sink.played()[:, 0] == 555) == 2 * PERIOD + 1


def test_a_lasting_capture_reopen_refusal_is_one_warning_and_the_reopen_is_info(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callrec.audio")
    audio = np.zeros((2 * RATE, 2), dtype=np.int16)
    source = ScriptedSource(STEREO_IN, audio, [Gone(at=4000, away=2400, refusals=5)])
    items: list[object] = []
    group = CaptureGroup(source, {1: 0, 2: 1}, items.append, lambda frames: frames / RATE, backoff_s=0.001)
    group.open()
    group.start()
    try:
        until(lambda: any(isinstance(i, CaptureEnded) for i in items), "the scripted line ended")
    finally:
        group.stop()
    refusals = messages(caplog, logging.WARNING, "no such device")
    assert len(refusals) == 1 and "twin_in" in refusals[0], \
        f"five refusals with one message: one WARNING naming the PCM, what the journal shows: {refusals}"
    assert messages(caplog, logging.INFO, "reopened"), "the return is in the journal too"


def test_an_open_alsa_sink_on_a_present_device_passes_its_check(tmp_path: Path) -> None:
    # Real alsa-lib: `check` reads the open PCM's state, which is not DISCONNECTED on a device that is
    # there; a closed sink has nothing to check.
    result, _ = run_alsa(tmp_path, "", """
        sink = AlsaBackend().sink(PcmSpec("null", "playback", 1, 8000, 160))
        sink.open()
        sink.check()
        sink.write(np.zeros((160, 1), dtype=np.int16))
        sink.check()
        sink.close()
        sink.check()
        print(json.dumps({"checked": True}))
    """)
    assert result == {"checked": True}
