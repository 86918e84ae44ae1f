"""The simulator in trouble: Ctrl-C, a second run on a busy data directory, a small data disk.

Regression tests for issue 9 item 6.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import callrec, noise_wav, scenario_toml
from fault_support import small_disk, start_simulate  # noqa: F401 - fixture

CALL = [(1.0, "hook", "off"), (25.0, "hook", "on")]


def _scenario(tmp_path, seconds=30):
    noise_wav(tmp_path / "line1.wav", seconds)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": CALL}]))
    return tmp_path / "s.toml"


def test_ctrl_c_ends_and_saves_the_call_in_progress_says_so_and_removes_the_socket(tmp_path):
    data = tmp_path / "data"
    run = start_simulate(_scenario(tmp_path), data, "--realtime")
    started = run.until(lambda e: e["type"] == "call.started")
    time.sleep(3.0)   # longer than storage.min_call_seconds: a call worth keeping
    os.kill(run.proc.pid, signal.SIGINT)
    assert run.finish(timeout=30) == 130
    assert "interrupted; ending and saving 1 call(s) in progress" in run.stderr
    (ended,) = run.of_type("call.ended")
    assert ended["call_id"] == started["call_id"] and ended["status"] == "complete"
    record = json.loads(callrec("calls", "show", started["call_id"], "--data", str(data)).stdout)
    assert any("recording stopped" in error for error in record["errors"])
    assert not (data / "control.sock").exists(), "no stale control socket"
    assert not list(data.rglob("*.part")), "nothing left for recover"


def test_a_refused_second_simulation_touches_nothing_of_the_running_one(tmp_path):
    data = tmp_path / "data"
    scenario = _scenario(tmp_path)
    run = start_simulate(scenario, data, "--realtime")
    try:
        run.until(lambda e: e["type"] == "call.started")
        def files() -> set[Path]:   # what a running call writes may come and go (a .tmp being renamed)
            return {p.relative_to(data) for p in data.rglob("*") if not p.name.endswith(".tmp")}

        before = files()
        second = callrec("simulate", str(scenario), "--data", str(data))
        assert second.returncode == 1 and "in use by another callrec process" in second.stderr
        assert before <= files(), "nothing of the running simulation was removed"
        assert list(data.rglob("*.pcm.part")), "the running call goes on"
    finally:
        os.kill(run.proc.pid, signal.SIGTERM)
        run.finish(timeout=30)


def test_the_simulation_keeps_its_scratch_files_off_the_data_disk(tmp_path, small_disk):  # noqa: F811 - the fixture
    """A minute of stereo line audio as the simulated card needs about 2 MB: on a 3 MB data disk that
    once filled the disk before the recorder wrote a byte."""
    disk = small_disk("3m")
    noise_wav(tmp_path / "line1.wav", 60, seed=1)
    noise_wav(tmp_path / "line2.wav", 60, seed=2)
    (tmp_path / "s.toml").write_text(scenario_toml([
        {"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (6.0, "hook", "on")]},
        {"line": 2, "audio": "line2.wav", "events": []}]))
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(disk / "data"))
    assert out.returncode == 0, out.stderr
    assert not (disk / "data" / "sim-work").exists()
    statuses = [json.loads(line)["status"] for line in out.stdout.splitlines() if '"call.ended"' in line]
    assert statuses == ["complete"]
    work = tmp_path / "work"
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(tmp_path / "data2"), "--work", str(work))
    assert out.returncode == 0 and (work / "played_card0.wav").exists(), "--work keeps them where asked"
