"""`callrec simulate` publishes the whole MQTT contract when its config names a broker."""

from __future__ import annotations

import json

from conftest import callrec, noise_wav, scenario_toml
from mqtt_support import Subscriber, wait_until

pytest_plugins = ["conftest_mqtt"]


def test_simulated_call_is_published_event_for_event_with_state_and_status(tmp_path, broker):
    noise_wav(tmp_path / "line1.wav", 20)
    scenario = tmp_path / "s.toml"
    scenario.write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "ring", "on"), (1.5, "ring", "off"), (2.0, "hook", "off"), (9.0, "hook", "on")]}]))
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ndevice_id = "sim1"\n'
                      f'stats_interval_s = 1\n[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\n')
    subscriber = Subscriber(broker, "callrec/sim1/#")
    try:
        out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"), "--config", str(config))
        assert out.returncode == 0, out.stderr
        printed = [json.loads(line) for line in out.stdout.splitlines()]
        assert wait_until(lambda: len(subscriber.events("callrec/sim1/event")) >= len(printed), timeout=10)
        published = subscriber.events("callrec/sim1/event")
        assert [e["seq"] for e in published] == [e["seq"] for e in printed]
        assert published == printed, "MQTT carries the event stream unchanged"
        assert subscriber.texts("callrec/sim1/status")[-1] == "offline"
        assert "online" in subscriber.texts("callrec/sim1/status")
        states = [p["state"] for p in subscriber.payloads("callrec/sim1/line/1/state")]
        assert "recording" in states and states[-1] == "idle"
    finally:
        subscriber.close()
