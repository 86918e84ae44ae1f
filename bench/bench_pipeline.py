"""CPU seconds and peak RSS per hour of line audio for the whole recording pipeline.

    .venv/bin/python bench/bench_pipeline.py [--minutes 60] [--lines 1 4]

For each line count, one call spans the whole audio on every line, and `callrec simulate` runs
it unpaced, two lines to a stereo card as on the appliance: real alsa-lib capture through the
`file` plugin, pre-roll, the core, the part writer with its fsyncs, FLAC finalization, SHA-256,
the index. The reference, measured in the same run on the
same audio through the same ALSA configuration, is `arecord | flac` once per line. Figures are
per hour of line audio (line-hours), from the kernel's rusage of each process tree (wait4).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

RATE = 8000


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids += _tree(int(child))
    return pids


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(cpu seconds, peak RSS MiB, wall seconds) of a command and its children.

    CPU from wait4. Peak RSS by polling each process's VmHWM: ru_maxrss would count the pages the
    forked child shared with this (large) bench process before exec. The sum over the tree is
    taken, since a pipeline's processes run at the same time.
    """
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            peaks[pid] = max(peaks.get(pid, 0), _hwm_kib(pid))
        time.sleep(0.02)
    status = proc.returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - start
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status}): {proc.stderr.read().decode() if proc.stderr else ''}")
    cpu = usage.ru_utime + usage.ru_stime - _CPU_SEEN[0]
    _CPU_SEEN[0] = usage.ru_utime + usage.ru_stime
    peak = sum(kib for pid, kib in peaks.items() if pid != proc.pid or len(peaks) == 1)
    return cpu, peak / 1024, wall


_CPU_SEEN = [0.0]


def make_audio(path: Path, seconds: float) -> None:
    """Speech-like audio: noise shaped by a slow envelope, so FLAC works as on a real line."""
    rng = np.random.default_rng(3)
    n = int(seconds * RATE)
    envelope = np.repeat(rng.uniform(0.02, 0.3, n // 4000 + 1), 4000)[:n]
    samples = (rng.standard_normal(n) * envelope * 0.3 * 32767).clip(-32768, 32767).astype(np.int16)
    soundfile.write(str(path), samples, RATE, subtype="PCM_16")


def bench(lines: int, seconds: float, work: Path, audio: Path) -> dict[str, float]:
    scenario = work / f"scenario{lines}.toml"
    scenario.write_text("\n".join(
        f'[[line]]\nline = {n}\naudio = "{audio}"\nevents = [{{ at = 0.5, hook = "off" }}, '
        f'{{ at = {seconds - 0.5}, hook = "on" }}]\n' for n in range(1, lines + 1)))
    config = work / "config.toml"
    # the recording path alone: no announcement, no detectors
    config.write_text("[announcement]\nenabled = false\n[signals]\nenabled = false\n" + "".join(
        f"[[lines]]\nid = {n}\nhook_gpio = {2 + 2 * n}\nring_gpio = {3 + 2 * n}\nled_gpio = {20 + n}\n"
        # as on the appliance (hw/pinmap.toml): two lines per stereo USB card, left and right
        f'capture_pcm = "card{(n + 1) // 2}"\ncapture_channel = {(n - 1) % 2}\n'
        f'playback_pcm = "card{(n + 1) // 2}"\nplayback_channel = {(n - 1) % 2}\n'
        for n in range(1, lines + 1)))
    data = work / f"data{lines}"
    cpu, rss, wall = run_measured([sys.executable, "-m", "callrec", "simulate", str(scenario), "--data", str(data),
                                   "--config", str(config)])
    # reference: arecord | flac per line, reading the same raw audio through the same plugin type
    raw = work / "line.raw"
    if not raw.exists():
        samples, _ = soundfile.read(str(audio), dtype="int16")
        raw.write_bytes(np.concatenate([samples, np.zeros(RATE, np.int16)]).astype("<i2").tobytes())
    conf = work / "ref.conf"
    conf.write_text(f'pcm.ref_in {{ type file; slave.pcm "null"; file "/dev/null"; infile "{raw}"; format "raw" }}\n')
    env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}
    frames = int(seconds * RATE)
    pipeline = " & ".join(
        f"arecord -q -D ref_in -f S16_LE -r {RATE} -c 1 -t raw -s {frames} | "
        f"flac -s -f --force-raw-format --endian=little --sign=signed --channels=1 --bps=16 "
        f"--sample-rate={RATE} -o {work}/ref{n}.flac -" for n in range(lines)) + " & wait"
    ref_cpu, ref_rss, ref_wall = run_measured(["sh", "-c", pipeline], env=env)
    hours = lines * seconds / 3600
    startup = work / "startup.toml"  # the same command on 3 s of audio: start-up and shut-down alone
    startup.write_text("\n".join(f'[[line]]\nline = {n}\naudio = "{audio}"\nevents = []\n'
                                 for n in range(1, lines + 1)).replace(str(audio), str(work / "short.wav")))
    if not (work / "short.wav").exists():
        make_audio(work / "short.wav", 1.0)
    base_cpu, _, _ = run_measured([sys.executable, "-m", "callrec", "simulate", str(startup), "--data",
                                   str(work / f"startup{lines}"), "--config", str(config)])
    return {"cpu_per_hour": cpu / hours, "steady_per_hour": (cpu - base_cpu) / hours, "startup_cpu": base_cpu,
            "rss_mib": rss, "wall": wall,
            "ref_cpu_per_hour": ref_cpu / hours, "ref_rss_mib": ref_rss, "ref_wall": ref_wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="line audio per line (default one hour)")
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="callrec-bench-") as tmp:
        work = Path(tmp)
        audio = work / "line.wav"
        make_audio(audio, seconds)
        print(f"pipeline: {args.minutes:g} min of 8 kHz line audio per line; figures per line-hour")
        print(f"{'lines':>5} {'callrec CPU s/h':>16} {'w/o start-up':>13} {'arecord|flac CPU s/h':>21} "
              f"{'ratio':>6} {'ratio w/o start-up':>19} {'callrec RSS MiB':>16} {'ref RSS MiB':>12} {'wall s':>7}")
        for lines in args.lines:
            r = bench(lines, seconds, work, audio)
            print(f"{lines:>5} {r['cpu_per_hour']:>16.2f} {r['steady_per_hour']:>13.2f} "
                  f"{r['ref_cpu_per_hour']:>21.2f} {r['cpu_per_hour'] / r['ref_cpu_per_hour']:>6.2f} "
                  f"{r['steady_per_hour'] / r['ref_cpu_per_hour']:>19.2f} {r['rss_mib']:>16.1f} "
                  f"{r['ref_rss_mib']:>12.1f} {r['wall']:>7.1f}")
            print(f"      (start-up and shut-down of callrec itself: {r['startup_cpu']:.2f} CPU s)")


if __name__ == "__main__":
    main()
