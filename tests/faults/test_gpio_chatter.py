"""GPIO chatter: a sense input toggling at 1 kHz for 10 s (a loose wire, interference) makes no
phantom call, and costs bounded CPU; the line still takes the real call that follows.

The edges come from the simulated line, the GPIO port's twin, at the exact sample of each.
"""

from __future__ import annotations

import json
import resource
import sys

import pytest
from conftest import callrec, noise_wav

CHATTER_HZ = 1000
CHATTER_S = 10.0
# Generous: the point is "bounded", not a speed figure (bench/ and docs/reliability.md have those).
MOST_CPU_S = 60.0


def _chatter(signal: str, start: float) -> list[str]:
    half = 0.5 / CHATTER_HZ
    events = []
    for n in range(int(CHATTER_S * CHATTER_HZ)):
        t = start + n / CHATTER_HZ
        on, off = ("off", "on") if signal == "hook" else ("on", "off")
        events += [f'{{ at = {t:.5f}, {signal} = "{on}" }}', f'{{ at = {t + half:.5f}, {signal} = "{off}" }}']
    return events


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("signal", ["hook", "ring"])
def test_1khz_chatter_for_10_s_makes_no_phantom_call_and_the_real_call_after_it_is_recorded(tmp_path, signal):
    noise_wav(tmp_path / "line1.wav", 22)
    events = _chatter(signal, 1.0) + ['{ at = 14.0, hook = "off" }', '{ at = 19.0, hook = "on" }']
    listed = ",\n  ".join(events)
    (tmp_path / "s.toml").write_text(f'[[line]]\nline = 1\naudio = "line1.wav"\nevents = [\n  {listed}\n]\n')
    before = _cpu()
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(tmp_path / "data"), timeout=300)
    spent = _cpu() - before
    assert out.returncode == 0, out.stderr[-2000:]
    started = [json.loads(line) for line in out.stdout.splitlines() if '"call.started"' in line]
    assert len(started) == 1, f"{len(started)} calls: chatter must not make calls"
    assert abs(json.loads(callrec("calls", "show", started[0]["call_id"], "--data",
                                  str(tmp_path / "data")).stdout)["duration_s"] - 5.0) < 0.05
    assert spent < MOST_CPU_S, f"{spent:.1f} CPU s for {CHATTER_S:.0f} s of {CHATTER_HZ} Hz chatter"
    print(f"{signal} chatter: {spent:.1f} CPU s", file=sys.stderr)
