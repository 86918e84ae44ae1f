"""The spandsp `dtmf_rx_tests` battery (Mitel CM7291 side 1 + talk-off + dial tone), for any decoder.

A decoder is a function from int16 8 kHz audio to the string of digits it heard, so the same generated
signals qualify our receiver and a peer such as multimon-ng (bench/bench_dsp.py). Each test returns
its figure, its pass criterion and its hit/miss counts; the procedures and criteria are those of
spandsp tests/dtmf_rx_tests.c (summarised in ../shared/spec/telephony.md §1.3), including the
optional G.711 round trip applied after noise is added.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from . import g711, gen
from .detection import dbm0_to_power

Decoder = Callable[[np.ndarray], str]
ALL_DIGITS = "123A456B789C*0#D"


@dataclass
class Result:
    """One battery test: `figure` in the units spandsp prints, `passed` against its criterion."""

    name: str
    figure: float
    unit: str
    criterion: str
    passed: bool
    hits: int = 0
    misses: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _munge(x: np.ndarray, law: str | None) -> np.ndarray:
    return g711.round_trip(gen.saturate(x), law)


def decode(dec: Decoder, law: str | None) -> Result:
    """16 digits × 10 at −4 dBm0, 50/50 ms: each must be heard exactly once."""
    hits = misses = 0
    for d in ALL_DIGITS:
        for _ in range(10):
            got = dec(_munge(gen.dtmf(d, -4, 0.05, 0.05), law))
            if got == d:
                hits += 1
            else:
                misses += 1
    return Result("decode", hits, "of 160", "all 160 exactly once", misses == 0, hits, misses)


def bandwidth(dec: Decoder, law: str | None) -> list[Result]:
    """Digits 1 5 9 D at −17 dBm0, one tone shifted ±0.1…6 %: 3 % + RCFO ≤ RRB < 15 % + RCFO."""
    out = []
    for d in "159D":
        for group in ("low", "high"):
            counts = {}
            for sign in (1, -1):
                n = 0
                for i in range(1, 61):
                    kw = cast(gen.DtmfOptions, {f"{group}_dev": sign * i / 1000.0})   # low_dev or high_dev
                    n += len(dec(_munge(gen.dtmf(d, -17, 0.05, 0.05, **kw), law)))
                counts[sign] = n
            rrb = (counts[1] + counts[-1]) / 10.0
            rcfo = (counts[1] - counts[-1]) / 10.0
            ok = 3.0 + rcfo <= rrb < 15.0 + rcfo
            out.append(Result(f"bandwidth {d} {group}", rrb, "% RRB", "3 % + RCFO ≤ RRB < 15 % + RCFO", ok,
                              counts[1] + counts[-1], 120 - counts[1] - counts[-1],
                              {"max_pos_pct": counts[1] / 10.0, "max_neg_pct": counts[-1] / 10.0}))
    return out


def _levels_tenths() -> Iterator[tuple[int, int]]:
    """spandsp's i = −30 … −230 with C truncation i/10: (level dB, pulses at that level)."""
    levels: dict[int, int] = {}
    for i in range(-30, -231, -1):
        lv = int(i / 10)
        levels[lv] = levels.get(lv, 0) + 1
    yield from levels.items()


def twist(dec: Decoder, law: str | None) -> list[Result]:
    """One tone at −3 dBm0, the other 0 … −20 dB: normal (low louder) ≥ 8 dB, reverse ≥ 4 dB."""
    out = []
    for d in "159D":
        for kind, need in (("normal", 80), ("reverse", 40)):
            n = 0
            for lv, pulses in _levels_tenths():
                if kind == "normal":
                    burst = gen.dtmf(d, low_level=-3, high_level=lv)
                else:
                    burst = gen.dtmf(d, low_level=lv, high_level=-3)
                n += min(len(dec(_munge(np.tile(burst, pulses), law))), pulses)
            direction = "low louder" if kind == "normal" else "high louder"
            out.append(Result(f"twist {d} {kind} ({direction})", n / 10.0, "dB", f"≥ {need // 10} dB",
                              n >= need, n, 201 - n))
    return out


