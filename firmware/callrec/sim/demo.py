"""`callrec demo`: two analog lines and an ISDN BRI, four calls, and a readable summary.

Lines 1 and 2 are analog (an inbound call with caller ID, an outbound call with ringback); lines 3
and 4 are the two B-channels of one BRI, driven by a D-channel trace: an inbound call on B1 and,
while it lasts, an outbound call on B2, then a call refused as busy.

Everything a real call goes through runs here too: alsa-lib capture and playback through the `file`
plugin, the simulated hook and ring inputs, the announcement mixed into the line, crash-safe
recording, FLAC, SHA-256, the index. The speech is made with espeak-ng when it is installed, else
the shipped announcements stand in for the callers' voices.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from callrec.config import ASSETS
from callrec.config import model as configmod

RATE = 8000
CONVERSATIONS = {
    1: ["Hello, Sakura Trading, Tanaka speaking.", "Hi, this is Smith. I am calling about my order.",
        "Of course. Could you give me the order number?", "It is four five seven two."],
    2: ["Good morning, this is the office calling back.", "Thank you. Yes, the delivery is on Friday.",
        "Great, see you then. Goodbye."],
}
SCENARIO = """\
# callrec demo (region US): line 1 gets an inbound call with caller ID between two rings; line 2
# dials out: dial tone, the digits, two rings of ringback, then the far end answers.
[[line]]
line = 1
audio = "line1.wav"
events = [
  {{ at = 0.5, ring = "on" }}, {{ at = 2.5, ring = "off" }},
  {{ at = 6.5, ring = "on" }}, {{ at = 7.2, hook = "off" }},
  {{ at = {end1:.1f}, hook = "on" }},
]

[[line]]
line = 2
audio = "line2.wav"
events = [
  {{ at = 1.0, hook = "off" }},
  {{ at = {end2:.1f}, hook = "on" }},
]

# An ISDN BRI: its D-channel (Q.931) gives the calls, each B-channel is a line of its own.
[[line]]
line = 3
audio = "isdn_b1.wav"
dchannel = "bri.pcap"
b_channel = 1
dchannel_start_s = 1.0

[[line]]
line = 4
audio = "isdn_b2.wav"
dchannel = "bri.pcap"
b_channel = 2
dchannel_start_s = 1.0
"""
ISDN_TALK = {3: ["Good afternoon, Sakura Trading.", "Hello, I would like to confirm my booking for Monday.",
                 "Certainly, one moment please."],
             4: ["Hello, this is Sakura Trading returning your call.", "Thanks for calling back."]}
ISDN_SECONDS = 24.0
CALLER = ("2125551234", "SMITH JOHN")
DIALLED = "5550123"


def exchange_signals(line: int) -> tuple[np.ndarray, float]:
    """What the exchange sends on each line before anyone talks, and when the talking may start."""
    from callrec.config import PROFILES
    from callrec.dsp import callerid, gen

    tones = PROFILES["US"].tones
    if line == 1:   # Bell 202 MDMF caller ID in the silence after the first ring
        message = callerid.mdmf_message([(0x01, b"11281230"), (0x02, CALLER[0].encode()),
                                         (0x07, CALLER[1].encode())])
        out = np.zeros(int(8.0 * RATE))
        burst = callerid.signal(message, "bell202")
        out[int(3.1 * RATE): int(3.1 * RATE) + len(burst)] += burst
        return out / 32768.0, 8.0
    out = np.zeros(int(14.0 * RATE))   # dial tone, the number, ringback 5-7 s and 11-13 s
    dial = gen.cadence(tones["dial"].freqs, -15.0, (), 1.5)
    out[int(1.2 * RATE): int(1.2 * RATE) + len(dial)] += dial
    digits = gen.dtmf_sequence(DIALLED, level=-8.0, duration=0.08, gap=0.08)
    out[int(3.0 * RATE): int(3.0 * RATE) + len(digits)] += digits
    ringback = gen.cadence(tones["ringback"].freqs, -15.0, tones["ringback"].cadence, 8.0)
    out[int(5.0 * RATE): int(5.0 * RATE) + len(ringback)] += ringback
    return out / 32768.0, 13.5


def conversation(lines: list[str]) -> list[np.ndarray]:
    """The lines spoken in turn (two voices) with a pause after each, at the line's rate."""
    from callrec.audio import read_mono

    pieces: list[np.ndarray] = []
    voice = shutil.which("espeak-ng")
    with tempfile.TemporaryDirectory() as scratch:
        for number, text in enumerate(lines):
            if voice:
                out = Path(scratch) / f"{number}.wav"
                subprocess.run([voice, "-v", "en-us" if number % 2 == 0 else "en-gb", "-s", "160", "-w", str(out),
                                text], check=True, capture_output=True)
                pieces.append(read_mono(out, RATE) * 0.5)
            else:
                pieces.append(read_mono(ASSETS / "announcement_en.wav", RATE) * 0.5)
            pieces.append(np.zeros(int(0.6 * RATE), dtype=np.float32))
    return pieces


