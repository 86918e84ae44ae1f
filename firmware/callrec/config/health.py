"""`[health]`: the tap-health alarms' thresholds (docs/tap-health.md explains each measurement)."""

from __future__ import annotations

from pydantic import Field

from callrec.config.toml import TomlModel


class HealthConfig(TomlModel):
    enabled: bool = Field(True, description="Judge every call's audio and watch idle lines (alarms, record `health`)")
    silence_floor_dbfs: float = Field(-60.0, ge=-100, le=-20, description="Audio below this is silence")
    silent_after_s: float = Field(10.0, ge=2, le=600, description="A call silent this long raises `tap_silent`")
    clip_level: int = Field(32000, ge=16000, le=32767, description="A sample at or above this is at full scale")
    max_clipped_share: float = Field(0.01, gt=0, le=0.5, description="More clipped samples than this share: clipping")
    hum_ratio_db: float = Field(-30.0, ge=-60, le=0, description="Mains hum this strong against the call: hum")
    min_talk_s: float = Field(10.0, ge=2, le=600, description="Speech a call needs before one side can be judged")
    side_gap_db: float = Field(6.0, ge=2, le=30, description="Level gap that tells the near from the far talker")
    idle_zero_s: float = Field(5.0, ge=1, le=3600, description="Idle audio identically zero this long: `tap_zero`")
    idle_alarm_hours: float = Field(72.0, ge=1, le=24 * 60, description="No ring or hook change this long on a "
                                                                         "line that usually has calls: `dead_line`")
    usual_calls: int = Field(5, ge=1, le=1000, description="Calls in `usual_days` that make a line one with calls")
    usual_days: float = Field(7.0, gt=0, le=365, description="The window of `usual_calls`")
    max_call_hours: float = Field(4.0, gt=0, le=48, description="Off-hook longer: `hook_stuck`, and the call is "
                                                                "split into parts of at most this length")