def dynamic_range(dec: Decoder, law: str | None) -> Result:
    """Digit 1 from +3 to −50 dBm0 per tone in 1 dB steps: ≥ 35 detections."""
    n = sum(min(len(dec(_munge(gen.dtmf("1", lv), law))), 1) for lv in range(3, -51, -1))
    return Result("dynamic range", n, "dB", "≥ 35 dB", n >= 35, n, 54 - n)


def guard_time(dec: Decoder, law: str | None) -> Result:
    """Digit 1 at −3 dBm0, bursts 49 → 10 ms: guard time = (500 − responses)/10. Reported only."""
    n = 0
    for ms in range(49, 9, -1):
        pulses = 10 if ms > 10 else 1
        n += min(len(dec(_munge(np.tile(gen.dtmf("1", -3, ms / 1000.0, 0.05), pulses), law))), pulses)
    return Result("guard time", (500 - n) // 10, "ms", "reported only", True, n, 391 - n)


def signal_to_noise(dec: Decoder, law: str | None, bursts: int = 1000) -> Result:
    """−4 dBm0 digit 1 in noise −13 … −49 dBm0, `bursts` per level: the S/N where all are heard ≤ 26 dB."""
    rng = np.random.default_rng(1234567)
    burst = gen.dtmf("1", -4)
    found = None
    misses = 0
    for j in range(-13, -50, -1):
        noisy = np.tile(burst, bursts) + gen.awgn(j, len(burst) * bursts, rng)
        got = dec(_munge(noisy, law))
        if got == "1" * bursts:
            found = j
            break
        misses += bursts - min(got.count("1"), bursts)
    snr = -4 - (found if found is not None else -50)
    return Result("S/N", snr, "dB", "100 % heard at S/N ≤ 26 dB", snr <= 26, bursts, misses)


def dial_tone(dec: Decoder, law: str | None) -> Result:
    """All 16 digits at −15 dBm0 over 350+440 Hz dial tone rising from −30 dBm0: tolerable ratio ≤ 10 dB."""
    digits = gen.dtmf_sequence(ALL_DIGITS, -15)
    ok_levels = 0
    j = -30
    for j in range(-30, -3):
        dial = gen.tones((350.0, 440.0), (j, j), len(digits) * 10)
        if dec(_munge(np.tile(digits, 10) + dial, law)) != ALL_DIGITS * 10:
            break
        ok_levels += 1
    else:
        j = -3
    ratio = -15 - j
    return Result("dial tone", ratio, "dB", "signal/dial-tone ratio ≤ 10 dB", ratio <= 10, ok_levels, 27 - ok_levels)


def talkoff_files() -> list[str]:
    """The free talk-off corpus: Asterisk prompts and music on hold (Debian packages), if installed.

    asterisk-core-sounds-en-wav installs under `sounds/en_US_f_Allison/`; the `sounds/en` link to it
    comes from a package it only recommends, so every voice directory is searched, each file once.
    """
    prompts = sorted({os.path.realpath(path)
                      for path in glob.glob("/usr/share/asterisk/sounds/**/*.wav", recursive=True)})
    moh = sorted(glob.glob("/usr/share/asterisk/moh/*.wav"))
    return prompts + moh


def espeak_corpus(out_dir: str) -> list[str]:
    """Speech from espeak-ng (English voices and Japanese in kana) written to `out_dir`, 8 kHz WAV."""
    import subprocess

    texts = {
        "en-us": "Thank you for calling. Your call may be recorded for quality and training purposes. "
                 "Please hold while we connect you to the next available representative. "
                 "Press one for sales, two for support, or stay on the line for the operator.",
        "en": "The quick brown fox jumps over the lazy dog while seven hungry zebras mix vivid jam. "
              "Our offices are open from nine in the morning until half past five on weekdays.",
        "ja": "このつうわは ろくおんされています。おそれいりますが しょうしょう おまちください。"
              "ただいま でんわが こみあっております。のちほど おかけなおしください。",
    }
    files = []
    for voice, text in texts.items():
        for speed in (140, 175, 210):
            for pitch in (30, 50, 80):
                raw = os.path.join(out_dir, f"espeak-{voice}-{speed}-{pitch}.wav")
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw, text],
                               check=True, capture_output=True)
                files.append(raw)
    return files


