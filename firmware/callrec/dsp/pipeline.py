"""All detectors of one line behind one `feed()`: what the capture thread and `analyze` both call.

One object per line keeps the per-line state together; it is single-threaded (the capture thread
owns it). Periods are gathered into batches of `batch` samples (default 480 = 60 ms) before the
detectors run: at 20 ms per call, Python's per-call overhead was most of the cost (1.3 % of a core in
bench/bench_dsp.py), and no detector needs a lower latency (a digit is reported when it ends anyway).
Reported times are unaffected.

Each detector runs only where it can matter, as the core says through `in_call` (set before each
period; None, as for a file, runs them all): on-hook, caller ID (FSK between rings, DTMF CLIP before
the first, NTT Number Display during its off-hook blip, which is not a call) and DTMF; in a call,
DTMF, the call-progress tones (before the answer, and busy or reorder for the far end's hang-up)
and the CAS detector, whose alerting tone opens the FSK receiver for `CAS_WINDOW_S` (type II caller
ID). Speech is what the FSK correlators cost most on, and a call is mostly speech.
"""

from __future__ import annotations

import numpy as np

from .callerid import CallerIdDetector, DtmfClipParser
from .cas import CasDetector
from .detection import SAMPLE_RATE, Detection
from .dtmf import REGION_PROFILES, DtmfDetector
from .tones import ToneDetector

CAS_WINDOW_S = 3.0
"""How long after a CAS the FSK receiver listens in a call (the message follows within about
0.5 s of the phone's acknowledgement and lasts under a second); a message under way holds it open."""


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
        self.gate = gate
        self.dtmf = DtmfDetector(REGION_PROFILES[region], gate=gate)
        self.caller_id = CallerIdDetector(gate=gate)
        self.clip = DtmfClipParser()
        self.tones = ToneDetector(region, gate=gate)
        self.cas = CasDetector()
        self.in_call: bool | None = None     # the core's word, read at each batch
        self._phase: bool | None = None      # what the detectors were last run for
        self._cid_until: float | None = None   # in a call: the end of the caller-ID window a CAS opened
        self.runs = {"caller_id": 0, "tones": 0}   # batches each ran on (what the gating saved)

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
        return out + self._collect(self.dtmf.flush(), self.caller_id.flush(), self.tones.flush() + self.cas.flush())

    def _run(self) -> list[Detection]:
        # to float once for every detector (each takes float64 as it is)
        x = (np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]).astype(np.float64)
        t0 = self._pending_t0
        end = self.analysed_until = t0 + len(x) / SAMPLE_RATE
        self._pending, self._pending_n = [], 0
        phase = self.in_call
        early = self._enter(phase) if phase != self._phase else []
        digits = self.dtmf.feed(x, t0)
        tones: list[Detection] = []
        if phase is not False:
            self.runs["tones"] += 1   # the CAS detector runs with them
            tones = self.tones.feed(x, t0) + self.cas.feed(x, t0)
        cid: list[Detection] = []
        if phase is not True or self._cid_until is not None:
            self.runs["caller_id"] += 1
            cid = self.caller_id.feed(x, t0)
            window_over = self._cid_until is not None and end >= self._cid_until
            if phase is True and window_over and not self.caller_id.receiving:
                cid += self.caller_id.flush()
                self._cid_until = None
        alerts = [d for d in tones if d.fields.get("kind") == "cas"] if phase is True else []
        if alerts:
            if self._cid_until is None:
                # a fresh receiver from the end of the alert: nothing of the speech before it, and the
                # rest of this batch (a batch may be longer than the alert's lead on the message)
                self.caller_id = CallerIdDetector(gate=self.gate)
                skip = min(len(x), max(0, int(np.ceil(((alerts[-1].end or end) - t0) * SAMPLE_RATE))))
                if skip < len(x):
                    self.runs["caller_id"] += 1
                    cid += self.caller_id.feed(x[skip:], t0 + skip / SAMPLE_RATE)
            self._cid_until = end + CAS_WINDOW_S
        out = self._collect(digits, cid, tones)
        return early + out if early else out

    def _enter(self, phase: bool | None) -> list[Detection]:
        """The line went into or out of a call: end what the old phase's detectors had under way and
        start the new one's afresh (a detector not fed for a while must not join two stretches)."""
        was, self._phase = self._phase, phase
        out: list[Detection] = []
        if was is not False:   # the call-progress detectors ran: a tone under way ends here
            out += self.tones.flush() + self.cas.flush()
        self.tones.reset()
        self.cas = CasDetector()
        if was is not True or self._cid_until is not None:
            out += self.caller_id.flush()
        self.caller_id = CallerIdDetector(gate=self.gate)
        self._cid_until = None
        return out

    def _collect(self, digits: list[Detection], cid: list[Detection], tones: list[Detection]) -> list[Detection]:
        out = list(digits)
        for d in digits:
            clip = self.clip.push(d)
            if clip is not None:
                out.append(clip)
        return out + cid + tones
