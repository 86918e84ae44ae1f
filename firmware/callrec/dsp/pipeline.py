"""All detectors of one line behind one `feed()`: what the capture thread and `analyze` both call.

One object per line keeps the per-line state together; it is single-threaded (the capture thread
owns it). Periods are gathered into batches of `batch` samples (default 480 = 60 ms) before the
detectors run: at 20 ms per call, Python's per-call overhead was most of the cost (1.3 % of a core in
bench/bench_dsp.py), and no detector needs a lower latency (a digit is reported when it ends anyway).
Reported times are unaffected.
"""

from __future__ import annotations

import numpy as np

from .callerid import CallerIdDetector, DtmfClipParser
from .detection import SAMPLE_RATE, Detection
from .dtmf import REGION_PROFILES, DtmfDetector
from .tones import ToneDetector


class LineDsp:
    """DTMF, caller ID (FSK and DTMF CLIP) and call-progress tones for one line of `region`."""

    def __init__(self, region: str = "JP", batch: int = 480, *, gate: bool = True) -> None:
        self.region = region
        self.batch = batch
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._pending_t0 = 0.0
        self.analysed_until = 0.0   # line time up to which every detector has run
        # Each detector skips what it cannot find anything in (quiet audio, no carrier), with the
        # same result: an idle line is quiet most of the day, at 50 periods a second.
        self.dtmf = DtmfDetector(REGION_PROFILES[region], gate=gate)
        self.caller_id = CallerIdDetector(gate=gate)
        self.clip = DtmfClipParser()
        self.tones = ToneDetector(region, gate=gate)

    def feed(self, samples: np.ndarray, t0: float) -> list[Detection]:
        """One period (any length, typically 160 samples = 20 ms) of int16 8 kHz audio at `t0` s."""
        if not self._pending:
            self._pending_t0 = t0
        self._pending.append(np.asarray(samples))
        self._pending_n += len(samples)
        if self._pending_n < self.batch:
            return []
        return self._run()

    def flush(self) -> list[Detection]:
        """End of the audio (call over, file read): report whatever is still in progress."""
        out = self._run() if self._pending else []
        return out + self._collect(self.dtmf.flush(), self.caller_id.flush(), self.tones.flush())

    def _run(self) -> list[Detection]:
        x = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        t0 = self._pending_t0
        self.analysed_until = t0 + len(x) / SAMPLE_RATE
        self._pending, self._pending_n = [], 0
        return self._collect(self.dtmf.feed(x, t0), self.caller_id.feed(x, t0), self.tones.feed(x, t0))

    def _collect(self, digits: list[Detection], cid: list[Detection], tones: list[Detection]) -> list[Detection]:
        out = list(digits)
        for d in digits:
            clip = self.clip.push(d)
            if clip is not None:
                out.append(clip)
        return out + cid + tones
