"""Streaming DTMF receiver meeting ITU-T Q.24 (AT&T and NTT columns).

Why this design (figures in docs/dsp.md and ../shared/spec/telephony.md):

* Eight complex DFT bins over 102-sample blocks (12.75 ms) hopped by 51 samples, as spandsp and
  Asterisk do, but the blocks overlap by half so that the *phase* advance of each bin from one block
  to the next gives the tone's frequency to a fraction of a hertz. Magnitude alone cannot tell a tone
  1.8 % off (NTT: must accept) from one 3.0 % off (NTT: must reject) with a 78 Hz-wide bin; the phase
  can, so a digit is accepted only if both tones average within ±2.4 % over the whole digit.
* A block is a hit when: both peak tones reach the profile's level; the twist is within 8 dB with the
  low group louder ("normal") or 6 dB with the high group louder ("reverse"), each limit set 1 dB
  beyond so a G.711 round trip cannot tip an 8 or 6 dB pair over; this covers AT&T
  (8/4 dB) and NTT (5/5 dB); the other tones of each group are 8 dB down; and the two tones carry at
  least 70 % of the block's energy (after undoing the bin's roll-off for the measured frequency).
  The energy-fraction test is what makes talk-off rare and what makes blocks only partly filled by a
  tone fail, so duration can be counted in blocks.
* A digit needs 5 consecutive hit blocks: a 40 ms tone always gives 5, a 30 ms tone never does
  (Q.24: accept ≥ 40 ms, reject ≤ 23 ms AT&T / 24 ms NTT). It ends after 4 non-hit blocks: a 13 ms
  break is always bridged, a 20 ms pause always ends it (Q.24: bridge ≤ 10 ms, pause ≥ 30 ms NTT,
  40 ms AT&T).

The level limits are the only figures where the two columns conflict (AT&T accepts down to −25 dBm,
NTT must reject −29 dBm), so they are a profile: `ATT` (−38 dBm0, the spandsp dynamic range) and
`NTT` (−27 dBm0). Levels assume 0 dBm on the line is 0 dBm0 in the samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .detection import SAMPLE_RATE, Detection, dbm0_to_power
from .gen import COL_HZ, KEYPAD, ROW_HZ

log = logging.getLogger(__name__)

HALF = 51
BLOCK = 2 * HALF
MIN_HITS = 5
MISS_END = 4
_START_OFFSET = 15   # samples from the first hit block's start to the mean tone onset
_END_OFFSET = 87     # samples from the last hit block's start to the mean tone end


@dataclass(frozen=True)
class DtmfProfile:
    """Acceptance limits of one administration's column of Q.24."""

    name: str
    min_level_dbm0: float            # per tone; below is rejected
    normal_twist_db: float = 9.0     # low group louder than the high group (accepts 8 dB)
    reverse_twist_db: float = 7.0    # high group louder than the low group (accepts 6 dB)
    freq_tol: float = 0.024          # accept |deviation| ≤ this (Q.24: 1.5/1.8 % accept, 3.5/3.0 % reject)
    relative_peak_db: float = 8.0    # other tones in a group must be this far below the peak
    energy_fraction: float = 0.7     # share of block energy the tone pair must carry


ATT = DtmfProfile("att", min_level_dbm0=-38.0)
NTT = DtmfProfile("ntt", min_level_dbm0=-27.0)
REGION_PROFILES = {"JP": NTT, "US": ATT, "EU": ATT}


@dataclass
class _Run:
    """A candidate or current digit: hit blocks plus the summed phase advances of its two tones."""

    digit: int
    first: int
    last: int
    hits: int = 1
    misses: int = 0
    q_row: complex = 0j
    q_col: complex = 0j
    pairs: int = 0
    p_row: float = 0.0
    p_col: float = 0.0


