"""The real-time cost: marginal CPU seconds per line-hour at wall-clock pace, and peak RSS.

    .venv/bin/python bench/bench_paced.py [--lines 1 4] [--short 30] [--long 120] [--detectors-off]
                                          [--via run|simulate]

Unpaced simulation hands the audio over in 1 s batches and hides what a Pi pays: 50 periods a
second per line, around the clock. Here the pipeline runs at wall-clock pace through a private
PulseAudio (its own CPU is not counted: PulseAudio stands in for the sound card), idle (the
line's noise floor) and in a call (speech-like audio), for a short and a long run; the difference
between the two is the marginal cost, so start-up and shut-down cancel, and the slope within the
long run is the steady cost. `--via run` (the default) is `callrec run`'s service with the pins
simulated (paced_run.py), two lines to a stereo PCM as on the appliance; `--via simulate` is
`callrec simulate --realtime`, which also pays for the simulator in every period.

The reference in the same run is `arecord | flac` once per line on the same audio, paced the same
way (alsa-lib's file plugin over the same PulseAudio null sink), twice: with arecord's own periods
(its default buffer, a quarter of it a period: it wakes a few times a second) and with callrec's
period (`audio.period_ms`, 20 ms: 50 wake-ups a second). The second pays the per-period cost
callrec pays, so it is the comparison of like with like; the first is the floor. CPU is read
from /proc for every process of the tree but PulseAudio; RSS is the largest VmHWM of the top
process.
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


STEADY_AFTER_S = 5.0    # start-up (imports, opening the cards) is over by then
STEADY_BEFORE_END_S = 2.0


def run_paced(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(CPU seconds of the tree but PulseAudio, peak RSS MiB of the top process, steady CPU seconds
    per second), polling /proc. The steady rate is the slope of the tree's CPU between
    STEADY_AFTER_S from the start and STEADY_BEFORE_END_S before the end: within one run, so the
    run-to-run noise of start-up and shut-down, which the short/long difference suffers, is out."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last: dict[int, tuple[str, float]] = {}
    samples: list[tuple[float, float]] = []
    peak = 0
    start = time.monotonic()
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            seen = _cpu(pid)
            if seen is not None:
                last[pid] = seen
        samples.append((time.monotonic(), sum(cpu for comm, cpu in last.values() if "pulseaudio" not in comm)))
        peak = max(peak, _hwm_kib(proc.pid))
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.read().decode() if proc.stderr else ''}")
    end = time.monotonic()
    window = [s for s in samples if start + STEADY_AFTER_S <= s[0] <= end - STEADY_BEFORE_END_S]
    rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) > 1 else float("nan")
    return sum(cpu for comm, cpu in last.values() if "pulseaudio" not in comm), peak / 1024, rate


def _lines_config(lines: int, detectors: bool, capture: str, playback: str) -> str:
    """The `[[lines]]` of a bench configuration, two lines to a stereo PCM (`capture`1, `playback`1,
    then 2), with the detectors and tap health off unless `detectors`."""
    return ("" if detectors else "[signals]\nenabled = false\n[health]\nenabled = false\n") + "".join(
        f"[[lines]]\nid = {n}\nhook_gpio = {2 + 2 * n}\nring_gpio = {3 + 2 * n}\n"
        f'capture_pcm = "{capture}{(n + 1) // 2}"\ncapture_channel = {(n - 1) % 2}\n'
        f'playback_pcm = "{playback}{(n + 1) // 2}"\nplayback_channel = {(n - 1) % 2}\n'
        for n in range(1, lines + 1))


def callrec_run(work: Path, lines: int, seconds: float, call: bool,
                detectors: bool) -> tuple[float, float, float]:
    # an on-hook line carries its noise floor, not speech; the run lasts as long as its audio
    audio = _cut(work, "line" if call else "idle", seconds)
    scenario = work / f"s{lines}{call}{seconds}.toml"
    events = f'[{{ at = 0.5, hook = "off" }}, {{ at = {seconds - 0.5}, hook = "on" }}]' if call else "[]"
    scenario.write_text("\n".join(f'[[line]]\nline = {n}\naudio = "{audio}"\nevents = {events}\n'
                                  for n in range(1, lines + 1)))
    config = work / f"config{detectors}.toml"
    config.write_text(_lines_config(lines, detectors, "card", "card"))
    data = work / f"data-{lines}-{call}-{seconds}-{detectors}"
    return run_paced([sys.executable, "-m", "callrec", "--config", str(config), "simulate", str(scenario),
                      "--data", str(data), "--realtime"])


def device_run(work: Path, lines: int, seconds: float, call: bool, detectors: bool,
               period_ms: int = 20) -> tuple[float, float, float]:
    """`callrec run`'s service (paced_run.py): stereo PCMs of two lines each, over the private PulseAudio."""
    import numpy as np
    import soundfile
    from callrec.sim.pulse import PulseServer

    name = "line" if call else "idle"
    raw = work / f"{name}-stereo.raw"
    if not raw.exists():
        samples, _ = soundfile.read(str(work / f"{name}.wav"), dtype="int16")
        raw.write_bytes(np.repeat(samples, 2).astype("<i2").tobytes())   # both channels the same line audio
    cards = (lines + 1) // 2
    tag = f"run{lines}{call}{seconds}{detectors}{period_ms}"
    pulse = PulseServer(work / tag, RATE, [(f"card{k}", 2) for k in range(1, cards + 1)])
    try:
        conf = work / f"{tag}.conf"
        conf.write_text("".join(
            f'pcm.cap{k} {{ type file; slave.pcm {pulse.slave(f"card{k}_in.monitor")}; file "/dev/null"; '
            f'infile "{raw}"; format "raw" }}\n'
            f'pcm.play{k} {{ type file; slave.pcm {pulse.slave(f"card{k}_out")}; file "/dev/null"; format "raw" }}\n'
            for k in range(1, cards + 1)))
        data = work / f"data-{tag}"
        config = work / f"{tag}.toml"
        config.write_text(f'[storage]\ndata_dir = "{data}"\n[audio]\nperiod_ms = {period_ms}\n'
                          + _lines_config(lines, detectors, "cap", "play"))
        env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}
        cmd = [sys.executable, str(Path(__file__).with_name("paced_run.py")), str(config), str(seconds)]
        return run_paced(cmd + (["--call"] if call else []), env=env)
    finally:
        pulse.stop()


