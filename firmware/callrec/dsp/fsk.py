"""1200 bit/s FSK for caller ID: a streaming receiver (Bell 202 and V.23) and a modulator.

The receiver correlates over one bit (7 samples) at 1250 and 2150 Hz, half way between Bell 202
(1200/2200) and V.23 (1300/2100), so one demodulator reads both; which standard was sent is decided
from the mark preamble with two narrow bins. The UART only runs after a *qualified* mark run (at least
40 bit times of a steady, spectrally pure mark tone), because every caller-ID preamble has one
(Bell/ETSI 180 or 80 bits, NTT 75) and speech does not: that keeps speech from being decoded into
bytes at all, and keeps the cost near zero while nobody sends data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .detection import SAMPLE_RATE, dbm0_to_power
from .gen import amplitude


@dataclass(frozen=True)
class FskSpec:
    name: str
    mark: float
    space: float
    baud: float = 1200.0


BELL202 = FskSpec("bell202", 1200.0, 2200.0)
V23 = FskSpec("v23", 1300.0, 2100.0)

_L = 7                           # correlator window, about one bit
_SPB = SAMPLE_RATE / 1200.0      # samples per bit
_SYNC_BITS = 40                  # mark run that qualifies a preamble
_LOST_BITS = 30                  # no start bit for this long ends a message
_MIN_LEVEL = dbm0_to_power(-45.0)
_HISTORY = 4000                  # samples kept before the search point: a whole preamble


def async_bits(data: bytes, stop_bits: int = 1) -> list[int]:
    """8 data bits LSB first, framed by a start bit (0) and `stop_bits` stop bits (1)."""
    bits: list[int] = []
    for byte in data:
        bits.append(0)
        bits.extend((byte >> i) & 1 for i in range(8))
        bits.extend([1] * stop_bits)
    return bits


def modulate(bits: list[int], spec: FskSpec, level_dbm0: float = -13.5, fs: int = SAMPLE_RATE,
             phase: float = 0.0) -> np.ndarray:
    """Phase-continuous FSK of `bits` (1 = mark), float samples."""
    n = int(round(len(bits) * fs / spec.baud))
    idx = np.minimum((np.arange(n) * spec.baud / fs).astype(int), len(bits) - 1)
    freq = np.where(np.asarray(bits)[idx] == 1, spec.mark, spec.space)
    ph = phase + np.cumsum(2 * np.pi * freq / fs)
    return amplitude(level_dbm0) * np.sin(ph)


# What FskReceiver.feed reports, as its docstring describes.
FskEvent = tuple[Literal["sync"], int, str] | tuple[Literal["byte"], int, int, bool] | tuple[Literal["lost"], int]


class FskReceiver:
    """Feed 8 kHz audio; get ("sync", index, standard), ("byte", index, value, framing_ok) and
    ("lost", index) events, indices in samples since the receiver started. A sync's index is where
    the carrier began (channel seizure included), as far back as the kept history allows."""

    def __init__(self, *, gate: bool = True) -> None:
        self.gate = gate   # skip the correlators where no carrier is (same result; off only to prove that)
        self._wm = 2 * np.pi * 1250.0 / SAMPLE_RATE
        self._ws = 2 * np.pi * 2150.0 / SAMPLE_RATE
        self._n = 0
        self._tail_m = np.zeros(_L - 1, dtype=complex)
        self._tail_s = np.zeros(_L - 1, dtype=complex)
        self._tail_x = np.zeros(_L - 1)
        self._v = np.zeros(0)
        self._car = np.zeros(0, dtype=bool)
        self._x = np.zeros(0)
        self._base = 0
        self._pos = 0
        self._in_msg = False
        self._last_byte_end = 0
        self._last_bad = -1
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _phasors(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n not in self._cache:
            k = np.arange(n)
            self._cache[n] = (np.exp(-1j * self._wm * k), np.exp(-1j * self._ws * k))
        return self._cache[n]

    def feed(self, samples: np.ndarray) -> list[FskEvent]:
        x = np.asarray(samples, dtype=np.float64)
        n = len(x)
        if n == 0:
            return []
        xx = np.concatenate([self._tail_x, x])
        ce = np.cumsum(np.concatenate([[0.0], xx * xx]))
        car = (ce[_L:] - ce[:-_L]) / _L >= _MIN_LEVEL
        if self.gate and not self._in_msg and not car.any():
            self._no_carrier(x, xx, car)
            # what the preamble search would conclude: no edge, every sample "bad", searched to the end
            end = self._base + len(self._v)
            self._last_bad, self._pos = end - 1, end
            self._prune()
            return []
        pm, ps = self._phasors(n)
        pm = x * pm * np.exp(-1j * self._wm * self._n)
        ps = x * ps * np.exp(-1j * self._ws * self._n)
        self._n += n
        cm = np.cumsum(np.concatenate([[0j], self._tail_m, pm]))
        cs = np.cumsum(np.concatenate([[0j], self._tail_s, ps]))
        sm, ss = cm[_L:] - cm[:-_L], cs[_L:] - cs[:-_L]
        self._tail_m, self._tail_s, self._tail_x = (pm[-(_L - 1):], ps[-(_L - 1):], x[-(_L - 1):]) \
            if n >= _L - 1 else (np.concatenate([self._tail_m, pm])[-(_L - 1):],
                                 np.concatenate([self._tail_s, ps])[-(_L - 1):], xx[-(_L - 1):])
        v = (sm.real**2 + sm.imag**2) - (ss.real**2 + ss.imag**2)
        self._v = np.concatenate([self._v, v])
        self._car = np.concatenate([self._car, car])
        self._x = np.concatenate([self._x, x])
        return self._steps()

    def _no_carrier(self, x: np.ndarray, xx: np.ndarray, car: np.ndarray) -> None:
        """A batch with no carrier anywhere (`car`), outside a message, needs no correlators: the
        searches read the discriminator only where a carrier is, and at the sample before one (the
        batch's last, computed here). What the next batch's correlators carry over is kept up too, so
        the result is that of the full analysis. Most of an idle line's day is such batches."""
        n = len(x)
        k = min(n, _L)
        at = self._n + n - k + np.arange(k)
        win_m = np.concatenate([self._tail_m, x[-k:] * np.exp(-1j * self._wm * at)])[-_L:]
        win_s = np.concatenate([self._tail_s, x[-k:] * np.exp(-1j * self._ws * at)])[-_L:]
        sm, ss = win_m.sum(), win_s.sum()
        v = np.zeros(n)
        v[-1] = (sm.real**2 + sm.imag**2) - (ss.real**2 + ss.imag**2)
        self._tail_m, self._tail_s, self._tail_x = win_m[1:], win_s[1:], xx[-(_L - 1):]
        self._n += n
        self._v = np.concatenate([self._v, v])
        self._car = np.concatenate([self._car, car])
        self._x = np.concatenate([self._x, x])

    def _steps(self) -> list[FskEvent]:
        events: list[FskEvent] = []
        while True:
            progressed = self._step_msg(events) if self._in_msg else self._step_idle(events)
            if not progressed:
                break
        self._prune()
        return events

    def _prune(self) -> None:
        keep_from = max(0, min(self._pos, self._n) - _HISTORY - self._base)
        if keep_from > 0:
            self._v, self._car, self._x = self._v[keep_from:], self._car[keep_from:], self._x[keep_from:]
            self._base += keep_from

    def _edges(self, start: int) -> np.ndarray:
        """Absolute indices ≥ start where v turns from mark to space while a carrier is present."""
        i0 = max(start - self._base, 1)
        v = self._v
        e = np.flatnonzero((v[i0:] < 0) & (v[i0 - 1:-1] >= 0) & self._car[i0:]) + i0
        return e + self._base

    def _step_idle(self, events: list[FskEvent]) -> bool:
        end = self._base + len(self._v)
        lo = max(self._pos, self._base + 1)
        i0 = lo - self._base
        v, car = self._v[i0 - 1:], self._car[i0 - 1:]
        # Index of the latest space or carrier-less sample at or before each sample, carried across
        # calls so a mark run is measured without rescanning the history.
        rel = np.arange(lo - 1, end)
        last_bad = np.maximum.accumulate(np.where((v < 0) | ~car, rel, self._last_bad))
        edges = np.flatnonzero((v[1:] < 0) & (v[:-1] >= 0) & car[1:])
        for k in edges:
            e = lo + int(k)
            run = e - 1 - int(last_bad[k])
            if run >= _SYNC_BITS * _SPB and self._pure_mark(e - self._base, events, e - run):
                self._in_msg = True
                self._pos = e
                self._last_byte_end = e
                return True
        self._last_bad = int(last_bad[-1])
        self._pos = end
        return False

    def _pure_mark(self, r: int, events: list[FskEvent], run_start: int) -> bool:
        """Is the run before index r a steady tone at a mark frequency (not speech)?"""
        seg = self._x[max(0, r - 4 - 240): r - 4]
        if len(seg) < 200:
            return False
        k = np.arange(len(seg))
        energy = float(seg @ seg)
        powers = {}
        for name, f in (("bell202", 1200.0), ("v23", 1300.0)):
            c = seg @ np.exp(-2j * np.pi * f / SAMPLE_RATE * k)
            powers[name] = 2 * abs(c) ** 2 / len(seg)
        best = max(powers, key=powers.__getitem__)
        if powers[best] < 0.6 * energy:
            return False
        quiet = np.flatnonzero(~self._car[:r])
        burst_start = self._base + (int(quiet[-1]) + 1 if len(quiet) else 0)
        events.append(("sync", min(burst_start, run_start), best))
        return True

    def _step_msg(self, events: list[FskEvent]) -> bool:
        end = self._base + len(self._v)
        edges = self._edges(self._pos)
        limit = self._last_byte_end + int(_LOST_BITS * _SPB)
        if not len(edges) or edges[0] > limit:
            if end > limit:
                events.append(("lost", limit))
                self._in_msg = False
                self._pos = limit
                self._last_bad = limit
                return True
            return False
        e = int(edges[0])
        last = e + int(round(9.5 * _SPB))
        if last >= end:
            self._pos = e
            return False
        idx = [e - self._base + int(round((k + 0.5) * _SPB)) for k in range(10)]
        bits = [1 if self._v[i] >= 0 else 0 for i in idx]
        framing_ok = bits[0] == 0 and bits[9] == 1
        value = sum(b << i for i, b in enumerate(bits[1:9]))
        events.append(("byte", e, value, framing_ok))
        self._pos = last if framing_ok else e + 1
        self._last_byte_end = last
        return True
