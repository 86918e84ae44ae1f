"""The real-time cost: marginal CPU seconds per line-hour at wall-clock pace, and peak RSS.

    .venv/bin/python bench/bench_paced.py [--lines 1 4] [--short 30] [--long 120] [--detectors-off]

Unpaced simulation hands the audio over in 1 s batches and hides what a Pi pays: 50 periods a
second per line, around the clock. Here `callrec simulate --realtime` runs at wall-clock pace
through the private PulseAudio the tests use (its own CPU is not counted: PulseAudio stands in for
the sound card), idle and in a call, for a short and a long run; the difference between the two
is the marginal cost, so start-up and shut-down cancel. The reference in the same run is
`arecord | flac` once per line, paced the same way (alsa-lib's file plugin over the same PulseAudio
null sink). CPU is read from /proc for every process of the tree but PulseAudio; RSS is the largest
VmHWM of the callrec process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import RATE, _hwm_kib, _tree, make_audio

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> tuple[str, float] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1: stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return comm, (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_paced(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds of the tree but PulseAudio, peak RSS MiB of the top process), polling /proc."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last: dict[int, tuple[str, float]] = {}
    peak = 0
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            seen = _cpu(pid)
            if seen is not None:
                last[pid] = seen
        peak = max(peak, _hwm_kib(proc.pid))
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.read().decode() if proc.stderr else ''}")
    return sum(cpu for comm, cpu in last.values() if "pulseaudio" not in comm), peak / 1024


def callrec_run(work: Path, lines: int, seconds: float, call: bool, detectors: bool) -> tuple[float, float]:
    audio = work / "line.wav"
    scenario = work / f"s{lines}{call}{seconds}.toml"
    events = f'[{{ at = 0.5, hook = "off" }}, {{ at = {seconds - 0.5}, hook = "on" }}]' if call else "[]"
    scenario.write_text("\n".join(f'[[line]]\nline = {n}\naudio = "{audio}"\nevents = {events}\n'
                                  for n in range(1, lines + 1)))
    config = work / f"config{detectors}.toml"
    config.write_text(("" if detectors else "[signals]\nenabled = false\n[health]\nenabled = false\n") + "".join(
        f"[[lines]]\nid = {n}\nhook_gpio = {2 + 2 * n}\nring_gpio = {3 + 2 * n}\n"
        f'capture_pcm = "card{(n + 1) // 2}"\ncapture_channel = {(n - 1) % 2}\n'
        f'playback_pcm = "card{(n + 1) // 2}"\nplayback_channel = {(n - 1) % 2}\n' for n in range(1, lines + 1)))
    data = work / f"data-{lines}-{call}-{seconds}-{detectors}"
    return run_paced([sys.executable, "-m", "callrec", "--config", str(config), "simulate", str(scenario),
                      "--data", str(data), "--realtime"])


def reference_run(work: Path, lines: int, seconds: float) -> tuple[float, float]:
    from callrec.sim.pulse import PulseServer

    raw = work / "line.raw"
    if not raw.exists():
        import soundfile

        samples, _ = soundfile.read(str(work / "line.wav"), dtype="int16")
        raw.write_bytes(samples.astype("<i2").tobytes())
    pulse = PulseServer(work / f"ref{lines}-{seconds}", RATE, [("ref", 1)])
    try:
        conf = work / "ref.conf"
        conf.write_text(f'pcm.ref_in {{ type file; slave.pcm {pulse.slave("ref_in.monitor")}; file "/dev/null"; '
                        f'infile "{raw}"; format "raw" }}\n')
        env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}
        frames = int(seconds * RATE)
        pipeline = " & ".join(
            f"arecord -q -D ref_in -f S16_LE -r {RATE} -c 1 -t raw -s {frames} | "
            f"flac -s -f --force-raw-format --endian=little --sign=signed --channels=1 --bps=16 "
            f"--sample-rate={RATE} -o {work}/ref{n}.flac -" for n in range(lines)) + " & wait"
        return run_paced(["sh", "-c", pipeline], env=env)
    finally:
        pulse.stop()


def marginal(short: float, long: float, cpu_short: float, cpu_long: float, lines: int) -> float:
    return (cpu_long - cpu_short) / ((long - short) / 3600) / lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--short", type=float, default=30.0, help="seconds of the short run (default 30)")
    parser.add_argument("--long", type=float, default=120.0, help="seconds of the long run (default 120)")
    parser.add_argument("--detectors-off", action="store_true", help="also measure with detectors and health off")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callrec-paced-") as tmp:
        work = Path(tmp)
        make_audio(work / "line.wav", args.long + 5)
        print(f"paced: {args.short:g} s and {args.long:g} s runs at wall-clock pace; marginal CPU s per line-hour")
        print(f"{'lines':>5} {'case':<22} {'callrec s/h':>12} {'arecord|flac s/h':>17} {'ratio':>6} "
              f"{'peak RSS MiB':>13}")
        for lines in args.lines:
            ref = [reference_run(work, lines, s) for s in (args.short, args.long)]
            ref_h = marginal(args.short, args.long, ref[0][0], ref[1][0], lines)
            cases = [("idle, default config", False, True), ("in a call, default", True, True)]
            if args.detectors_off:
                cases += [("idle, detectors off", False, False), ("in a call, detectors off", True, False)]
            for name, call, detectors in cases:
                runs = [callrec_run(work, lines, s, call, detectors) for s in (args.short, args.long)]
                per_h = marginal(args.short, args.long, runs[0][0], runs[1][0], lines)
                print(f"{lines:>5} {name:<22} {per_h:>12.1f} {ref_h:>17.1f} {per_h / ref_h:>6.2f} "
                      f"{max(r[1] for r in runs):>13.1f}", flush=True)


if __name__ == "__main__":
    main()
