"""Signal generators: DTMF, tones, noise at dBm0 levels, G.711-style saturation.

Used by the tests, the battery in bench/ and the simulator (announcements of digits, fake exchanges),
so that every generated signal is on the same level scale the detectors are specified in.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

import numpy as np

from .detection import SAMPLE_RATE, dbm0_to_power

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = "123A456B789C*0#D"
"""Digits in row-major order: KEYPAD[4*row + col]."""


def amplitude(level_dbm0: float) -> float:
    """Peak amplitude of a sine at `level_dbm0`."""
    return float(np.sqrt(2.0 * dbm0_to_power(level_dbm0)))


def saturate(x: np.ndarray) -> np.ndarray:
    """Round and clip to int16, as a real A/D converter or a codec would."""
    out: np.ndarray = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return out


def tones(freqs: list[float] | tuple[float, ...], levels: list[float] | tuple[float, ...], n: int,
          phase0: float = 0.0, fs: int = SAMPLE_RATE) -> np.ndarray:
    """Float sum of sines (not yet saturated), so callers can add noise before clipping once."""
    t = np.arange(n) / fs
    out = np.zeros(n)
    for f, lv in zip(freqs, levels, strict=True):
        out += amplitude(lv) * np.sin(2 * np.pi * f * t + phase0)
    return out


class DtmfOptions(TypedDict, total=False):
    """The keyword-only options of `dtmf`, passed through by `dtmf_sequence`."""

    low_level: float | None
    high_level: float | None
    low_dev: float
    high_dev: float
    fs: int


def dtmf(digit: str, level: float = -10.0, duration: float = 0.05, gap: float = 0.05, *,
         low_level: float | None = None, high_level: float | None = None,
         low_dev: float = 0.0, high_dev: float = 0.0, fs: int = SAMPLE_RATE) -> np.ndarray:
    """One DTMF burst then silence, float.

    `low_dev`/`high_dev` shift each tone by a fraction (0.015 = +1.5 %); `low_level`/`high_level`
    override `level` (dBm0 per tone) to make twist.
    """
    idx = KEYPAD.index(digit.upper())
    row, col = ROW_HZ[idx // 4] * (1 + low_dev), COL_HZ[idx % 4] * (1 + high_dev)
    on = int(round(duration * fs))
    off = int(round(gap * fs))
    lo = level if low_level is None else low_level
    hi = level if high_level is None else high_level
    return np.concatenate([tones((row, col), (lo, hi), on), np.zeros(off)])


def dtmf_sequence(digits: str, level: float = -10.0, duration: float = 0.05, gap: float = 0.05,
                  **kw: Unpack[DtmfOptions]) -> np.ndarray:
    """Several bursts, each `duration` on and `gap` off, float."""
    return np.concatenate([dtmf(d, level, duration, gap, **kw) for d in digits]) if digits else np.zeros(0)


def awgn(level_dbm0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise with total power `level_dbm0` over the 0–4 kHz band."""
    noise: np.ndarray = rng.standard_normal(n) * np.sqrt(dbm0_to_power(level_dbm0))
    return noise


def cadence(freqs: tuple[float, ...], level: float, pattern: tuple[float, ...], total: float,
            am_hz: float | None = None, fs: int = SAMPLE_RATE) -> np.ndarray:
    """A call-progress tone: `pattern` is on/off seconds repeated for `total` seconds (empty = steady).

    With `am_hz`, the tone is fully amplitude-modulated (Japanese ringback: 400 Hz at 16 Hz) while
    keeping the same mean power.
    """
    n = int(round(total * fs))
    sig = tones(freqs, [level] * len(freqs), n)
    if am_hz:
        t = np.arange(n) / fs
        sig *= (1 + np.sin(2 * np.pi * am_hz * t)) / np.sqrt(1.5)
    if pattern:
        period = sum(pattern)
        t = (np.arange(n) / fs) % period
        gate = np.zeros(n, dtype=bool)
        acc = 0.0
        for i, d in enumerate(pattern):
            if i % 2 == 0:
                gate |= (t >= acc) & (t < acc + d)
            acc += d
        sig = np.where(gate, sig, 0.0)
    return sig
