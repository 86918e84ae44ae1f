"""The line's ears: every detector (DTMF, caller ID, call-progress tones) on what the line carries.

The detectors work at 8 kHz, the rate of the telephone network; a line captured at 16 kHz is brought
down with soxr's streaming resampler (proper anti-aliasing, state kept across periods).
"""

from __future__ import annotations

import numpy as np
import soxr

from callrec.dsp import SAMPLE_RATE, Detection, LineDsp


class LineDetectors:
    def __init__(self, region: str, rate: int) -> None:
        self.rate = rate
        self._dsp = LineDsp(region)
        self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16") if rate != SAMPLE_RATE else None

    def feed(self, samples: np.ndarray, t0: float, *, in_call: bool | None = None) -> list[Detection]:
        """One period at `t0`; `in_call` says which detectors can matter (see callrec.dsp.pipeline)."""
        self._dsp.in_call = in_call
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._dsp.feed(samples, t0)

    @property
    def analysed_until(self) -> float:
        """Line time up to which the detectors have run (they work in batches, behind the audio)."""
        return self._dsp.analysed_until

    @property
    def last_tone_t(self) -> float | None:
        """When a call-progress frequency last sounded (line time), recognised or not."""
        return self._dsp.tones.last_tone_t

    def flush(self) -> list[Detection]:
        return self._dsp.flush()
