"""Shared fixtures: line audio, scenarios, and running `callrec` as a real subprocess.

The service under test always runs as its own process: alsa-lib reads its configuration once per
process, and a kill -9 must hit a real process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

RATE = 8000


def noise_wav(path: Path, seconds: float, rate: int = RATE, seed: int = 1, level: float = 0.1) -> np.ndarray:
    """Deterministic band-limited noise as 16-bit mono WAV; returns the int16 samples written."""
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(int(seconds * rate)) * level * 32767).clip(-32768, 32767).astype(np.int16)
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return samples


def scenario_toml(lines: list[dict[str, Any]]) -> str:
    out = []
    for line in lines:
        events = ", ".join(f'{{ at = {float(e[0])!r}, {e[1]} = "{e[2]}" }}' for e in line["events"])
        out.append(f'[[line]]\nline = {line["line"]}\naudio = "{line["audio"]}"\nevents = [{events}]\n')
    return "\n".join(out)


ONE_LINE_ON_FILE_PCMS = ('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\nled_gpio = 22\n'
                         'capture_pcm = "tin"\nplayback_pcm = "tout"\n')


def file_pcms(tmp_path: Path, seconds: float = 600) -> dict[str, str]:
    """PCMs `tin` (silence from a raw file) and `tout` (into a WAV file) through alsa-lib's file
    plugin, for `callrec run` without a sound card: the environment that makes alsa-lib see them.
    Line 1 of ONE_LINE_ON_FILE_PCMS uses them."""
    infile = tmp_path / "in.raw"
    infile.write_bytes(np.zeros(int(RATE * seconds), dtype="<i2").tobytes())
    conf = tmp_path / "asound.conf"
    conf.write_text(f'pcm.tin {{ type file; slave.pcm "null"; file "/dev/null"; infile "{infile}"; format "raw" }}\n'
                    f'pcm.tout {{ type file; slave.pcm "null"; file "{tmp_path / "out.wav"}"; format "wav" }}\n')
    return {"ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}


def start_service(work: Path, env: dict[str, str], notify_timeout: float,
                  stdout: int | None = subprocess.PIPE) -> tuple[subprocess.Popen[str], socket.socket]:
    """`callrec run` on ONE_LINE_ON_FILE_PCMS in `work`, the pins at the hardware seam (tests/fake_pi),
    with systemd's notify socket as a real AF_UNIX socket (`recv` it for READY=1 and the rest).
    `env` adds to the environment (the watchdog, pins held low); the caller stops the process."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "callrec.toml"
    config.write_text(ONE_LINE_ON_FILE_PCMS)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(work / "notify"))
    notify.settimeout(notify_timeout)
    tests = Path(__file__).resolve().parent
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "--config", str(config), "run", "--data",
                             str(work / "data"), "--control-socket", str(work / "control.sock")],
                            env={**os.environ, **file_pcms(work), "PYTHONPATH": f"{tests / 'fake_pi'}:{tests}",
                                 "NOTIFY_SOCKET": str(work / "notify"), **env},
                            stdout=stdout, stderr=subprocess.PIPE, text=True)
    return proc, notify


@dataclass
class SimResult:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str
    data: Path

    def of_type(self, type_: str, line: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_ and (line is None or e["line"] == line)]

    def record(self, call_id: str) -> dict[str, Any]:
        out = callrec("calls", "show", call_id, "--data", str(self.data))
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


def callrec(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callrec", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def listed_calls(data: Path) -> list[dict[str, Any]]:
    """Every call `callrec calls list --json` shows for a data directory, oldest first."""
    out = callrec("calls", "list", "--json", "--data", str(data))
    assert out.returncode == 0, out.stderr
    return sorted((json.loads(line) for line in out.stdout.splitlines()), key=lambda r: r["call_id"])


def run_simulation(work: Path, lines: list[dict[str, Any]], *extra: str, config: str | None = None,
                   data: Path | None = None) -> SimResult:
    """Write a scenario (lines of (at, signal, value) events; each line's noise audio made when
    missing, `seconds` long) in `work` and run `callrec simulate` on it."""
    scenario = work / "scenario.toml"
    for line in lines:
        if not (work / line["audio"]).exists():
            noise_wav(work / line["audio"], line.get("seconds", 30), seed=line["line"])
    scenario.write_text(scenario_toml(lines))
    data = data or work / "data"
    args = ["simulate", str(scenario), "--data", str(data), *extra]
    if config is not None:
        (work / "callrec.toml").write_text(config)
        args += ["--config", str(work / "callrec.toml")]
    out = callrec(*args)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return SimResult(out.returncode, events, out.stderr, data)


@pytest.fixture
def simulate(tmp_path: Path) -> Callable[..., SimResult]:
    """`run_simulation` in the test's own directory."""

    def run(lines: list[dict[str, Any]], *extra: str, config: str | None = None,
            data: Path | None = None) -> SimResult:
        return run_simulation(tmp_path, lines, *extra, config=config, data=data)

    return run
