"""A recorded, encrypted data directory and viewer accounts for the viewer's tests."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from conftest import callrec, noise_wav, scenario_toml

PASSWORDS = {"lena": "listen-pass-1", "sam": "super-pass-2", "olga": "officer-pass-3"}
ROLES = {"lena": "listener", "sam": "supervisor", "olga": "officer"}
CALLER = "0312345678"


@dataclass
class Recorded:
    data: Path
    key: Path
    users: Path
    config: Path


def record_calls(work: Path) -> Recorded:
    work.mkdir(parents=True, exist_ok=True)
    key = work / "office.key"
    recipient = callrec("keygen", "--out", str(key)).stdout.strip()
    config = work / "c.toml"
    config.write_text(f'region = "US"\n[privacy]\nrecipient = "{recipient}"\n')
    for line in (1, 2):
        noise_wav(work / f"line{line}.wav", 30, seed=line, level=0.001 if line == 1 else 0.05)
    import numpy as np
    import soundfile
    from callrec.dsp import callerid

    audio, _ = soundfile.read(str(work / "line1.wav"), dtype="float64")
    burst = callerid.signal(callerid.sdmf_message("12021200", CALLER), "bell202") / 32768.0
    audio[int(2.2 * 8000):int(2.2 * 8000) + len(burst)] += burst
    soundfile.write(str(work / "line1.wav"), np.clip(audio, -1, 1), 8000, subtype="PCM_16")
    (work / "s.toml").write_text(scenario_toml([
        {"line": 1, "audio": "line1.wav", "events": [(0.5, "ring", "on"), (2.0, "ring", "off"), (4.0, "ring", "on"),
                                                     (4.5, "hook", "off"), (16.0, "hook", "on")]},
        {"line": 2, "audio": "line2.wav", "events": [(1.0, "hook", "off"), (9.0, "hook", "on"),
                                                     (12.0, "hook", "off"), (20.0, "hook", "on")]}]))
    data = work / "data"
    out = callrec("simulate", str(work / "s.toml"), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    users = work / "users.json"
    from callrec.viewer.users import Users

    for name, role in ROLES.items():
        Users(users).add(name, role, PASSWORDS[name])
    return Recorded(data, key, users, config)


def viewer_for(recorded: Recorded, **sessions: object):  # noqa: ANN201 - a Viewer
    from callrec.config import load
    from callrec.viewer.commands import make_viewer
    from callrec.viewer.sessions import Sessions

    args = argparse.Namespace(data=recorded.data, archive=None, identity=recorded.key, users=recorded.users,
                              annotations=None, device=None, tls_cert=None)
    viewer = make_viewer(args, load(recorded.config))
    if sessions:
        viewer.sessions = Sessions(**sessions)
    return viewer
