"""Cost of tap health per 20 ms capture period, next to numpy's own peak of the same block.

    .venv/bin/python bench/bench_health.py [--seconds 60]

Feeds a synthetic call (line noise plus speech-like bursts) to `CallHealth` in 160-sample periods, as
the capture thread does, and prints µs per period for it and for `np.abs(block).max()` measured in
the same run, so the figure can be read on any machine (a Raspberry Pi is several times slower).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from callrec.dsp.health import CallHealth
from callrec.dsp.linewatch import IdleLineWatch

PERIOD = 160


def per_period_us(fn: object, blocks: list[np.ndarray]) -> float:
    assert callable(fn)
    t0 = time.perf_counter()
    for b in blocks:
        fn(b)
    return (time.perf_counter() - t0) / len(blocks) * 1e6


def worst_period_us(fn: object, blocks: list[np.ndarray]) -> float:
    """The slowest single period: CallHealth analyses a whole second at once, on every 50th period."""
    assert callable(fn)
    worst = 0.0
    for b in blocks:
        t0 = time.perf_counter()
        fn(b)
        worst = max(worst, time.perf_counter() - t0)
    return worst * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = int(args.seconds * 8000)
    x = rng.standard_normal(n) * 18.0
    env = (np.sin(2 * np.pi * 3 * np.arange(n) / 8000) > 0) * 3000.0
    x += env * np.sin(2 * np.pi * 440 * np.arange(n) / 8000)
    audio = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    blocks = [audio[i:i + PERIOD] for i in range(0, n - PERIOD + 1, PERIOD)]
    reference = per_period_us(lambda b: np.abs(b).max(), blocks)
    health = per_period_us(CallHealth().feed, blocks)
    idle = per_period_us(IdleLineWatch().feed, blocks)
    print(f"{len(blocks)} periods of 20 ms")
    print("| what | µs / 20 ms period | × np.abs(x).max() |\n|---|---|---|")
    print(f"| np.abs(x).max() (reference) | {reference:.1f} | 1.0 |")
    print(f"| CallHealth.feed | {health:.1f} | {health / reference:.1f} |")
    print(f"| IdleLineWatch.feed | {idle:.1f} | {idle / reference:.1f} |")
    print(f"CallHealth: {health / 20000 * 100:.2f} % of one core per line; "
          f"slowest period (a second's analysis) {worst_period_us(CallHealth().feed, blocks):.0f} µs")


if __name__ == "__main__":
    main()
