"""The core's tap-health watch builds a call's meter once, not in every period (core/health.py).

A meter carries its hum bases; built in each of a call's 50 periods a second it was a quarter of
the core's time in a call (bench/bench_paced.py), with no result to show for it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from callrec.config import Config
from callrec.core import health as core_health
from callrec.core.alarms import CoreAlarms


def test_a_call_meter_and_an_idle_watch_are_built_once_however_many_periods(monkeypatch):
    built = {"meter": 0, "idle": 0}

    class CountedMeter(core_health.CallHealth):
        def __init__(self, *args, **kwargs):
            built["meter"] += 1
            super().__init__(*args, **kwargs)

    class CountedIdle(core_health.IdleLineWatch):
        def __init__(self, *args, **kwargs):
            built["idle"] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(core_health, "CallHealth", CountedMeter)
    monkeypatch.setattr(core_health, "IdleLineWatch", CountedIdle)
    watch = core_health.TapHealth(Config(), CoreAlarms(lambda *args, **kwargs: None), 8000)
    period = (np.random.default_rng(1).standard_normal(160) * 800).astype(np.int16)
    line = SimpleNamespace(id=1, call=None)
    for k in range(100):
        watch.audio(line, period, k * 0.02)
    line.call = SimpleNamespace(call_id="c1", line=1, announcement=None, announce_pending=False)
    for k in range(100, 300):
        watch.audio(line, period, k * 0.02)
    assert built == {"meter": 1, "idle": 1}
