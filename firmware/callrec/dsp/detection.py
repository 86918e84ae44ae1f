"""What every detector reports, and the JSON shape `callrec analyze` prints.

One small frozen type for all detectors keeps the live pipeline and the offline analysis on the same
objects; `as_dict()` is the contract documented in docs/dsp.md (fields may be added, never renamed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE_RATE = 8000
"""Every detector works on 8 kHz int16 mono: the rate of the line (G.711) and of the capture path."""


@dataclass(frozen=True)
class Detection:
    """A DTMF digit, a caller-ID message or a call-progress tone, with times in seconds.

    `type` is "dtmf", "caller_id" or "tone". `end` is None only for the early "tone started" notice
    a streaming tone detector gives before the tone has ended.
    """

    type: str
    start: float
    end: float | None
    fields: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON object, keys in contract order, times rounded to milliseconds."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "dtmf":
            out["digit"] = self.fields["digit"]
        elif self.type == "caller_id":
            for key in ("standard", "valid", "number", "name", "reason"):
                out[key] = self.fields.get(key)
        elif self.type == "tone":
            out["kind"] = self.fields["kind"]
        out["start"] = round(self.start, 3)
        if self.type != "caller_id" or self.end is not None:
            out["end"] = None if self.end is None else round(self.end, 3)
        for key, value in self.fields.items():
            out.setdefault(key, value)
        return out


def dbm0_to_power(level_dbm0: float) -> float:
    """Mean-square int16 power of a signal at `level_dbm0`.

    Scale as in spandsp (and ITU-T G.711): a full-scale sine is +3.14 dBm0, so a 0 dBm0 sine has a
    peak of 32767·10^(−3.14/20) ≈ 22,800.
    """
    peak0 = 32767.0 * 10.0 ** (-3.14 / 20.0)
    power: float = (peak0 * peak0 / 2.0) * 10.0 ** (level_dbm0 / 10.0)
    return power
