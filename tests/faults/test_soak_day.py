"""A day of an office's calls on four lines (1,000+ calls): memory, files and threads stay flat.

Unpaced (the simulated day takes minutes), four lines on two stereo cards as on the appliance.
The process is sampled from outside through /proc while it runs. CALLREC_SOAK=1 only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import callrec, noise_wav, scenario_toml
from fault_support import soak

CALLS_PER_LINE = 260
CALL_S, GAP_S = 8.0, 4.0
FOUR_LINES = """
[[lines]]
id = 1
hook_gpio = 17
ring_gpio = 27
capture_channel = 0
playback_channel = 0
[[lines]]
id = 2
hook_gpio = 23
ring_gpio = 24
capture_channel = 1
playback_channel = 1
[[lines]]
id = 3
hook_gpio = 5
ring_gpio = 6
capture_pcm = "plughw:CARD=Device_1,DEV=0"
playback_pcm = "plughw:CARD=Device_1,DEV=0"
capture_channel = 0
playback_channel = 0
[[lines]]
id = 4
hook_gpio = 12
ring_gpio = 13
capture_pcm = "plughw:CARD=Device_1,DEV=0"
playback_pcm = "plughw:CARD=Device_1,DEV=0"
capture_channel = 1
playback_channel = 1
"""


def _sample(pid: int) -> tuple[float, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


@soak
def test_a_day_on_four_lines_keeps_memory_files_and_threads_flat(tmp_path):
    lines = []
    seconds = 2.0 + CALLS_PER_LINE * (CALL_S + GAP_S) + 3.0
    for line in (1, 2, 3, 4):
        noise_wav(tmp_path / f"line{line}.wav", seconds, seed=line, level=0.05)
        events = []
        for n in range(CALLS_PER_LINE):
            t = 1.0 + line * 0.37 + n * (CALL_S + GAP_S)
            if n % 2:
                events += [(t, "ring", "on"), (t + 1.0, "ring", "off"), (t + 1.5, "hook", "off")]
            else:
                events += [(t + 1.5, "hook", "off")]
            events += [(t + 1.5 + CALL_S - 2.0, "hook", "on")]
        lines.append({"line": line, "audio": f"line{line}.wav", "events": events})
    (tmp_path / "s.toml").write_text(scenario_toml(lines))
    (tmp_path / "c.toml").write_text(FOUR_LINES)
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(tmp_path / "s.toml"), "--data",
                             str(tmp_path / "data"), "--config", str(tmp_path / "c.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float, int, int]] = []
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)   # type: ignore[arg-type]
    reader.start()
    started = time.monotonic()
    while proc.poll() is None:
        try:
            samples.append((time.monotonic() - started, *_sample(proc.pid)))
        except (OSError, KeyError, ValueError):
            break
        time.sleep(0.5)
    proc.wait()
    reader.join(10)
    assert proc.returncode == 0, proc.stderr.read()[-2000:] if proc.stderr else ""
    ended = [json.loads(line) for line in out if '"call.ended"' in line]
    assert len(ended) == 4 * CALLS_PER_LINE and all(e["status"] == "complete" for e in ended)
    calls = callrec("calls", "list", "--limit", "5000", "--data", str(tmp_path / "data"))
    assert calls.stdout.count("complete") == 4 * CALLS_PER_LINE
    quarter = max(1, len(samples) // 4)
    first, last = samples[quarter:2 * quarter], samples[-quarter:]   # past start-up
    rss_first, rss_last = max(s[1] for s in first), max(s[1] for s in last)
    fds_first, fds_last = max(s[2] for s in first), max(s[2] for s in last)
    threads_first, threads_last = max(s[3] for s in first), max(s[3] for s in last)
    report = (f"{len(ended)} calls in {samples[-1][0]:.0f} s: RSS {rss_first:.1f} -> {rss_last:.1f} MB, "
              f"fds {fds_first} -> {fds_last}, threads {threads_first} -> {threads_last}")
    print(report, file=sys.stderr)
    (tmp_path / "figures.txt").write_text(report + "\n")
    assert rss_last <= rss_first * 1.10 + 4.0, report
    assert fds_last <= fds_first + 2, report
    assert threads_last <= threads_first + 1, report
