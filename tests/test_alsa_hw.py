"""The ALSA backend on devices that do not convert, as a `hw:` card (snd-aloop, USB) does not.

No kernel sound card can be loaded here, so real alsa-lib plugins stand in for a card's rules:
- `a52` takes 44.1/48 kHz, 6 channels of S32_LE only, and pyalsaaudio opens it anyway at what it
  settles on: a card that changes the rate and sample format;
- `multi` over `null` has exactly the channels of its bindings: a stereo-only card;
- `pulse` wants periods of at least 128 bytes and, with `handle_underrun`, reports playback
  underruns on a real clock: a card that changes the period and runs dry when written late.
Each test runs its PCMs in a subprocess because alsa-lib reads its configuration once per process.
The same behaviour on snd-aloop itself (rate, period, an xrun, the card unbound) is the VM test's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent

PRELUDE = """
import json, logging, sys, time
import numpy as np
from callrec.audio import AlsaBackend, AudioDeviceError, AudioPeriod, CaptureGroup, PcmSpec
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

def refusal(spec):
    end = AlsaBackend().sink(spec) if spec.kind == "playback" else AlsaBackend().source(spec)
    try:
        end.open()
    except AudioDeviceError as error:
        return str(error)
    end.close()
    return None
"""


def run_alsa(tmp_path: Path, conf: str, code: str) -> tuple[Any, str]:
    """Run `code` (after PRELUDE) with `conf` added to alsa-lib's configuration; what it printed as
    JSON on its last line, and its log."""
    path = tmp_path / "asound.conf"
    path.write_text(conf)
    env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{path}", "PYTHONPATH": str(TESTS)}
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


ONLY_48K = 'pcm.only48k { type a52; slavepcm "null" }\n'


def test_a_device_that_runs_at_another_rate_is_refused_naming_both_rates_and_the_plug_that_converts(
    tmp_path: Path,
) -> None:
    result, _ = run_alsa(tmp_path, ONLY_48K, """
        print(json.dumps([refusal(PcmSpec("only48k", "playback", 2, 8000, 160)),
                          refusal(PcmSpec("plug:only48k", "playback", 2, 8000, 160))]))
    """)
    refused, through_plug = result
    assert refused is not None and "'only48k' runs at 48000 Hz, not the 8000 Hz asked" in refused
    assert "wrong speed" in refused and "Use 'plug:only48k'" in refused
    assert through_plug is None, "the advice works: the plug converts the rate"


def test_a_device_that_gives_other_samples_than_s16_is_refused(tmp_path: Path) -> None:
    result, _ = run_alsa(tmp_path, ONLY_48K, """
        print(json.dumps(refusal(PcmSpec("only48k", "playback", 2, 48000, 960))))
    """)
    assert result is not None and "'only48k' gives S32_LE samples, not the S16_LE" in result
    assert "Use 'plug:only48k'" in result


def test_a_stereo_only_card_gives_a_mono_line_its_first_channel(tmp_path: Path) -> None:
    ramp = np.arange(8000) % 30000
    (tmp_path / "in.raw").write_bytes(np.stack([ramp, -ramp], axis=1).astype("<i2").tobytes())
    conf = ('pcm.stereo_card { type multi; slaves.a { pcm "null"; channels 2 };'
            ' bindings.0 { slave a; channel 0 }; bindings.1 { slave a; channel 1 } }\n'
            f'pcm.stereo_only {{ type file; slave.pcm "stereo_card"; file "/dev/null"; infile "{tmp_path}/in.raw";'
            ' format "raw" }\n')
    result, log = run_alsa(tmp_path, conf, """
        source = AlsaBackend().source(PcmSpec("stereo_only", "capture", 1, 8000, 160))
        source.open()
        reads = [source.read() for _ in range(3)]
        source.close()
        print(json.dumps({"shapes": [list(r.shape) for r in reads],
                          "samples": np.concatenate(reads)[:, 0].tolist()}))
    """)
    assert result["shapes"] == [[160, 1]] * 3
    assert result["samples"] == list(range(480)), "channel 0 of the card, frame by frame"
    assert "2 channel(s) (1 used)" in log


def test_capture_holds_half_a_second_so_one_late_read_is_not_an_overrun_and_playback_stays_short(
    tmp_path: Path,
) -> None:
    (tmp_path / "in.raw").write_bytes(bytes(16000))
    conf = (f'pcm.line_in {{ type file; slave.pcm "null"; file "/dev/null"; infile "{tmp_path}/in.raw";'
            ' format "raw" }\n')
    result, log = run_alsa(tmp_path, conf, """
        source = AlsaBackend().source(PcmSpec("line_in", "capture", 1, 8000, 160))
        sink = AlsaBackend().sink(PcmSpec("null", "playback", 1, 8000, 160))
        source.open(); sink.open()
        print(json.dumps([source.negotiated.buffer, sink.negotiated.buffer]))
        source.close(); sink.close()
    """)
    capture_buffer, playback_buffer = result
    assert capture_buffer >= 4000, "half a second at 8 kHz"
    assert playback_buffer == 4 * 160, "the playback buffer is the announcement's latency"
    assert "capture PCM 'line_in': 8000 Hz, 1 channel(s), period 160 frames (20.0 ms), buffer 4000" in log


def start_pulse(home: Path) -> subprocess.Popen[bytes]:
    """A private PulseAudio in `home` with a mono 8 kHz null sink `tap`: a sound card with a real
    clock, at unix:`home`/pulse/native. Also used by the PCM subprocesses (tests/ on their path)."""
    (home / "pulse").mkdir(parents=True, exist_ok=True)
    (home / "t.pa").write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={home}/pulse/native\n"
        "load-module module-null-sink sink_name=tap rate=8000 channels=1 format=s16le\n")
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "pulse")}
    server = subprocess.Popen(["pulseaudio", "-n", "-F", str(home / "t.pa"), "--daemonize=no", "--exit-idle-time=-1",
                               "--disallow-exit", "--use-pid-file=no", "--system=false",
                               f"--log-target=file:{home}/pa.log"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(home / "pulse" / "native"))
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                log = (home / "pa.log").read_text(errors="replace")
                raise RuntimeError(f"pulseaudio did not start: {log}") from None
            time.sleep(0.05)


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Path]:
    server = start_pulse(tmp_path / "pa")
    try:
        yield tmp_path / "pa" / "pulse" / "native"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_device_that_changes_the_period_still_gives_the_line_whole_periods_in_order(
    tmp_path: Path, pulse: Path
) -> None:
    line = (np.arange(8000 * 5) % 30000).astype("<i2")
    (tmp_path / "in.raw").write_bytes(line.tobytes())
    conf = (f'pcm.line_in {{ type file; slave.pcm {{ type pulse; server "unix:{pulse}"; device "tap.monitor" }};'
            f' file "/dev/null"; infile "{tmp_path}/in.raw"; format "raw" }}\n')
    # 5 ms periods of a mono line: 80 bytes, under pulse's 128-byte minimum.
    result, log = run_alsa(tmp_path, conf, """
        items = []
        source = AlsaBackend().source(PcmSpec("line_in", "capture", 1, 8000, 40))
        group = CaptureGroup(source, {1: 0}, items.append, lambda frames: frames / 8000)
        group.open()
        group.start()
        deadline = time.monotonic() + 30
        while sum(isinstance(i, AudioPeriod) for i in items) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        group.stop()
        periods = [i for i in items if isinstance(i, AudioPeriod)]
        print(json.dumps({"device_period": source.negotiated.period,
                          "lengths": sorted({len(p.samples) for p in periods}),
                          "ends": [p.frame_end for p in periods],
                          "samples": np.concatenate([p.samples for p in periods]).tolist()}))
    """)
    assert result["device_period"] == 64, "the device's period, not the 40 frames asked"
    assert result["lengths"] == [40]
    assert result["ends"] == list(range(40, 40 * len(result["ends"]) + 1, 40))
    assert result["samples"] == line[: len(result["samples"])].tolist(), "nothing lost, nothing repeated"
    assert "period 64 frames (8.0 ms) (the device's; 40 asked)" in log


def test_a_sound_after_the_device_ran_dry_is_played_whole_not_missing_its_first_period(
    tmp_path: Path, pulse: Path
) -> None:
    conf = (f'pcm.line_out {{ type file; slave.pcm {{ type pulse; server "unix:{pulse}"; device "tap";'
            f' handle_underrun true }}; file "{tmp_path}/played.raw"; format "raw" }}\n')
    # Numbered periods: a sound of 8, then one-period sounds after pauses (playback writes nothing
    # between sounds, so the device runs dry and reports it at the next write), then a sound of 8.
    result, _ = run_alsa(tmp_path, conf, """
        sink = AlsaBackend().sink(PcmSpec("line_out", "playback", 1, 8000, 160))
        sink.open()
        number = 0
        def play():
            global number
            number += 1
            sink.write(np.full((160, 1), number, dtype=np.int16))
        for _ in range(8):
            play()
        for _ in range(30):
            time.sleep(0.3)   # longer than the 80 ms buffer: the device runs dry
            play()
            if sink.underruns:
                break
        for _ in range(8):
            play()
        sink.close()
        print(json.dumps({"written": number, "underruns": sink.underruns}))
    """)
    assert result["underruns"] >= 1
    played = np.frombuffer((tmp_path / "played.raw").read_bytes(), dtype="<i2")
    assert played.tolist() == np.repeat(np.arange(1, result["written"] + 1), 160).tolist(), \
        "every period was played, in order"


def test_playback_whose_device_could_not_be_reopened_plays_again_once_the_device_is_back(tmp_path: Path) -> None:
    # The card (a PulseAudio server here) dies while idle, a sound fails and the reopen is refused;
    # the playback thread must live on and the next sound reopen the card.
    home = tmp_path / "pa"
    conf = (f'pcm.line_out {{ type file; slave.pcm {{ type pulse; server "unix:{home}/pulse/native"; device "tap" }};'
            f' file "{tmp_path}/played.raw"; format "raw" }}\n')
    result, _ = run_alsa(tmp_path, conf, f"""
        from pathlib import Path
        from callrec.audio import PlaybackGroup
        from callrec.audio.playback import PlaybackFailed, PlaybackStarted
        from test_alsa_hw import start_pulse

        def until(pred):
            deadline = time.monotonic() + 20
            while not pred() and time.monotonic() < deadline:
                time.sleep(0.01)

        def failures():
            return sum(isinstance(i, PlaybackFailed) for i in posted)

        server = start_pulse(Path({str(home)!r}))
        posted = []
        player = PlaybackGroup(AlsaBackend().sink(PcmSpec("line_out", "playback", 1, 8000, 160)), {{1: 0}},
                               posted.append, time.monotonic)
        player.open()
        player.start()
        server.kill(); server.wait()
        sound = np.full(800, 7, dtype=np.int16)
        for _ in range(2):   # the first fails on the dead card; the second finds the sink closed
            n = failures()
            player.play(1, sound, "announcement")
            until(lambda: failures() > n)
        server = start_pulse(Path({str(home)!r}))
        player.play(1, sound, "announcement")
        until(lambda: player.idle)
        alive = player._thread.is_alive()
        player.stop(); player.close()
        server.terminate(); server.wait()
        print(json.dumps({{"failed": failures(), "alive": alive,
                          "started": sum(isinstance(i, PlaybackStarted) for i in posted)}}))
    """)
    assert result["alive"], "the playback thread survived the card's absence"
    assert result["failed"] == 2 and result["started"] == 3
    played = np.frombuffer((tmp_path / "played.raw").read_bytes(), dtype="<i2")
    assert np.count_nonzero(played == 7) == 800, "the sound after the card came back was played whole"
