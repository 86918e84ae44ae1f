"""The booted appliance, measured through the real drivers, next to `arecord | flac` in the same VM.

    sudo .venv/bin/python bench/bench_appliance.py [--image PATH] [--idle-s 120] [--call-s 120]

Builds the VM image (`image-build/build.sh --vm`, base root cached) unless --image is given, boots
it under QEMU (TCG) the way tests/appliance/ does, and prints:
- boot to READY=1: callrec.service's ActiveEnterTimestampMonotonic (the guest's clock since the
  kernel started), and the service's own part (its start to READY=1: claim the pins, open the card,
  first audio period), beside `arecord | flac` from exec to its first period on disk;
- off-hook to the first announcement sample on the line (gpio-sim edge to the sample the line
  simulator reads back from snd-aloop), over several calls;
- CPU seconds per line-hour of callrec.service idle and in a call, and its RSS, beside the
  reference: `arecord -D hw:Loopback,1,2 | flac` capturing the same kind of line for the same time.
Absolute times under TCG say nothing about a Pi: the ratios are the figures to read.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "appliance"))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402
from mqtt_support import Broker  # noqa: E402
from vm import Appliance  # noqa: E402

HOOK, RING = 17, 27
RATE = 8000


def build_image(work: Path) -> Path:
    out = work / "image"
    env = {**os.environ, "CALLREC_VM_OUT": str(out), "WORK": str(work / "build")}
    subprocess.run([str(ROOT / "image-build" / "build.sh"), "--vm"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return out / "callrec-vm.img"


def cpu_s(box: Appliance, pid: str) -> float:
    """utime + stime of a process and its reaped children, in seconds (guest's /proc)."""
    fields = box.sh(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
    ticks = int(box.sh("getconf CLK_TCK"))
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def main_pid(box: Appliance) -> str:
    return box.sh("systemctl show -p MainPID --value callrec").strip()


def rss_mb(box: Appliance, pid: str) -> float:
    for line in box.sh(f"cat /proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def heard_after(box: Appliance, t: float) -> float | None:
    for line in box.sh("cat /run/callrec-vm-line/events.log", check=False).splitlines():
        parts = line.split()
        if parts and parts[0] == "heard-start" and float(parts[-1]) > t:
            return float(parts[-1])
    return None


def wav(seconds: float) -> bytes:
    rng = np.random.default_rng(5)
    buffer = io.BytesIO()
    soundfile.write(buffer, (rng.standard_normal(int(seconds * RATE)) * 2000).astype(np.int16), RATE,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, help="a built callrec-vm.img (default: build one)")
    parser.add_argument("--idle-s", type=float, default=120.0)
    parser.add_argument("--call-s", type=float, default=120.0)
    parser.add_argument("--calls", type=int, default=5, help="calls timed for the announcement latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callrec-bench-vm-") as tmp:
        work = Path(tmp)
        image = args.image or build_image(work)
        card = work / "card.img"
        shutil.copy(image, card)
        with open(card, "r+b") as f:
            f.truncate(card.stat().st_size + 512 * 1024 * 1024)
        broker = Broker(work / "broker")
        broker.start()
        box = Appliance(card, work, broker.port)
        try:
            box.boot()
            box.wait_hand()
            box.wait_off(600)   # first boot reboots
            box.boot()
            box.wait_hand()
            box.wait_active("callrec")
            shown = dict(line.split("=", 1) for line in box.sh(
                "systemctl show callrec -p ActiveEnterTimestampMonotonic -p InactiveExitTimestampMonotonic").split())
            ready = int(shown["ActiveEnterTimestampMonotonic"]) / 1e6
            start_to_ready = ready - int(shown["InactiveExitTimestampMonotonic"]) / 1e6
            # The reference: a plain recorder from exec to its first period on disk, same card kind.
            box.sh("(aplay -q -D plughw:CARD=Loopback,DEV=0,SUBDEV=2 -f S16_LE -r 8000 -c 1 /dev/urandom "
                   ">/dev/null 2>&1 &)")
            stamps = box.sh("s=$(date +%s.%N); arecord -q -D hw:CARD=Loopback,DEV=1,SUBDEV=2 -f S16_LE -r 8000 "
                            "-c 1 -t raw -s 160 | flac -s --force-raw-format --endian=little --sign=signed "
                            "--channels=1 --bps=16 --sample-rate=8000 -f -o /run/first.flac - ; "
                            "echo $s $(date +%s.%N); pkill -x aplay; true").split()
            first_s = float(stamps[1]) - float(stamps[0])
            print(f"boot to READY=1: {ready:.1f} s after the kernel started; callrec.service start to READY=1 "
                  f"{start_to_ready:.1f} s, arecord | flac exec to its first period on disk {first_s:.2f} s "
                  f"(ratio {start_to_ready / first_s:.0f})")

            latencies = []
            for _ in range(args.calls):
                box.pull(RING, "pull-down")   # one ring: an inbound call, announced at the off-hook
                time.sleep(1.0)
                box.pull(RING, "pull-up")
                time.sleep(2.0)
                off = box.pull(HOOK, "pull-down")
                time.sleep(3)
                heard = heard_after(box, off)
                box.pull(HOOK, "pull-up")
                time.sleep(8)
                if heard is not None:
                    latencies.append(heard - off)
            if latencies:
                print(f"off-hook to first announcement sample: median {statistics.median(latencies) * 1000:.0f} ms, "
                      f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} calls (period 20 ms, debounce 30 ms)")

            pid = main_pid(box)
            c0 = cpu_s(box, pid)
            time.sleep(args.idle_s)
            idle = (cpu_s(box, pid) - c0) / args.idle_s * 3600
            box.pull(RING, "pull-down")
            time.sleep(1.0)
            box.pull(RING, "pull-up")
            time.sleep(2.0)
            box.pull(HOOK, "pull-down")
            box.put("/run/callrec-vm-line/feed/bench.wav", wav(args.call_s))
            c0 = cpu_s(box, pid)
            time.sleep(args.call_s)
            call = (cpu_s(box, pid) - c0) / args.call_s * 3600
            rss = rss_mb(box, pid)
            box.pull(HOOK, "pull-up")
            print(f"callrec.service CPU per line-hour: idle {idle:.0f} s, in a call {call:.0f} s; RSS {rss:.1f} MB",
                  flush=True)
            time.sleep(5)

            # The reference: a plain recorder of one line on the same kind of device, same length.
            box.sh("rm -f /data/ref.flac; (aplay -q -D plughw:CARD=Loopback,DEV=0,SUBDEV=2 -f S16_LE -r 8000 -c 1 "
                   "/dev/urandom >/dev/null 2>&1 &) ; (arecord -q -D hw:CARD=Loopback,DEV=1,SUBDEV=2 -f S16_LE "
                   "-r 8000 -c 1 -t raw | flac -s --force-raw-format --endian=little --sign=signed --channels=1 "
                   "--bps=16 --sample-rate=8000 -o /data/ref.flac - ) >/dev/null 2>&1 </dev/null &")
            time.sleep(2)
            pids = box.sh("grep -lx -e arecord -e flac /proc/[0-9]*/comm | cut -d/ -f3").split()   # no procps
            r0 = sum(cpu_s(box, p) for p in pids)
            time.sleep(args.call_s)
            reference = (sum(cpu_s(box, p) for p in pids) - r0) / args.call_s * 3600
            ref_rss = sum(rss_mb(box, p) for p in pids)
            box.sh("kill $(grep -lx -e arecord -e aplay /proc/[0-9]*/comm | cut -d/ -f3) 2>/dev/null; true")
            print(f"CPU per line-hour: idle {idle:.0f} s, in a call {call:.0f} s; arecord | flac {reference:.0f} s "
                  f"(ratios {idle / reference:.2f} idle, {call / reference:.2f} in a call)")
            print(f"RSS: callrec.service {rss:.1f} MB; arecord + flac {ref_rss:.1f} MB")
            print(json.dumps({"boot_to_ready_s": ready, "start_to_ready_s": start_to_ready,
                              "reference_first_period_s": first_s, "latency_s": latencies,
                              "cpu_line_hour_idle_s": idle, "cpu_line_hour_call_s": call,
                              "cpu_line_hour_reference_s": reference, "rss_mb": rss, "reference_rss_mb": ref_rss}))
        finally:
            box.shutdown()
            broker.stop()


if __name__ == "__main__":
    main()