def speech(lines: list[str], path: Path, line: int) -> float:
    """Write a line's audio: the exchange's signals, then the conversation; return its length."""
    signals, talk_at = exchange_signals(line)
    pieces = [signals[: int(talk_at * RATE)].astype(np.float32), *conversation(lines)]
    audio = np.concatenate(pieces)
    audio += np.random.default_rng(7).standard_normal(len(audio)).astype(np.float32) * 0.001  # line hiss
    soundfile.write(str(path), np.clip(audio, -1, 1), RATE, subtype="PCM_16")
    return len(audio) / RATE


def digital_speech(lines: list[str], path: Path, seconds: float) -> None:
    """A B-channel's audio: the conversation from 5 s on (after the answer), no exchange signals
    (on ISDN they are in the D-channel), `seconds` long."""
    pieces = [np.zeros(int(5.0 * RATE), dtype=np.float32), *conversation(lines)]
    audio = np.concatenate(pieces)[: int(seconds * RATE)]
    audio = np.concatenate([audio, np.zeros(int(seconds * RATE) - len(audio), dtype=np.float32)])
    audio += np.random.default_rng(11).standard_normal(len(audio)).astype(np.float32) * 0.0005
    soundfile.write(str(path), np.clip(audio, -1, 1), RATE, subtype="PCM_16")


def run_demo(args: argparse.Namespace) -> int:
    from callrec.sim import load_scenario
    from callrec.sim.run import run_simulation

    data = args.data or Path(tempfile.mkdtemp(prefix="callrec-demo-"))
    work = data / "demo-scenario"
    work.mkdir(parents=True, exist_ok=True)
    # The announcement plays over the first seconds of each answer; the parties talk through it.
    end1 = speech(CONVERSATIONS[1], work / "line1.wav", 1)
    end2 = speech(CONVERSATIONS[2], work / "line2.wav", 2)
    from callrec.isdn import two_calls_on_a_bri

    two_calls_on_a_bri(inbound_talk_s=12.0, outbound_talk_s=8.0).write(str(work / "bri.pcap"))
    for line, talk in ISDN_TALK.items():
        digital_speech(talk, work / f"isdn_b{line - 2}.wav", ISDN_SECONDS)
    (work / "scenario.toml").write_text(SCENARIO.format(end1=end1 - 0.5, end2=end2 - 0.5))
    config = configmod.load(args.config).with_data_dir(data)
    if args.config is None:
        config = configmod.parse({"region": "US"}).with_data_dir(data)  # English announcement for the demo
    print(f"callrec demo: two analog lines and an ISDN BRI, scenario in {work / 'scenario.toml'}", file=sys.stderr)
    before = _call_ids(data)
    code = run_simulation(config, load_scenario(work / "scenario.toml"), realtime=args.realtime,
                          explicit_config=args.config is not None, print_events=args.events)
    if code != 0:
        return code
    print_summary(data, [c for c in _call_ids(data) if c not in before])
    if getattr(args, "viewer", False):
        return serve_viewer(data, config, getattr(args, "listen", "127.0.0.1:8080"))
    return 0