class DtmfDetector:
    """Feed 8 kHz int16 audio in any chunk size; get each digit once, when it ends."""

    def __init__(self, profile: DtmfProfile = ATT, fs: int = SAMPLE_RATE, *, gate: bool = True) -> None:
        if fs != SAMPLE_RATE:
            raise ValueError("the DTMF detector works at 8 kHz; resample first")
        self.profile = profile
        self.gate = gate   # skip the analysis of quiet audio (same result; off only to prove that)
        self._freqs = np.array(ROW_HZ + COL_HZ)
        w = 2 * np.pi * self._freqs / fs
        self._basis = np.exp(-1j * np.outer(np.arange(HALF), w))
        self._rot = np.exp(-1j * w * HALF)
        self._hz_per_rad = fs / (2 * np.pi * HALF)
        self._thr = dbm0_to_power(profile.min_level_dbm0)
        self._normal = 10 ** (profile.normal_twist_db / 10)
        self._reverse = 10 ** (profile.reverse_twist_db / 10)
        # Per block the twist may read up to ±3 dB off (leakage of 941 Hz into the 1209 Hz bin beats
        # with the tones' phases); the limits are enforced on the digit's mean, per block only loosely.
        self._normal_block = self._normal * 2.0
        self._reverse_block = self._reverse * 2.0
        self._rel = 10 ** (profile.relative_peak_db / 10)
        self.reset()

    def reset(self) -> None:
        """Forget all state (a new call)."""
        self._buf = np.zeros(0)
        self._n_in = 0
        self._n_half = 0
        self._t_base = 0.0
        self._prev_s: np.ndarray | None = None
        self._prev_e = 0.0
        self._prev_x = np.zeros(8, dtype=complex)
        self._prev_label = -1
        self._cur: _Run | None = None
        self._pend: _Run | None = None

    def feed(self, samples: np.ndarray, t0: float) -> list[Detection]:
        """Analyse `samples` (int16, 8 kHz) whose first sample is at `t0` seconds."""
        self._t_base = t0 - self._n_in / SAMPLE_RATE
        self._n_in += len(samples)
        buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64)])
        nh = len(buf) // HALF
        self._buf = buf[nh * HALF:]
        if nh == 0:
            return []
        halves = buf[: nh * HALF].reshape(nh, HALF)
        e = np.einsum("ij,ij->i", halves, halves)
        if self._quiet(halves, e):
            return []
        s = halves @ self._basis
        first_block = self._n_half - 1
        self._n_half += nh
        if self._prev_s is None:
            s_all, e_all, first_block = s, e, first_block + 1
        else:
            s_all = np.vstack([self._prev_s[None, :], s])
            e_all = np.concatenate([[self._prev_e], e])
        self._prev_s, self._prev_e = s[-1], float(e[-1])
        if len(s_all) < 2:
            return []
        x = s_all[:-1] + self._rot * s_all[1:]
        energy = (e_all[:-1] + e_all[1:]) / BLOCK
        x_all = np.vstack([self._prev_x[None, :], x])
        self._prev_x = x[-1]
        q = self._rot * x_all[1:] * np.conj(x_all[:-1])
        labels, pr, pc = self._labels(x, x_all[:-1], q, energy)
        if self._cur is None and self._pend is None and not (labels >= 0).any():
            self._prev_label = int(labels[-1])
            return []
        out: list[Detection] = []
        for i, label in enumerate(labels.tolist()):
            self._step(first_block + i, label, q[i], float(pr[i]), float(pc[i]), out)
        return out

    def _quiet(self, halves: np.ndarray, e: np.ndarray) -> bool:
        """Skip the DFT where it cannot find a digit: a bin's power is at most twice the block's mean
        square (Cauchy–Schwarz), so blocks below half the level threshold hold no tone pair. Only the
        state the next batch reads is kept up (the last half's bins and the last block's), so the
        result is the same as with the full analysis; an idle line is quiet most of the day."""
        if not self.gate or self._cur is not None or self._pend is not None or self._prev_s is None:
            return False
        e_all = np.concatenate([[self._prev_e], e])
        if 2.0 * float((e_all[:-1] + e_all[1:]).max()) / BLOCK >= self._thr * 0.999:
            return False
        nh = len(halves)
        tail = halves[-2:] @ self._basis
        s_pair = tail if nh >= 2 else np.vstack([self._prev_s[None, :], tail])
        self._prev_x = s_pair[0] + self._rot * s_pair[1]
        self._prev_s, self._prev_e = s_pair[1], float(e[-1])
        self._prev_label = -1
        self._n_half += nh
        return True

    def flush(self) -> list[Detection]:
        """End of audio: report a digit still sounding."""
        out: list[Detection] = []
        if self._cur is not None:
            self._finish(self._cur, out)
        self._cur = self._pend = None
        return out

    def _labels(self, x: np.ndarray, x_prev: np.ndarray, q: np.ndarray,
                energy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per block: the keypad index of a valid tone pair (or −1), and the two peak powers."""
        p = 2.0 * (x.real**2 + x.imag**2) / (BLOCK * BLOCK)
        p_prev = 2.0 * (x_prev.real**2 + x_prev.imag**2) / (BLOCK * BLOCK)
        rows, cols = p[:, :4], p[:, 4:]
        r = rows.argmax(axis=1)
        c = cols.argmax(axis=1)
        idx = np.arange(len(p))
        pr, pc = rows[idx, r], cols[idx, c]
        ok = (pr >= self._thr) & (pc >= self._thr)
        ok &= (pr <= pc * self._normal_block) & (pc <= pr * self._reverse_block)
        ok &= np.partition(rows, 2, axis=1)[:, 2] * self._rel <= pr
        ok &= np.partition(cols, 2, axis=1)[:, 2] * self._rel <= pc
        if not ok.any():
            return np.full(len(p), -1), pr, pc
        gain = np.ones((len(p), 2))
        for k, (tone, pw) in enumerate(((r, pr), (c + 4, pc))):
            # Undo the bin's sinc² roll-off for the measured offset, but only where the previous block
            # carried the same tone (otherwise its phase is noise and the estimate is meaningless).
            delta_bins = np.abs(np.angle(q[idx, tone])) * self._hz_per_rad * BLOCK / SAMPLE_RATE
            delta_bins = np.minimum(delta_bins, 0.55)
            trusted = p_prev[idx, tone] >= 0.5 * pw
            gain[:, k] = np.where(trusted, 1.0 / np.sinc(delta_bins) ** 2, 1.0)
        ok &= pr * gain[:, 0] + pc * gain[:, 1] >= self.profile.energy_fraction * energy
        return np.where(ok, r * 4 + c, -1), pr, pc

    def _step(self, block: int, label: int, q: np.ndarray, pr: float, pc: float,
              out: list[Detection]) -> None:
        pair = label >= 0 and label == self._prev_label
        self._prev_label = label
        cur = self._cur
        if cur is not None:
            if label == cur.digit:
                self._hit(cur, block, q, pair, pr, pc)
                cur.misses = 0
                self._pend = None
                return
            cur.misses += 1
            if cur.misses >= MISS_END:
                self._finish(cur, out)
                self._cur = None
        if label < 0:
            self._pend = None
        elif self._pend is not None and self._pend.digit == label:
            self._hit(self._pend, block, q, pair, pr, pc)
        else:
            self._pend = _Run(label, block, block, p_row=pr, p_col=pc)
        if self._cur is None and self._pend is not None and self._pend.hits >= MIN_HITS:
            self._cur, self._pend = self._pend, None

    @staticmethod
    def _hit(run: _Run, block: int, q: np.ndarray, pair: bool, pr: float, pc: float) -> None:
        run.last = block
        run.hits += 1
        run.p_row += pr
        run.p_col += pc
        if pair:
            run.q_row += complex(q[run.digit // 4])
            run.q_col += complex(q[4 + run.digit % 4])
            run.pairs += 1

    def _finish(self, run: _Run, out: list[Detection]) -> None:
        digit = KEYPAD[run.digit]
        dev_row = np.angle(run.q_row) * self._hz_per_rad / ROW_HZ[run.digit // 4] if run.pairs else 0.0
        dev_col = np.angle(run.q_col) * self._hz_per_rad / COL_HZ[run.digit % 4] if run.pairs else 0.0
        if max(abs(dev_row), abs(dev_col)) > self.profile.freq_tol:
            log.debug("DTMF %s rejected: frequency off by %.2f %% / %.2f %%", digit, 100 * dev_row,
                      100 * dev_col)
            return
        if not (run.p_row <= run.p_col * self._normal and run.p_col <= run.p_row * self._reverse):
            log.debug("DTMF %s rejected: twist %.1f dB", digit, 10 * np.log10(run.p_row / run.p_col))
            return
        start = self._t_base + (run.first * HALF + _START_OFFSET) / SAMPLE_RATE
        end = self._t_base + (run.last * HALF + _END_OFFSET) / SAMPLE_RATE
        out.append(Detection("dtmf", start, end, {"digit": digit}))
