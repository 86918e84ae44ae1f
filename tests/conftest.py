"""Shared fixtures: line audio, scenarios, and running `callrec` as a real subprocess.

The service under test always runs as its own process: alsa-lib reads its configuration once per
process, and a kill -9 must hit a real process.
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture
def simulate(tmp_path: Path) -> Callable[..., SimResult]:
    """Write a scenario (lines of (at, signal, value) events) and run `callrec simulate` on it."""

    def run(lines: list[dict[str, Any]], *extra: str, config: str | None = None,
            data: Path | None = None) -> SimResult:
        scenario = tmp_path / "scenario.toml"
        for line in lines:
            if not (tmp_path / line["audio"]).exists():
                noise_wav(tmp_path / line["audio"], line.get("seconds", 30), seed=line["line"])
        scenario.write_text(scenario_toml(lines))
        data = data or tmp_path / "data"
        args = ["simulate", str(scenario), "--data", str(data), *extra]
        if config is not None:
            (tmp_path / "callrec.toml").write_text(config)
            args += ["--config", str(tmp_path / "callrec.toml")]
        out = callrec(*args)
        events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        return SimResult(out.returncode, events, out.stderr, data)

    return run