def serve_viewer(data: Path, config: Any, listen: str) -> int:
    """The demo's last step with `--viewer`: the office's viewer over the demo's recordings, with
    a one-time officer login printed (a fresh password each run)."""
    import secrets

    try:
        from callrec.viewer import Users, make_viewer, serve
    except ImportError:
        print("callrec demo: --viewer needs the office extra: pip install 'callrec[office]'", file=sys.stderr)
        return 1
    users_file = data / "viewer-users.json"
    password = secrets.token_urlsafe(9)
    Users(users_file).add("demo", "officer", password)
    viewer_args = argparse.Namespace(data=data, archive=None, identity=None, users=users_file, annotations=None,
                                     device=None, tls_cert=None)
    viewer = make_viewer(viewer_args, config)
    print(f"\nThe office's viewer: http://{listen}/  log in as  demo  with the one-time password  {password}\n"
          "(Ctrl-C ends it)", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):   # Ctrl-C is how the demo's viewer ends
        serve(viewer, listen)
    return 0


def _call_ids(data: Path) -> list[str]:
    from callrec.store import CallIndex

    path = data / "index.sqlite"
    if not path.exists():
        return []
    with CallIndex(path) as index:
        return [r["call_id"] for r in index.latest(100)]


def print_summary(data: Path, call_ids: list[str]) -> None:
    from callrec.store import CallIndex

    with CallIndex(data / "index.sqlite") as index:
        records = sorted((index.get(c) for c in call_ids), key=lambda r: (r or {}).get("line", 0))
    print(f"\n{len(records)} call(s) recorded in {data}\n")
    for record in records:
        if record is None:
            continue
        print(format_call(record, data))
    print(f"Inspect them with:  {invoked_as()} calls list --data {data}")


def format_call(r: dict[str, Any], data: Path) -> str:
    ann = r.get("announcement") or {}
    rec = r.get("recording") or {}
    rings = f", {r['rings']} ring(s)" if r.get("direction") == "inbound" else ""
    lines = [
        f"Line {r['line']}: {r.get('direction')} call{rings}, {r.get('duration_s', 0):.1f} s, status {r['status']}",
        f"  call id       {r['call_id']}",
        f"  started       {r.get('started_at')}   answered {r.get('answered_at')}",
    ]
    if r.get("caller_number") or r.get("caller_name"):
        lines.append(f"  caller        {r.get('caller_number')} {r.get('caller_name') or ''}".rstrip())
    isdn = r.get("isdn") or {}
    if isdn:
        cause = isdn.get("cause") or {}
        lines.append(f"  isdn          B{isdn.get('b_channel')}, call reference {isdn.get('call_ref')}, ended with "
                     f"cause {cause.get('value')} ({cause.get('text')})")
    if r.get("dialed_number"):
        answered = r.get("far_end_answered_s")
        lines.append(f"  dialled       {r['dialed_number']}" +
                     (f", far end answered {answered} s after the off-hook" if answered is not None else ""))
    if ann:
        lines.append(f"  announcement  {Path(ann.get('file', '?')).name} sha256 {str(ann.get('sha256'))[:16]}…, "
                     f"played {ann.get('started_s')} s to {ann.get('ended_s')} s after the answer")
    else:
        lines.append("  announcement  NOT PLAYED")
    if rec:
        lines.append(f"  recording     {data / rec['path']}")
        lines.append(f"                {rec['format']}, {rec['bytes']} bytes, {rec['sample_rate']} Hz, "
                     f"sha256 {rec['sha256']}")
    if r.get("errors"):
        lines.append(f"  notes         {json.dumps(r['errors'])}")
    return "\n".join(lines) + "\n"


def invoked_as() -> str:
    """The command as this process was started, so the hint works as printed (after the README's
    set-up `callrec` is `.venv/bin/callrec`, not on the PATH)."""
    program = sys.argv[0] if sys.argv else ""
    if program.endswith("__main__.py") or not program:
        return f"{sys.executable} -m callrec"
    return program