def talk_off(dec: Decoder, law: str | None, files: list[str],
             level_dbm0: float | None = None) -> Result:
    """Every file through the decoder (8 kHz, first channel), optionally normalised to a mean level:
    any digit is a false hit. Bellcore's bound for its own tapes is 470; ours must be 0."""
    from pathlib import Path

    from callrec.audio import read_mono  # the one audio file reader

    hits = 0
    seconds = 0.0
    for path in files:
        x = read_mono(Path(path), 8000, channel=0).astype(np.float64) * 32768.0
        if level_dbm0 is not None:
            active = x[np.abs(x) > 30]
            if active.size:
                x = x * np.sqrt(dbm0_to_power(level_dbm0) / np.mean(active**2))
        seconds += len(x) / 8000
        hits += len(dec(_munge(x, law)))
    return Result("talk-off", hits, "false hits", "0 on the corpus (Bellcore: ≤ 470 on its tapes)",
                  hits == 0, 0, hits, {"minutes": seconds / 60})


def run_all(dec: Decoder, law: str | None, *, snr_bursts: int = 1000) -> list[Result]:
    """Every generated-signal test (not talk-off, which needs the corpus)."""
    return [decode(dec, law), *bandwidth(dec, law), *twist(dec, law), dynamic_range(dec, law),
            guard_time(dec, law), signal_to_noise(dec, law, snr_bursts), dial_tone(dec, law), *q24(dec, law)]


def q24(dec: Decoder, law: str | None) -> list[Result]:
    """ITU-T Q.24 limits as hit/miss counts over all 16 digits (both columns' strictest figures):
    frequency accept ±1.8 % and reject ±3.0 %, tone accept 40 ms and reject 23 ms, a 10 ms
    interruption bridged, a 30 ms pause heard as two digits."""
    out = []

    def count(name: str, criterion: str, make: Callable[[str, int], np.ndarray], want: int) -> None:
        hits = sum(1 for d in ALL_DIGITS for s in (1, -1) if len(dec(_munge(make(d, s), law))) == want)
        out.append(Result(name, hits, "of 32", criterion, hits == 32, hits, 32 - hits))

    count("Q.24 ±1.8 % accepted (both tones)", "all heard",
          lambda d, s: gen.dtmf(d, -10, low_dev=0.018 * s, high_dev=0.018 * s), 1)
    count("Q.24 ±3.0 % rejected (low tone)", "none heard", lambda d, s: gen.dtmf(d, -10, low_dev=0.030 * s), 0)
    count("Q.24 ±3.0 % rejected (high tone)", "none heard", lambda d, s: gen.dtmf(d, -10, high_dev=0.030 * s), 0)
    count("Q.24 40 ms tone accepted", "all heard",
          lambda d, s: np.concatenate([np.zeros(0 if s > 0 else 40), gen.dtmf(d, -10, 0.040, 0.1)]), 1)
    count("Q.24 23 ms tone rejected", "none heard",
          lambda d, s: np.concatenate([np.zeros(0 if s > 0 else 40), gen.dtmf(d, -10, 0.023, 0.1)]), 0)
    count("Q.24 10 ms interruption bridged", "one digit",
          lambda d, s: np.concatenate([gen.dtmf(d, -10, 0.05, 0.010), gen.dtmf(d, -10, 0.05, 0.1)]), 1)
    count("Q.24 30 ms pause splits", "two digits",
          lambda d, s: np.concatenate([gen.dtmf(d, -10, 0.045, 0.030), gen.dtmf(d, -10, 0.045, 0.1)]), 2)
    return out
