"""Region profiles: the telephony figures that differ between Japan, North America and Europe.

Figures from ../shared/spec/telephony.md; each can be overridden in the `[telephony]` table of the
configuration. A tone is a list of frequencies (Hz) and a cadence: alternating on/off seconds,
repeated; an empty cadence means continuous. Ringback in Japan is 400 Hz modulated at 16 Hz: the
modulation is listed in `am_hz` so a detector can accept it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tone:
    freqs: tuple[float, ...]
    cadence: tuple[float, ...] = ()
    am_hz: float | None = None


@dataclass(frozen=True)
class RegionProfile:
    name: str
    flash_min_ms: int           # an on-hook shorter than this is a contact glitch, ignored
    flash_max_ms: int           # an on-hook up to this is a hook flash; longer hangs up
    tones: dict[str, Tone] = field(default_factory=dict)
    announcement: str = "ja"    # which shipped announcement is the default


JP = RegionProfile(
    name="JP",
    flash_min_ms=100,
    flash_max_ms=1000,
    tones={
        "dial": Tone((400.0,)),
        "ringback": Tone((400.0,), (1.0, 2.0), am_hz=16.0),
        "busy": Tone((400.0,), (0.5, 0.5)),
        "reorder": Tone((400.0,), (0.5, 0.5)),
    },
    announcement="ja",
)

US = RegionProfile(
    name="US",
    flash_min_ms=300,
    flash_max_ms=1100,
    tones={
        "dial": Tone((350.0, 440.0)),
        "ringback": Tone((440.0, 480.0), (2.0, 4.0)),
        "busy": Tone((480.0, 620.0), (0.5, 0.5)),
        "reorder": Tone((480.0, 620.0), (0.25, 0.25)),
    },
    announcement="en",
)

EU = RegionProfile(
    name="EU",
    flash_min_ms=90,
    flash_max_ms=500,
    tones={
        "dial": Tone((425.0,)),
        "ringback": Tone((425.0,), (1.0, 4.0)),
        "busy": Tone((425.0,), (0.5, 0.5)),
        "reorder": Tone((425.0,), (0.25, 0.25)),
    },
    announcement="en",
)

PROFILES: dict[str, RegionProfile] = {p.name: p for p in (JP, US, EU)}
