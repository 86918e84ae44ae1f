"""The broker away for 50 calls, then back: the service's journal delivers every event, in order,
and every retained state is fresh again: with and without broker persistence.

The real service (`callrec simulate`, MQTT configured) against a real mosquitto.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import callrec, noise_wav, scenario_toml
from mqtt_support import Broker, Subscriber, wait_until

if shutil.which("mosquitto") is None:  # pragma: no cover - .ci/install provides it
    pytest.skip("mosquitto is not installed", allow_module_level=True)

CALLS = 50
ROOT = "callrec/outagebox"


def _scenario(path: Path, calls: int) -> Path:
    """`calls` calls of 3 s, alternating between two lines."""
    per_line = {1: [], 2: []}
    for n in range(calls):
        line = 1 + n % 2
        t = 1.0 + (n // 2) * 4.0
        per_line[line] += [(t, "hook", "off"), (t + 3.0, "hook", "on")]
    seconds = 1.0 + (calls // 2 + 1) * 4.0 + 2.0
    for line in (1, 2):
        noise_wav(path.parent / f"line{line}.wav", seconds, seed=line)
    path.write_text(scenario_toml([{"line": line, "audio": f"line{line}.wav", "events": events}
                                   for line, events in per_line.items()]))
    return path


def _config(work: Path, port: int) -> Path:
    config = work / "callrec.toml"
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ndevice_id = "outagebox"\n'
                      'reconnect_min_s = 0.1\nreconnect_max_s = 0.5\n')
    return config


def _simulate(scenario: Path, data: Path, config: Path) -> None:
    out = callrec("simulate", str(scenario), "--data", str(data), "--config", str(config), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("persistence", [True, False], ids=["persistent broker", "forgetful broker"])
def test_events_of_50_calls_made_while_the_broker_was_down_all_arrive_in_order(tmp_path, persistence):
    broker = Broker(tmp_path / "broker", persistence=persistence)
    config = _config(tmp_path, broker.port)
    data = tmp_path / "data"
    _simulate(_scenario(tmp_path / "outage.toml", CALLS), data, config)   # no broker at all meanwhile
    with sqlite3.connect(data / "journal.sqlite") as db:
        backlog = [row[0] for row in db.execute("SELECT seq FROM events WHERE delivered = 0 ORDER BY seq")]
    assert len(backlog) > CALLS * 4, "the events wait in the journal"
    broker.start()
    try:
        dashboard = Subscriber(broker, f"{ROOT}/event", f"{ROOT}/line/+/state", f"{ROOT}/status")
        _simulate(_scenario(tmp_path / "after.toml", 2), data, config)   # the service runs again
        assert wait_until(lambda: {e["seq"] for e in dashboard.events(f"{ROOT}/event")} >= set(backlog), 30)
        seqs = list(dict.fromkeys(e["seq"] for e in dashboard.events(f"{ROOT}/event")))
        assert seqs == sorted(seqs), "the backlog first, then live, in seq order"
        assert seqs[:len(backlog)] == backlog
        with sqlite3.connect(data / "journal.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM events WHERE delivered = 0").fetchone()[0] == 0
        dashboard.close()
        # The broker restarts: with persistence it keeps the retained states, without it forgets
        # them, and the next connection of the service republishes every one: never stale.
        broker.stop()
        broker.start()
        late = Subscriber(broker, f"{ROOT}/line/+/state", f"{ROOT}/status")
        if persistence:
            assert wait_until(lambda: late.texts(f"{ROOT}/status") == ["offline"])
        _simulate(_scenario(tmp_path / "again.toml", 2), data, config)
        assert wait_until(lambda: late.texts(f"{ROOT}/status")[-1:] == ["offline"])
        assert "online" in late.texts(f"{ROOT}/status")
        for line in (1, 2):
            assert late.last(f"{ROOT}/line/{line}/state")["state"] == "idle"
        late.close()
    finally:
        broker.stop()
