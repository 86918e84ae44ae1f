"""Streaming call-progress tone detector: dial, ringback, busy and reorder, per region.

The tone plans come from callrec.regions (the one place where regional figures live). Every 20 ms the
detector measures each frequency of the region's plan over a 20 ms window (40 ms where two plan
frequencies are closer than 80 Hz, as 440/480 Hz in the US) and calls a frame "on" for a frequency
set when those bins carry ≥ 70 % of the frame's energy, each above −40 dBm0 and within 10 dB of each
other. On-bursts (drop-outs up to 40 ms are bridged) are then matched to the cadences: a cadenced
tone is recognised after `min_bursts` bursts whose on and off times are within ±10 % (at least
±60 ms, the frame quantisation of both edges); a steady tone is dial tone once it has lasted longer
than any cadenced tone with the same frequencies could. Japan's busy and reorder are the same signal,
so there it is reported as busy.

The detector reports a tone twice: once when it is recognised (`end` None, `state` "on"), so the core
can act on a far-end hang-up while the tone goes on, and once when it ends (`state` "off").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from callrec.config import PROFILES, RegionProfile

from .detection import SAMPLE_RATE, Detection, dbm0_to_power

FRAME = 160
_BRIDGE = 2          # frames of drop-out bridged inside a burst (the troughs of Japan's 16 Hz AM ringback)


@dataclass
class _Sig:
    """One frequency set and the tones of the plan that use it."""

    freqs: tuple[float, ...]
    cadenced: list[tuple[str, float, float]] = field(default_factory=list)  # kind, on, off
    steady: str | None = None
    burst: list[int] | None = None        # [first hit frame, last hit frame]
    bursts: list[tuple[float, float]] = field(default_factory=list)
    active: tuple[str, float] | None = None  # kind, start time
    active_end: float = 0.0


def _tol(x: float) -> float:
    return max(0.1 * x, 0.06)


class ToneDetector:
    """Feed 8 kHz int16 audio of one line; get tone detections for the region's plan."""

    def __init__(self, region: str | RegionProfile = "US", *, min_level_dbm0: float = -40.0,
                 fraction: float = 0.7, min_bursts: int = 2, gate: bool = True) -> None:
        profile = PROFILES[region] if isinstance(region, str) else region
        self.region = profile.name
        self.min_bursts = min_bursts
        self.gate = gate   # skip the frame walk in silence (same result; off only to prove that)
        self._fraction = fraction
        self._thr = dbm0_to_power(min_level_dbm0)
        sigs: dict[tuple[float, ...], _Sig] = {}
        for kind, tone in profile.tones.items():
            sig = sigs.setdefault(tuple(sorted(tone.freqs)), _Sig(tuple(sorted(tone.freqs))))
            if tone.cadence:
                on, off = tone.cadence[0], tone.cadence[1]
                if not any(abs(on - o) < 1e-9 and abs(off - f) < 1e-9 for _, o, f in sig.cadenced):
                    sig.cadenced.append((kind, on, off))
            elif sig.steady is None:
                sig.steady = kind
        self._sigs = list(sigs.values())
        freqs = sorted({f for s in self._sigs for f in s.freqs})
        spacing = min((b - a for a, b in zip(freqs, freqs[1:], strict=False)), default=1e9)
        self._n = 2 * FRAME if spacing < 80 else FRAME
        self._freqs = np.array(freqs)
        self._members = [np.array([freqs.index(f) for f in s.freqs]) for s in self._sigs]
        self._steady_min = {
            id(s): max([1.0] + [1.25 * on for _, on, _ in s.cadenced]) for s in self._sigs}
        w = 2 * np.pi * self._freqs / SAMPLE_RATE
        self._basis = np.exp(-1j * np.outer(np.arange(self._n), w))
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0)
        self._hist = np.zeros(self._n - FRAME)
        self._frame = 0
        # When a frequency of the region's tone plan last sounded, cadence recognised or not: a
        # ringback needs two cycles to be recognised, and the core must not give up waiting for it
        # (its announcement fallback) while single bursts are still coming.
        self.last_tone_t: float | None = None
        self._n_in = 0
        self._t_base = 0.0
        for s in self._sigs:
            s.burst, s.bursts, s.active = None, [], None

    def _t(self, frame_end: float) -> float:
        return self._t_base + frame_end / SAMPLE_RATE

    def feed(self, samples: np.ndarray, t0: float) -> list[Detection]:
        self._t_base = t0 - self._n_in / SAMPLE_RATE
        self._n_in += len(samples)
        buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64)])
        nf = len(buf) // FRAME
        self._buf = buf[nf * FRAME:]
        if nf == 0:
            return []
        data = np.concatenate([self._hist, buf[: nf * FRAME]])
        self._hist = data[len(data) - (self._n - FRAME):] if self._n > FRAME else np.zeros(0)
        windows = np.lib.stride_tricks.sliding_window_view(data, self._n)[::FRAME][:nf]
        energy = np.einsum("ij,ij->i", windows, windows) / self._n
        labels = np.full(nf, -1)
        loud = np.flatnonzero(energy >= self._thr)
        if len(loud):
            x = windows[loud] @ self._basis
            p = 2 * (x.real**2 + x.imag**2) / (self._n * self._n)
            best = np.zeros(len(loud))
            for k, m in enumerate(self._members):
                pm = p[:, m]
                s = pm.sum(axis=1)
                ok = (s >= self._fraction * energy[loud]) & (pm.min(axis=1) >= self._thr)
                ok &= pm.min(axis=1) * 10 >= pm.max(axis=1)
                better = ok & (s > best)
                labels[loud[better]] = k
                best = np.where(better, s, best)
        out: list[Detection] = []
        if self.gate and not len(loud) and all(s.burst is None and s.active is None for s in self._sigs):
            self._frame += nf   # silence, no burst open, no tone on: each frame's step would do nothing
            return out
        for lab in labels.tolist():
            self._step(lab, out)
        return out

    def flush(self) -> list[Detection]:
        out: list[Detection] = []
        for s in self._sigs:
            if s.burst is not None:
                self._close_burst(s, out)
            self._expire(s, float("inf"), out, final=True)
        return out

    def _step(self, label: int, out: list[Detection]) -> None:
        f = self._frame
        self._frame += 1
        now = self._t((f + 1) * FRAME)
        if label >= 0:
            self.last_tone_t = now   # any tone of the plan, recognised or not yet (see __init__)
        for k, s in enumerate(self._sigs):
            if k == label:
                if s.burst is None:
                    s.burst = [f, f]
                else:
                    s.burst[1] = f
                if s.steady and s.active is None and not s.cadenced or s.steady and s.active is None:
                    start, _ = self._burst_times(s)
                    if now - start >= self._steady_min[id(s)]:
                        s.active = (s.steady, start)
                        out.append(Detection("tone", start, None, {"kind": s.steady, "state": "on"}))
            elif s.burst is not None and f - s.burst[1] > _BRIDGE:
                self._close_burst(s, out)
            self._expire(s, now, out)

    def _burst_times(self, s: _Sig) -> tuple[float, float]:
        assert s.burst is not None
        first_end = (s.burst[0] + 1) * FRAME
        last_end = (s.burst[1] + 1) * FRAME
        start = first_end - (0.7 * self._n + FRAME / 2)
        end = last_end - 0.3 * self._n + FRAME / 2
        return self._t(start), self._t(end)

    def _close_burst(self, s: _Sig, out: list[Detection]) -> None:
        start, end = self._burst_times(s)
        s.burst = None
        if s.active is not None and s.active[0] == s.steady:
            out.append(Detection("tone", s.active[1], end, {"kind": s.steady, "state": "off"}))
            s.active = None
            s.bursts = []
            return
        if s.active is not None:
            kind = s.active[0]
            _, on, off = next(c for c in s.cadenced if c[0] == kind)
            gap = start - s.bursts[-1][1]
            if abs(end - start - on) <= _tol(on) and abs(gap - off) <= _tol(off) or gap < 0:
                s.bursts.append((start, end))
                s.active_end = end
                return
            out.append(Detection("tone", s.active[1], s.active_end, {"kind": kind, "state": "off"}))
            s.active = None
            s.bursts = []
        s.bursts = (s.bursts + [(start, end)])[-8:]
        for kind, on, off in s.cadenced:
            recent = s.bursts[-self.min_bursts:]
            if len(recent) < self.min_bursts:
                continue
            ons_ok = all(abs(e - b - on) <= _tol(on) for b, e in recent)
            gaps_ok = all(abs(recent[i + 1][0] - recent[i][1] - off) <= _tol(off)
                          for i in range(len(recent) - 1))
            if ons_ok and gaps_ok:
                s.active = (kind, recent[0][0])
                s.active_end = end
                s.bursts = list(recent)
                out.append(Detection("tone", recent[0][0], None, {"kind": kind, "state": "on"}))
                return

    def _expire(self, s: _Sig, now: float, out: list[Detection], final: bool = False) -> None:
        """A cadenced tone ends when its next burst is overdue."""
        if s.active is None or s.active[0] == s.steady or s.burst is not None:
            return
        kind = s.active[0]
        _, _, off = next(c for c in s.cadenced if c[0] == kind)
        if final or now > s.active_end + off + _tol(off) + 0.1:
            out.append(Detection("tone", s.active[1], s.active_end, {"kind": kind, "state": "off"}))
            s.active = None
            s.bursts = []
