"""The CPE alerting signal (CAS, ETSI DT-AS): 2130 + 2750 Hz for about 80 ms, in a call.

Off-hook (type II, "call waiting") caller ID is announced by this dual tone: the phone answers with
a DTMF acknowledgement and the exchange sends the FSK message (Bell 202 or V.23, no channel
seizure) within about half a second. In a call the line carries speech, on which the FSK
correlators cost the most and can find nothing; so the line's caller-ID receiver runs in a call only
in a window after a CAS (pipeline.py), and this detector is what opens it.

Every 10 ms block (80 samples) is measured at both frequencies, exactly (not on DFT bins); a block
is a CAS block when each tone carries ≥ 25 % of its energy and both together ≥ 75 %, above
−40 dBm0. A run of 5 to 15 such blocks (50–150 ms; Bell 75–85 ms, ETSI 80–110 ms, each edge
costing up to one block) is a CAS. A false alarm costs a few seconds of the FSK receiver, which
finds no message in speech; a miss loses the caller's number, so the bounds are generous. Quiet
blocks (below the level) skip the measurement.
"""

from __future__ import annotations

import numpy as np

from .detection import SAMPLE_RATE, Detection, dbm0_to_power

CAS_HZ = (2130.0, 2750.0)
BLOCK = 80
MIN_BLOCKS = 5
MAX_BLOCKS = 15
_EACH = 0.25
_BOTH = 0.75


class CasDetector:
    """Feed 8 kHz int16 audio; get Detection("tone", start, end, kind="cas") when a CAS has ended."""

    def __init__(self, *, min_level_dbm0: float = -40.0) -> None:
        self._thr = dbm0_to_power(min_level_dbm0) * BLOCK    # Σx² over a block
        w = 2 * np.pi * np.array(CAS_HZ) / SAMPLE_RATE
        basis = np.exp(-1j * np.outer(np.arange(BLOCK), w))
        self._basis = np.ascontiguousarray(np.concatenate([basis.real, basis.imag], axis=1))   # 80 × 4
        self._buf = np.zeros(0)
        self._blocks = 0          # blocks measured since the start
        self._run_start: int | None = None
        self._run = 0
        self._n_in = 0
        self._t_base = 0.0

    def feed(self, samples: np.ndarray, t0: float) -> list[Detection]:
        self._t_base = t0 - self._n_in / SAMPLE_RATE
        self._n_in += len(samples)
        buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64)]) if len(self._buf) else \
            np.asarray(samples, dtype=np.float64)
        nb = len(buf) // BLOCK
        self._buf = buf[nb * BLOCK:]
        if nb == 0:
            return []
        blocks = buf[: nb * BLOCK].reshape(nb, BLOCK)
        energy = np.einsum("ij,ij->i", blocks, blocks)
        hit = np.zeros(nb, dtype=bool)
        loud = np.flatnonzero(energy >= self._thr)
        if len(loud):
            parts = blocks[loud] @ self._basis
            power = parts[:, :2] ** 2 + parts[:, 2:] ** 2
            share = 2.0 * power / (BLOCK * energy[loud, None])
            hit[loud] = (share.min(axis=1) >= _EACH) & (share.sum(axis=1) >= _BOTH)
        out: list[Detection] = []
        if not hit.any() and self._run_start is None:
            self._blocks += nb
            return out
        for k in range(nb):
            index = self._blocks + k
            if hit[k]:
                if self._run_start is None:
                    self._run_start = index
                self._run += 1
            elif self._run_start is not None:
                self._end_run(index, out)
        self._blocks += nb
        return out

    def flush(self) -> list[Detection]:
        out: list[Detection] = []
        if self._run_start is not None:
            self._end_run(self._blocks, out)
        return out

    def _end_run(self, end_block: int, out: list[Detection]) -> None:
        start, run = self._run_start, self._run
        self._run_start, self._run = None, 0
        assert start is not None
        if MIN_BLOCKS <= run <= MAX_BLOCKS:
            out.append(Detection("tone", self._t_base + start * BLOCK / SAMPLE_RATE,
                                 self._t_base + end_block * BLOCK / SAMPLE_RATE, {"kind": "cas", "state": "off"}))
