"""All detectors of one line behind one `feed()`: what the capture thread and `analyze` both call.

One object per line keeps the per-line state together; it is single-threaded (the capture thread
owns it) and costs well under 1 % of a core at 8 kHz (bench/bench_dsp.py).
"""

from __future__ import annotations

import numpy as np

from .callerid import CallerIdDetector, DtmfClipParser
from .detection import Detection
from .dtmf import REGION_PROFILES, DtmfDetector
from .tones import ToneDetector


class LineDsp:
    """DTMF, caller ID (FSK and DTMF CLIP) and call-progress tones for one line of `region`."""

    def __init__(self, region: str = "JP") -> None:
        self.region = region
        self.dtmf = DtmfDetector(REGION_PROFILES[region])
        self.caller_id = CallerIdDetector()
        self.clip = DtmfClipParser()
        self.tones = ToneDetector(region)

    def feed(self, samples: np.ndarray, t0: float) -> list[Detection]:
        """One period (any length, typically 160 samples = 20 ms) of int16 8 kHz audio."""
        digits = self.dtmf.feed(samples, t0)
        return self._collect(digits, self.caller_id.feed(samples, t0), self.tones.feed(samples, t0))

    def flush(self) -> list[Detection]:
        """End of the audio (call over, file read): report whatever is still in progress."""
        return self._collect(self.dtmf.flush(), self.caller_id.flush(), self.tones.flush())

    def _collect(self, digits: list[Detection], cid: list[Detection], tones: list[Detection]) -> list[Detection]:
        out = list(digits)
        for d in digits:
            clip = self.clip.push(d)
            if clip is not None:
                out.append(clip)
        return out + cid + tones
