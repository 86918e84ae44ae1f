"""Off-hook edge to the first announcement sample handed to the playback PCM, at wall-clock pace.

    .venv/bin/python bench/bench_latency.py [--calls 30]

Runs the real pipeline in this process on a simulated line paced by a private PulseAudio (the
`--realtime` setup of `callrec simulate`): the simulated GPIO edge is stamped at the moment it
happened on the paced line (the capture thread fires it with the read that contains it, and takes
off how far into that read it lies), as an RPi.GPIO callback would stamp it, and the playback
thread stamps the moment it hands the first announcement period to ALSA. The aim is the debounce
plus 60 ms. The reference printed beside it, measured in the same run, is the pacing itself: the
interval between successive capture periods.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from callrec.app import Service
from callrec.config import model as configmod
from callrec.sim import Scenario, ScenarioEvent, ScenarioLine, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callrec-latency-") as tmp:
        work = Path(tmp)
        seconds = 1.0 + 4.0 * args.calls + 2.0
        soundfile.write(str(work / "line.wav"), np.zeros(int(seconds * 8000), dtype=np.int16), 8000)
        events = []
        for n in range(args.calls):
            # 1.5 s calls, 2.5 s apart: longer than any region's flash window
            events += [ScenarioEvent(1.0 + 4.0 * n, "hook", True), ScenarioEvent(2.5 + 4.0 * n, "hook", False)]
        scenario = Scenario((ScenarioLine(1, work / "line.wav", tuple(events)),))
        # Announce at the off-hook edge (as for every inbound call): outbound calls would otherwise
        # wait for the far end, which this silent line never gives.
        config = configmod.parse({"storage": {"data_dir": str(work / "data"), "min_call_seconds": 0.5},
                                  "signals": {"outbound_announcement": "offhook"}})
        sim = prepare(config, scenario, realtime=True, explicit_config=False)
        service = Service(sim.config, sim.backend)
        sim.bind(service.wait_settled, service.player_idle)
        try:
            service.start()
            assert service.core is not None
            period_gaps = []
            last = None
            while not service.core.finished.wait(0.0):
                stamp = service.captures[0].last_period_monotonic
                if stamp != last and last is not None and stamp:
                    period_gaps.append(stamp - last)
                last = stamp
                time.sleep(0.002)
            service.stop()
        finally:
            sim.close()
        card = sim.card_of(1)
        edges = [card.edge_monotonic[e.at] for e in events if e.active]
        handed = [t for line, kind, t in service.players[0].handovers if kind == "announcement"]
        latencies = []
        for edge in edges:
            after = [t for t in handed if t >= edge]
            if after:
                latencies.append((after[0] - edge) * 1000)
        debounce = config.hook.debounce_ms
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
        print(f"off-hook edge -> first announcement sample handed to ALSA, {len(latencies)} calls, paced by PulseAudio")
        print(f"  median {statistics.median(latencies):6.1f} ms   p99 {p99:6.1f} ms   max {latencies[-1]:6.1f} ms")
        print(f"  aim: debounce + 60 ms = {debounce + 60} ms;  median - debounce = "
              f"{statistics.median(latencies) - debounce:.1f} ms")
        gaps = sorted(g * 1000 for g in period_gaps if g > 0)
        if gaps:
            print(f"  reference: capture period interval median {statistics.median(gaps):.1f} ms "
                  f"(period 20 ms), p99 {gaps[int(0.99 * (len(gaps) - 1))]:.1f} ms")
        if len(latencies) != args.calls:
            sys.exit(f"only {len(latencies)} of {args.calls} calls were announced")


if __name__ == "__main__":
    main()