def reference_run(work: Path, lines: int, seconds: float, name: str = "line",
                  period_ms: int | None = None) -> tuple[float, float, float]:
    """`arecord | flac` per line on `name`.wav (the same audio callrec gets in that case), with
    arecord's own periods or `period_ms` ones."""
    from callrec.sim.pulse import PulseServer

    raw = work / f"{name}.raw"
    if not raw.exists():
        import soundfile

        samples, _ = soundfile.read(str(work / f"{name}.wav"), dtype="int16")
        raw.write_bytes(samples.astype("<i2").tobytes())
    pulse = PulseServer(work / f"ref{name}{lines}-{seconds}-{period_ms}", RATE, [("ref", 1)])
    try:
        conf = work / f"ref-{name}.conf"
        conf.write_text(f'pcm.ref_in {{ type file; slave.pcm {pulse.slave("ref_in.monitor")}; file "/dev/null"; '
                        f'infile "{raw}"; format "raw" }}\n')
        env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}
        frames = int(seconds * RATE)
        periods = "" if period_ms is None else f"--period-time={period_ms * 1000} "
        pipeline = " & ".join(
            f"arecord -q -D ref_in {periods}-f S16_LE -r {RATE} -c 1 -t raw -s {frames} | "
            f"flac -s -f --force-raw-format --endian=little --sign=signed --channels=1 --bps=16 "
            f"--sample-rate={RATE} -o {work}/ref{n}.flac -" for n in range(lines)) + " & wait"
        return run_paced(["sh", "-c", pipeline], env=env)
    finally:
        pulse.stop()


