"""Tap health (docs/tap-health.md): each alarm is raised by a signal built for it, and a normal
two-party call at realistic levels raises none, however the audio is cut into blocks."""

from __future__ import annotations

import numpy as np
import pytest
from callrec.dsp.health import CallHealth, HealthSettings
from callrec.dsp.linewatch import DeadLineWatch, IdleLineWatch

RATE = 8000
FS = 32768.0
NEAR_DBFS, FAR_DBFS, NOISE_DBFS = -20.0, -32.0, -65.0


def rms(level_dbfs: float) -> float:
    return FS * 10.0 ** (level_dbfs / 20.0)


def syllable(rng: np.random.Generator, level_dbfs: float) -> np.ndarray:
    """A voiced syllable: harmonics of a gliding F0 (95–150 Hz, so some sit on 100 or 120 Hz), the
    telephone band emphasised but 100–300 Hz only 10 dB down, under a raised-cosine envelope."""
    n = int(rng.uniform(0.12, 0.25) * RATE)
    t = np.arange(n) / RATE
    f0 = rng.uniform(95.0, 150.0) * (1 + rng.uniform(-0.1, 0.1) * t / t[-1])
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formant = rng.uniform(500, 2500)
    x = np.zeros(n)
    for k in range(1, int(3400 / f0.max())):
        f = k * f0.mean()
        gain = (0.3 if f < 300 else 1.0) / (1.0 + ((f - formant) / 600.0) ** 2)
        x += gain * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    x *= np.sin(np.pi * np.arange(n) / n) ** 2
    syl_db = level_dbfs + rng.uniform(-3.0, 3.0)
    return x * rms(syl_db) / np.sqrt(np.mean(x ** 2))


def turn(rng: np.random.Generator, level_dbfs: float, seconds: float) -> np.ndarray:
    """Syllables with short gaps and the odd word pause, about `seconds` long."""
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * RATE:
        s = syllable(rng, level_dbfs)
        gap = np.zeros(int(rng.choice([rng.uniform(0.0, 0.06), rng.uniform(0.15, 0.3)], p=[0.8, 0.2]) * RATE))
        parts += [s, gap]
        total += len(s) + len(gap)
    return np.concatenate(parts)


