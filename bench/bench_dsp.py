"""Benchmark of the line detectors: CPU per hour of audio and the spandsp battery, next to multimon-ng.

    .venv/bin/python bench/bench_dsp.py [--quick]

Prints (markdown) the CPU seconds per hour of audio for each detector and for all of them on one
line, fed in 20 ms periods as the capture thread does, with multimon-ng -a DTMF measured on the same
audio in the same run; then the battery (hits and misses per test) for our receiver and for
multimon-ng on the same generated signals, linear and after µ-law; then talk-off on the corpus.
Figures are for this machine; a Raspberry Pi is several times slower per core, which the 1 % target
leaves room for. Needs multimon-ng, the Asterisk sound packages and espeak-ng (see docs/dsp.md).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import soxr
from callrec.dsp import LineDsp, battery
from callrec.dsp.callerid import CallerIdDetector
from callrec.dsp.dtmf import ATT, DtmfDetector
from callrec.dsp.tones import ToneDetector

PERIOD = 160


def ours(x: np.ndarray) -> str:
    det = DtmfDetector(ATT)
    out = []
    for i in range(0, len(x), PERIOD):
        out += det.feed(x[i:i + PERIOD], i / 8000)
    return "".join(d.fields["digit"] for d in out + det.flush())


def multimon(x: np.ndarray) -> str:
    """multimon-ng's DTMF decoder on the same samples (resampled to its 22,050 Hz)."""
    y = np.clip(np.rint(soxr.resample(x.astype(np.float64), 8000, 22050)), -32768, 32767).astype(np.int16)
    y = np.concatenate([y, np.zeros(2205, dtype=np.int16)])
    res = subprocess.run(["multimon-ng", "-q", "-a", "DTMF", "-t", "raw", "-"], input=y.tobytes(),
                         capture_output=True, check=True)
    return "".join(line.split(":", 1)[1].strip() for line in res.stdout.decode().splitlines()
                   if line.startswith("DTMF:"))


def corpus_audio() -> np.ndarray:
    parts = []
    for path in battery.talkoff_files():
        x, fs = sf.read(path, dtype="int16", always_2d=True)
        parts.append(x[:, 0])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def cpu_table(audio: np.ndarray) -> list[str]:
    hours = len(audio) / 8000 / 3600
    rows = ["| Detector (one line, 20 ms periods) | CPU s per hour of audio | % of one core |", "|---|---|---|"]

    def measure(name: str, make, x: np.ndarray = audio) -> None:
        det = make()
        t = time.process_time()
        for i in range(0, len(x), PERIOD):
            det.feed(x[i:i + PERIOD], i / 8000)
        det.flush()
        s = (time.process_time() - t) / (len(x) / 8000 / 3600)
        rows.append(f"| {name} | {s:.1f} | {100 * s / 3600:.2f} % |")

    measure("DTMF alone, fed 20 ms at a time", DtmfDetector)
    measure("caller ID (FSK) alone, fed 20 ms at a time", CallerIdDetector)
    measure("call-progress tones (US plan) alone, fed 20 ms at a time", lambda: ToneDetector("US"))
    for region in ("JP", "US", "EU"):
        measure(f"**all detectors, {region}** (LineDsp, fed 20 ms, runs per 60 ms)", lambda r=region: LineDsp(r))
    measure("all detectors, US, unbatched (LineDsp batch=160)", lambda: LineDsp("US", batch=160))
    # An idle line most of the day: its noise floor (here −70 dBm0), where the quiet shortcuts apply.
    quiet = np.clip(np.rint(np.random.default_rng(7).standard_normal(len(audio) // 4) * 8), -32768, 32767)
    quiet = quiet.astype(np.int16)
    measure("all detectors, US, **idle line** (noise floor)", lambda: LineDsp("US"), quiet)
    measure("all detectors, US, idle line, quiet shortcuts off (gate=False)", lambda: LineDsp("US", gate=False),
            quiet)
    if shutil.which("multimon-ng"):
        y = np.clip(np.rint(soxr.resample(audio.astype(np.float64), 8000, 22050)), -32768, 32767)
        raw = y.astype(np.int16).tobytes()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["multimon-ng", "-q", "-a", "DTMF", "-t", "raw", "-"], input=raw, capture_output=True,
                       check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / hours
        rows.append(f"| multimon-ng -a DTMF (C, input pre-resampled to 22,050 Hz) | {s:.1f} | "
                    f"{100 * s / 3600:.2f} % |")
    rows.append(f"\nAudio: {len(audio) / 8000 / 60:.1f} min (Asterisk prompts + music on hold).")
    return rows


def battery_table(laws: list[str | None], snr_bursts: int) -> list[str]:
    decoders = {"callrec": ours}
    if shutil.which("multimon-ng"):
        decoders["multimon-ng"] = multimon
    rows = ["| Test | Law | Criterion | " + " | ".join(f"{n} figure | {n} hits/misses | {n} pass"
                                                  for n in decoders) + " |",
            "|---|---|---|" + "---|---|---|" * len(decoders)]
    results = {}
    for name, dec in decoders.items():
        for law in laws:
            t = time.time()
            results[name, law] = battery.run_all(dec, law, snr_bursts=snr_bursts)
            print(f"  battery {name} {law or 'linear'}: {time.time() - t:.0f} s", file=sys.stderr)
    for law in laws:
        first = results["callrec", law]
        for i, r in enumerate(first):
            cells = []
            for name in decoders:
                o = results[name, law][i]
                cells.append(f"{o.figure:g} {o.unit} | {o.hits}/{o.misses} | {'pass' if o.passed else '**FAIL**'}")
            rows.append(f"| {r.name} | {law or 'linear'} | {r.criterion} | " + " | ".join(cells) + " |")
    return rows


def talkoff_table() -> list[str]:
    decoders = {"callrec": ours}
    if shutil.which("multimon-ng"):
        decoders["multimon-ng"] = multimon
    rows = ["| Corpus | Law, level | Minutes | " + " | ".join(f"{n} false hits" for n in decoders) + " |",
            "|---|---|---|" + "---|" * len(decoders)]
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("Asterisk prompts + music on hold", battery.talkoff_files())]
        if shutil.which("espeak-ng"):
            sets.append(("espeak-ng en-us, en, ja (27 voices/speeds)", battery.espeak_corpus(tmp)))
        for label, files in sets:
            if not files:
                continue
            for law, level in ((None, None), ("ulaw", -5.0), ("ulaw", -20.0)):
                res = [battery.talk_off(dec, law, files, level) for dec in decoders.values()]
                desc = f"{law or 'linear'}, {'as recorded' if level is None else f'{level:g} dBm0'}"
                rows.append(f"| {label} | {desc} | {res[0].extra['minutes']:.1f} | "
                            + " | ".join(str(r.misses) for r in res) + " |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 S/N bursts per level, linear only")
    args = parser.parse_args()
    audio = corpus_audio()
    print("## CPU\n")
    print("\n".join(cpu_table(audio)) if len(audio) else "(corpus not installed)")
    print("\n## Battery\n")
    laws = [None] if args.quick else [None, "ulaw"]
    print("\n".join(battery_table(laws, 100 if args.quick else 1000)))
    print("\n## Talk-off\n")
    print("\n".join(talkoff_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