def _cut(work: Path, name: str, seconds: float) -> Path:
    """`name`.wav cut to `seconds`: a simulation runs as long as its line's audio."""
    import soundfile

    path = work / f"{name}-{seconds:g}.wav"
    if not path.exists():
        samples, _ = soundfile.read(str(work / f"{name}.wav"), dtype="int16")
        soundfile.write(str(path), samples[: int(seconds * RATE)], RATE, subtype="PCM_16")
    return path


def make_idle_audio(path: Path, seconds: float) -> None:
    """An on-hook line: its noise floor, about −70 dBFS, as a tap on a quiet pair delivers."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(5)
    samples = np.rint(rng.standard_normal(int(seconds * RATE)) * 8).astype(np.int16)
    soundfile.write(str(path), samples, RATE, subtype="PCM_16")


def marginal(short: float, long: float, cpu_short: float, cpu_long: float, lines: int) -> float:
    return (cpu_long - cpu_short) / ((long - short) / 3600) / lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--short", type=float, default=30.0, help="seconds of the short run (default 30)")
    parser.add_argument("--long", type=float, default=120.0, help="seconds of the long run (default 120)")
    parser.add_argument("--detectors-off", action="store_true", help="also measure with detectors and health off")
    parser.add_argument("--via", choices=("run", "simulate"), default="run",
                        help="callrec run's service with simulated pins (default), or callrec simulate --realtime")
    parser.add_argument("--period-ms", type=int, default=20,
                        help="callrec's audio.period_ms (its default: 20), and the like-with-like arecord's")
    args = parser.parse_args()
    if args.via == "simulate" and args.period_ms != 20:
        parser.error("--period-ms is for --via run")
    with tempfile.TemporaryDirectory(prefix="callrec-paced-") as tmp:
        work = Path(tmp)
        make_audio(work / "line.wav", args.long + 5)
        make_idle_audio(work / "idle.wav", args.long + 5)
        print(f"paced ({args.via}): {args.short:g} s and {args.long:g} s runs at wall-clock pace; CPU s per line-hour")
        print("steady: the slope within the long run; marginal: long minus short run; "
              f"ratios of steady figures; arecord with {args.period_ms} ms periods and with its own")
        print(f"{'lines':>5} {'case':<26} {'steady':>7} {'marg.':>7} {'RSS MiB':>8} | "
              f"{'ref ' + str(args.period_ms) + 'ms':>8} {'marg.':>6} {'ratio':>6} | {'ref own':>7} {'ratio':>6}")
        for lines in args.lines:
            refs: dict[tuple[str, int | None], tuple[float, float]] = {}
            for audio in ("idle", "line"):   # each case against arecord | flac on the same audio
                for period in (args.period_ms, None):
                    ref = [reference_run(work, lines, s, audio, period) for s in (args.short, args.long)]
                    refs[audio, period] = (ref[1][2] * 3600 / lines,
                                           marginal(args.short, args.long, ref[0][0], ref[1][0], lines))
            cases = [("idle, default config", False, True), ("in a call, default", True, True)]
            if args.detectors_off:
                cases += [("idle, detectors off", False, False), ("in a call, detectors off", True, False)]
            for name, call, detectors in cases:
                runs = [device_run(work, lines, s, call, detectors, args.period_ms) if args.via == "run"
                        else callrec_run(work, lines, s, call, detectors) for s in (args.short, args.long)]
                per_h = marginal(args.short, args.long, runs[0][0], runs[1][0], lines)
                steady = runs[1][2] * 3600 / lines
                audio = "line" if call else "idle"
                like, like_marginal = refs[audio, args.period_ms]
                own, _ = refs[audio, None]
                print(f"{lines:>5} {name:<26} {steady:>7.1f} {per_h:>7.1f} {max(r[1] for r in runs):>8.1f} | "
                      f"{like:>8.1f} {like_marginal:>6.1f} {_ratio(steady, like)} | {own:>7.1f} {_ratio(steady, own)}",
                      flush=True)


def _ratio(value: float, reference: float) -> str:
    """A ratio, or n/a where the reference read no CPU (a run too short for the /proc ticks)."""
    return f"{value / reference:>6.2f}" if reference > 0 else f"{'n/a':>6}"


if __name__ == "__main__":
    main()