def conversation(seconds: float = 60.0, *, near: float | None = NEAR_DBFS, far: float | None = FAR_DBFS,
                 noise: float = NOISE_DBFS, seed: int = 1) -> np.ndarray:
    """Alternating turns (1.5–4 s, gaps 0.1–0.6 s) of near and far; a side set to None is replaced by
    silence of the same length: the conversation as a tap hears it when that side is missing."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    total, side = 0, 0
    while total < seconds * RATE:
        level = (near, far)[side]
        t = turn(rng, level if level is not None else -20.0, rng.uniform(1.5, 4.0))
        parts += [t if level is not None else np.zeros_like(t), np.zeros(int(rng.uniform(0.1, 0.6) * RATE))]
        total += len(t) + len(parts[-1])
        side = 1 - side
    x = np.concatenate(parts)[: int(seconds * RATE)]
    return x + rng.standard_normal(len(x)) * rms(noise)


def hum(n: int, mains: float, level_dbfs: float = -45.0) -> np.ndarray:
    """A ground loop: the mains fundamental and its 2nd and 3rd harmonics 5 and 8 dB down."""
    t = np.arange(n) / RATE
    return sum(rms(level_dbfs + d) * np.sqrt(2) * np.sin(2 * np.pi * k * mains * t + k)
               for k, d in ((1, 0.0), (2, -5.0), (3, -8.0)))


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def verdict(x: np.ndarray, block: int = 160, settings: HealthSettings | None = None) -> dict:
    health = CallHealth(settings)
    for i in range(0, len(x), block):
        health.feed(x[i:i + block])
    return health.verdict()


@pytest.fixture(scope="module")
def normal_call() -> np.ndarray:
    return pcm(conversation())


# --- the normal call raises nothing, however it is cut ---------------------------------------------

@pytest.mark.parametrize("block", [160, 8000, 441])
def test_normal_two_party_call_is_healthy_in_20ms_and_1s_blocks(normal_call, block):
    v = verdict(normal_call, block)
    assert v["ok"] and v["problems"] == []
    assert v["near_talk_s"] > 10 and v["far_talk_s"] > 10   # both level classes were told apart
    assert v == verdict(normal_call, 160)


def test_verdict_is_json_serialisable_and_rounded(normal_call):
    import json
    v = verdict(normal_call)
    assert json.loads(json.dumps(v)) == v
    assert -26 < v["level_dbfs"] < -22 and v["clipped_share"] == 0.0 and v["hum_hz"] is None


@pytest.mark.parametrize("far", [-26.0, -30.0, -40.0])
def test_far_end_6_to_20_db_below_the_near_end_is_not_one_sided(far):
    assert verdict(pcm(conversation(40, far=far, seed=3)))["problems"] == []


def test_two_parties_at_the_same_level_are_not_one_sided():
    """One level class, but the turns are answered: the detector cannot tell, so it does not flag."""
    v = verdict(pcm(conversation(40, near=-22, far=-23, seed=4)))
    assert v["problems"] == [] and v["near_talk_s"] is None and v["unanswered_share"] < 0.1


def test_line_noise_and_a_quiet_hum_are_not_hum():
    x = conversation(40, seed=5) + hum(40 * RATE, 50.0, level_dbfs=-75.0)
    assert verdict(pcm(x))["problems"] == []


# --- each alarm from the signal built for it -------------------------------------------------------

def test_silent_line_is_reported_at_n_seconds_not_before():
    x = conversation(15, near=None, far=None, seed=6)
    x[:80] += rms(-10) * np.hanning(80)           # the click of the hook at the start
    x = pcm(x)
    health = CallHealth(HealthSettings(silent_after_s=10.0))
    seen = []
    for i in range(0, len(x), 160):
        health.feed(x[i:i + 160])
        seen.append(health.silent_now())
    assert not any(seen[:499]) and all(seen[499:])      # from the 500th period (10.00 s) on
    assert health.verdict()["problems"] == ["silent"]


def test_silent_alarm_clears_when_someone_speaks():
    x = np.concatenate([conversation(11, near=None, far=None), conversation(20, seed=7)])
    health = CallHealth()
    health.feed(pcm(x[: 11 * RATE]))
    assert health.silent_now()
    health.feed(pcm(x[11 * RATE:]))
    assert not health.silent_now() and "silent" not in health.verdict()["problems"]


@pytest.mark.parametrize("side", ["near", "far"])
def test_one_talker_only_is_one_sided(side):
    kw = {"near": None} if side == "far" else {"far": None}
    v = verdict(pcm(conversation(60, seed=2, **kw)), 8000)
    assert v["problems"] == ["one_sided"] and v["unanswered_share"] > 0.4


def test_a_short_exchange_is_not_judged_one_sided():
    assert verdict(pcm(conversation(12, far=None, seed=2)))["problems"] == []


def test_clipping_is_reported():
    v = verdict(pcm(conversation(30, near=-6.0)))
    assert v["problems"] == ["clipping"] and v["clipped_share"] > 0.01 and v["peak_dbfs"] == 0.0


@pytest.mark.parametrize("mains", [50.05, 59.95])
def test_mains_hum_is_reported_with_its_frequency(mains):
    v = verdict(pcm(conversation(30, seed=8) + hum(30 * RATE, mains)))
    assert v["problems"] == ["hum"] and v["hum_hz"] == round(mains) and v["hum_db"] > -30


def test_hum_on_an_otherwise_silent_line_is_hum_not_silence():
    v = verdict(pcm(conversation(15, near=None, far=None) + hum(15 * RATE, 50.0, -50.0)))
    assert v["problems"] == ["hum"]


# --- idle line: zero audio, dead line --------------------------------------------------------------

def test_identically_zero_idle_audio_alarms_after_s_seconds_and_clears_on_noise():
    watch = IdleLineWatch(HealthSettings(idle_zero_s=5.0))
    noise = pcm(conversation(1, near=None, far=None))
    assert not watch.feed(noise)
    states = [watch.feed(np.zeros(160, np.int16)) for _ in range(300)]
    assert not any(states[:249]) and all(states[249:])
    assert not watch.feed(noise[:160]) and watch.zero_s < 0.02


def test_line_noise_never_counts_as_zero_audio():
    watch = IdleLineWatch(HealthSettings(idle_zero_s=1.0))
    noise = pcm(conversation(10, near=None, far=None))
    assert not any(watch.feed(noise[i:i + 160]) for i in range(0, len(noise), 160))


H = 3600.0


def test_a_busy_line_with_no_ring_or_hook_change_for_idle_alarm_hours_is_dead():
    watch = DeadLineWatch(HealthSettings(idle_alarm_hours=72, usual_calls=5, usual_days=7))
    for day in range(5):
        watch.call(day * 24 * H)
    last = 4 * 24 * H
    assert not watch.check(last + 71 * H)
    assert watch.check(last + 72 * H)
    assert watch.check(last + 30 * 24 * H)        # stays dead: the history counts back from the last activity
    watch.activity(last + 80 * H)                 # a ring
    assert not watch.check(last + 81 * H)


def test_a_line_that_rarely_has_calls_is_never_called_dead():
    watch = DeadLineWatch(HealthSettings(usual_calls=5), calls=[0.0, 3 * 24 * H])
    assert not watch.check(30 * 24 * H)


def test_call_history_can_be_seeded_from_the_index():
    watch = DeadLineWatch(HealthSettings(usual_calls=3, idle_alarm_hours=24), calls=[0.0, H, 2 * H, 3 * H])
    assert watch.usually_has_calls() and watch.check(27 * H) and not watch.check(26 * H)
