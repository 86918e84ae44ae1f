"""`callrec run`'s pipeline for bench_paced.py: the service as cmd_run builds it, pins simulated.

    ALSA_CONFIG_PATH=… .venv/bin/python bench/paced_run.py CONFIG SECONDS [--call]

Everything past the GPIO seam is what the device runs: the ALSA backend (the PCMs of CONFIG, which
the caller's asound.conf maps to alsa-lib's file plugin over a PulseAudio null sink, so the audio
arrives at wall-clock pace in the configured periods), the monotonic core clock, the recorder,
finisher, MQTT and control-socket front ends. Only the hook and ring inputs come from the line
port's simulated twin: on-hook throughout (idle), or off-hook on every line from the start to the
end (a call). `callrec simulate --realtime` pays for the simulator too (edges, lockstep, the
played-audio mix) in every period; this does not.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--call", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from callrec import config as configmod
    from callrec.app import Service, attach_front_ends, hardware_backend
    from callrec.line.gpio_sim import SimulatedLine

    config = configmod.load(args.config)
    pins = SimulatedLine([line.id for line in config.lines])
    service = Service(config, hardware_backend(pins))
    service.start()
    attach_front_ends(service, config, config.storage.data_dir / "control.sock")
    if args.call:
        for line in config.lines:
            pins.drive(line.id, "hook", True, time.monotonic())
    time.sleep(args.seconds)
    if args.call:
        for line in config.lines:
            pins.drive(line.id, "hook", False, time.monotonic())
        time.sleep(0.5)
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
